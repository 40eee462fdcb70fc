"""PyTorch references for benchmarks/step_time.py: the same DCGANs and ring MLP, the usual training loop.

DCGAN (Radford et al. 2015) at 32 px (3 upsamplings) or 64 px (4): G z -> ConvT to 4x4 -> ... -> C@R
(BN + ReLU, tanh out), D the mirror (LeakyReLU 0.2, BN but on the input layer, a 4x4 conv head).
One iteration = the PyTorch DCGAN example's: D on a real batch and on G(z).detach(), Adam step;
G on D(G(z)) with the same fakes, Adam step. `Trainer` runs it eager, channels_last, under
torch.compile, or under bf16 autocast (the variants step_time.py takes the best of).
"""
import math

import torch
from torch import nn


def dcgan(latent=100, width=64, channels=1, resolution=32):
  """(G, D) for 32 or 64 px: the nets of gan_jax.nets.dcgan with the same parameter count."""
  n = int(math.log2(resolution // 4))
  g_layers, c = [nn.ConvTranspose2d(latent, width * 2 ** (n - 1), 4, 1, 0, bias=False)], width * 2 ** (n - 1)
  g_layers += [nn.BatchNorm2d(c), nn.ReLU(True)]
  for _ in range(n - 1):
    g_layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
    c //= 2
  g_layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=True), nn.Tanh()]
  d_layers, c = [nn.Conv2d(channels, width, 4, 2, 1, bias=True), nn.LeakyReLU(0.2, True)], width
  for _ in range(n - 1):
    d_layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, True)]
    c *= 2
  d_layers += [nn.Conv2d(c, 1, 4, 1, 0, bias=True), nn.Flatten(0)]
  return nn.Sequential(*g_layers), nn.Sequential(*d_layers)


def mlp(latent=2, hidden=(256, 256, 256), out=2):
  def stack(n_in, n_out):
    layers, w = [], n_in
    for h in hidden:
      layers += [nn.Linear(w, h), nn.ReLU(True)]
      w = h
    return nn.Sequential(*layers, nn.Linear(w, n_out))
  return stack(latent, out), nn.Sequential(stack(out, 1), nn.Flatten(0))


def count_params(module):
  return sum(p.numel() for p in module.parameters())


VARIANTS = ("eager", "channels_last", "compile", "bf16_autocast")


class Trainer:
  """One GAN iteration (non-saturating loss, Adam 2e-4 / 0.5) per call, in one of VARIANTS."""

  def __init__(self, g, d, latent_shape, batch, device="cpu", variant="eager"):
    self.device, self.variant = torch.device(device), variant
    if variant == "channels_last":
      g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    self.g, self.d = g.to(self.device), d.to(self.device)
    self.latent_shape, self.batch = latent_shape, batch
    self.opt_g = torch.optim.Adam(self.g.parameters(), 2e-4, betas=(0.5, 0.999))
    self.opt_d = torch.optim.Adam(self.d.parameters(), 2e-4, betas=(0.5, 0.999))
    self.bce = nn.BCEWithLogitsLoss()
    self.ones = torch.ones(batch, device=self.device)
    self.zeros = torch.zeros(batch, device=self.device)
    self._step = torch.compile(self._iteration) if variant == "compile" else self._iteration

  def _iteration(self, real, z):
    self.d.zero_grad(set_to_none=True)
    loss_real = self.bce(self.d(real), self.ones)
    loss_real.backward()
    fake = self.g(z)
    loss_fake = self.bce(self.d(fake.detach()), self.zeros)
    loss_fake.backward()
    self.opt_d.step()
    self.g.zero_grad(set_to_none=True)
    loss_g = self.bce(self.d(fake), self.ones)
    loss_g.backward()
    self.opt_g.step()
    return loss_g

  def step(self, real):
    z = torch.randn(self.batch, *self.latent_shape, device=self.device)
    if self.variant == "channels_last" and real.dim() == 4:
      real = real.contiguous(memory_format=torch.channels_last)
    if self.variant == "bf16_autocast":
      with torch.autocast(self.device.type, dtype=torch.bfloat16):
        return self._step(real, z)
    return self._step(real, z)
