"""PyTorch references for benchmarks/step_time.py: the same DCGANs, SNGAN ResNets and ring MLP, the usual loop.

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


class _GBlock(nn.Module):
  """SNGAN's G block as Mimicry's resblocks.GBlock writes it (upsample=True, bilinear)."""

  def __init__(self, c_in, c_out, num_classes=0):
    super().__init__()
    self.b1, self.b2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
    self.c1, self.c2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
    self.c_sc = nn.Conv2d(c_in, c_out, 1, 1, 0)

  def forward(self, x):
    up = lambda t: nn.functional.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
    h = self.c2(torch.relu(self.b2(self.c1(up(torch.relu(self.b1(x)))))))
    return h + self.c_sc(up(x))


class _DBlock(nn.Module):
  """SNGAN's D blocks as Mimicry's DBlockOptimized / DBlock write them, spectrally normalised."""

  def __init__(self, c_in, c_out, first=False, downsample=True):
    super().__init__()
    sn = nn.utils.spectral_norm
    self.first, self.downsample = first, downsample
    self.c1, self.c2 = sn(nn.Conv2d(c_in, c_out, 3, 1, 1)), sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
    self.c_sc = sn(nn.Conv2d(c_in, c_out, 1, 1, 0)) if (first or downsample or c_in != c_out) else None

  def forward(self, x):
    pool = lambda t: nn.functional.avg_pool2d(t, 2) if self.downsample else t  # noqa: E731
    if not self.first:
      x = torch.relu(x)  # Mimicry's in-place ReLU: the shortcut reads ReLU(x)
    h = self.c2(torch.relu(self.c1(x)))
    if self.first:
      return pool(h) + self.c_sc(pool(x))
    return pool(h) + (pool(self.c_sc(x)) if self.c_sc is not None else x)


class _ResNetG(nn.Module):
  def __init__(self, latent, width, channels):
    super().__init__()
    self.width, self.l1 = width, nn.Linear(latent, 16 * width)
    self.blocks = nn.Sequential(*[_GBlock(width, width) for _ in range(3)])
    self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(True), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

  def forward(self, z):
    return self.out(self.blocks(self.l1(z).view(z.shape[0], self.width, 4, 4)))


class _ResNetD(nn.Module):
  def __init__(self, width, channels):
    super().__init__()
    self.blocks = nn.Sequential(_DBlock(channels, width, first=True), _DBlock(width, width),
                                _DBlock(width, width, downsample=False), _DBlock(width, width, downsample=False))
    self.l5 = nn.utils.spectral_norm(nn.Linear(width, 1))

  def forward(self, x):
    return self.l5(torch.relu(self.blocks(x)).sum(dim=(2, 3))).flatten()


def resnet(latent=128, width=256, d_width=128, channels=3):
  """(G, D): SNGAN's 32x32 ResNets (Mimicry's sngan_32, the nets of gan_jax.nets.resnet)."""
  return _ResNetG(latent, width, channels), _ResNetD(d_width, channels)


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
