"""The DCGANs of PacGAN's Stacked MNIST experiments, as their TensorFlow code writes them
(fjxmlzn/PacGAN, stacked_MNIST_experiments/): one generator and one discriminator, two sizes.

Weights N(0, 0.02), biases 0, stride-2 resamplings that halve a side rounding up (TF's 'SAME'):
  G: z -> dense 8w * s_n^2 -> [s_n, s_n, 8w] -> BN, ReLU -> 4w, 2w, w (each a stride-2 transposed conv to
     the next side, BN, ReLU) -> C channels -> tanh
  D: x -> conv d (BN from `bn_from` on), LeakyReLU -> conv 2d ... -> dense 1
`dcgan_tf` (VEEGAN setting, carpedm20/DCGAN-tensorflow): 5x5 kernels, four halvings, G's last layer a
  transposed conv to the full side, D 1-2-4-8 x w without BN on its first layer, LeakyReLU(0.2). For 28 px
  (w = 64): G 2x2x512 -> 4x4x256 -> 7x7x128 -> 14x14x64 -> 28x28xC; D 28 -> 14 -> 7 -> 4 -> 2.
`dcgan_small` (Metz et al. 2017's appendix, unrolled_GAN_experiment/): 3x3 kernels, three halvings, G's
  last layer a stride-1 conv, D 1-2-4 x d with BN from its first layer, LeakyReLU(0.3). For 28 px and
  w = 8: G 4x4x64 -> 7x7x32 -> 14x14x16 -> 28x28x8 -> 28x28xC. D = 1/4 G is d = 2 (2, 4, 8 channels),
  D = 1/2 G is d = 4: --width=8 --d_width=2 (or 4).
With --spectral_norm every layer of D is normalised and D's batch norm dropped, as in dcgan.py.
"""
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.nets.layers import DiscriminatorOptions, compute_dtype, concat_labels, generator_input, head
from gan_jax.nets.tf_layers import Conv, ConvTransposeTo, batch_norm, halved

INIT = nn.initializers.normal(0.02)


def sides(resolution: int, count: int = 4):
  """[resolution, s2, s4, ...]: the sides after each halving."""
  out = [resolution]
  for _ in range(count):
    out.append(halved(out[-1]))
  return out


class TFDCGANGenerator(nn.Module):
  """z [B, latent] (+ labels [B]) -> images [B, R, R, channels] in [-1, 1]."""
  resolution: int = 28
  channels: int = 3
  width: int = 64
  kernel_size: int = 5
  halvings: int = 4                 # 4: the last layer upsamples to R; 3: a stride-1 conv at R
  bn_axis_name: Optional[str] = None
  num_classes: int = 0
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    s, k, n = sides(self.resolution, self.halvings), self.kernel_size, self.halvings
    h = generator_input(self, z, labels, self.num_classes, 0)
    h = nn.Dense(8 * self.width * s[n] ** 2, kernel_init=INIT, dtype=self.dtype)(h).reshape(-1, s[n], s[n], 8 * self.width)
    h = nn.relu(batch_norm(train, self.bn_axis_name, self.dtype)(h))
    for side, mult in zip(s[n - 1:0:-1] if n == 4 else s[n - 1::-1], (4, 2, 1)):
      h = ConvTransposeTo(mult * self.width, side, kernel_size=k, dtype=self.dtype)(h)
      h = nn.relu(batch_norm(train, self.bn_axis_name, self.dtype)(h))
    last = ConvTransposeTo(self.channels, s[0], kernel_size=k) if n == 4 else Conv(self.channels, k, stride=1)
    return jnp.tanh(last(h.astype(jnp.float32)))


class TFDCGANDiscriminator(DiscriminatorOptions):
  """images [B, R, R, C] (+ labels [B]) -> logits [B]; `features=True`: (logits, last map, class logits)."""
  width: int = 64
  kernel_size: int = 5
  multiples: Tuple[int, ...] = (1, 2, 4, 8)
  bn_from: int = 1                  # the first layer with batch norm (when not spectrally normalised)
  slope: float = 0.2
  bn_axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, features: bool = False):
    h = concat_labels(x, labels, self.num_classes) if self.conditioning == "concat" else x
    for i, mult in enumerate(self.multiples):
      h = self.layer(Conv(mult * self.width, kernel_size=self.kernel_size, dtype=self.dtype), train)(h)
      if i >= self.bn_from and not self.spectral_norm:
        h = batch_norm(train, self.bn_axis_name, self.dtype)(h)
      h = nn.leaky_relu(h, self.slope)
    h = h.astype(jnp.float32)
    logits, class_logits = head(self, h, labels, train, INIT)
    return (logits, h, class_logits) if features else logits


SMALL_G = dict(kernel_size=3, halvings=3)
SMALL_D = dict(kernel_size=3, multiples=(1, 2, 4), bn_from=0, slope=0.3)


def build(opts, width, d_width, small: bool = False):
  """(G, D) for `opts` (gan_jax.nets.NetOptions), G's base width and D's (0: G's; `small`: a quarter of G's)."""
  res, _, channels = opts.data_shape
  dtype = compute_dtype(opts.compute_dtype)
  g_sizes, d_sizes = (SMALL_G, SMALL_D) if small else ({}, {})
  d_width = d_width or (max(1, width // 4) if small else width)
  return (TFDCGANGenerator(resolution=res, channels=channels, width=width, bn_axis_name=opts.bn_axis_name,
                           num_classes=opts.num_classes, dtype=dtype, **g_sizes),
          TFDCGANDiscriminator(width=d_width, bn_axis_name=opts.bn_axis_name, spectral_norm=opts.spectral_norm,
                               conditioning=opts.conditioning, num_classes=opts.num_classes,
                               minibatch_kernels=opts.minibatch_discrimination,
                               semi_supervised_classes=opts.semi_supervised_classes, dtype=dtype, **d_sizes))


def build_small(opts, width, d_width):
  """The Unrolled GAN paper's small nets (`dcgan_small`)."""
  return build(opts, width, d_width, small=True)
