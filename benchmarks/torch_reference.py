"""PyTorch references for benchmarks/step_time.py: the same DCGAN and ring MLP, the usual training loop.

DCGAN (32x32x1): G z[100] -> ConvT 256@4x4 -> 128@8x8 -> 64@16x16 -> 1@32x32 (BN + ReLU, tanh out),
D mirror (LeakyReLU 0.2, BN but on the input layer). One iteration = the PyTorch DCGAN example's:
D on a real batch and on G(z).detach(), Adam step; G on D(G(z)) with the same fakes, Adam step.
"""
import torch
from torch import nn


def dcgan(latent=100, width=64, channels=1):
  g = nn.Sequential(
      nn.ConvTranspose2d(latent, width * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(True),
      nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(True),
      nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
      nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=True), nn.Tanh())
  d = nn.Sequential(
      nn.Conv2d(channels, width, 4, 2, 1, bias=True), nn.LeakyReLU(0.2, True),
      nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True),
      nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 4), nn.LeakyReLU(0.2, True),
      nn.Conv2d(width * 4, 1, 4, 1, 0, bias=True), nn.Flatten(0))
  return g, d


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


class Trainer:
  """One GAN iteration (non-saturating loss, Adam 2e-4 / 0.5) per call."""

  def __init__(self, g, d, latent_shape, batch):
    self.g, self.d, self.latent_shape, self.batch = g, d, latent_shape, batch
    self.opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    self.opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    self.bce = nn.BCEWithLogitsLoss()
    self.ones, self.zeros = torch.ones(batch), torch.zeros(batch)

  def step(self, real):
    self.d.zero_grad(set_to_none=True)
    loss_real = self.bce(self.d(real), self.ones)
    loss_real.backward()
    fake = self.g(torch.randn(self.batch, *self.latent_shape))
    loss_fake = self.bce(self.d(fake.detach()), self.zeros)
    loss_fake.backward()
    self.opt_d.step()
    self.g.zero_grad(set_to_none=True)
    loss_g = self.bce(self.d(fake), self.ones)
    loss_g.backward()
    self.opt_g.step()
    return loss_g
