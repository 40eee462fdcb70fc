"""DCGAN (Radford et al. 2015): all-convolutional G and D with batch norm.

Architecture guidelines of the paper (sec. 3): strided convolutions instead of
pooling; batch norm in G and D except G's output and D's input layers; no
fully connected hidden layers (G's first layer is a projection of z reshaped to
a 4x4 (7x7 for 28 px) map, D's last a convolution covering the final map);
ReLU in G with tanh on the output; LeakyReLU(0.2) in D; weights N(0, 0.02).
`dtype` is the computation dtype of the hidden layers (None: float32); G's output layer and D's
head compute in float32; parameters and batch-norm statistics are float32.

For `resolution=32, width=64, channels=1`:
  G: z[100] -> 256@4x4 -> 128@8x8 -> 64@16x16 -> 1@32x32
  D: 1@32x32 -> 64@16x16 -> 128@8x8 -> 256@4x4 -> logit
"""
import math
from typing import Any, Optional

import flax.linen as nn
import jax

from gan_jax.nets.layers import (BN_MOMENTUM, ConvTranspose2x, DiscriminatorHead, DiscriminatorOptions,
                                 VirtualBatchNorm, compute_dtype, concat_labels, generator_input, to_float32)

INIT = nn.initializers.normal(0.02)


def _layout(resolution: int):
  """(side of the smallest map, number of 2x resamplings)."""
  start = 7 if resolution == 28 else 4
  n = int(round(math.log2(resolution // start)))
  if start * 2 ** n != resolution:
    raise ValueError(f"DCGAN supports resolutions 28, 32 and 64, not {resolution}")
  return start, n


def _batch_norm(train: bool, axis_name: Optional[str], dtype=None):
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=1e-5, dtype=dtype,
                      axis_name=axis_name if train else None,
                      scale_init=lambda k, s, d=None: 1.0 + 0.02 * jax.random.normal(k, s))


class DCGANGenerator(nn.Module):
  """z [B, latent] (+ labels [B]) -> images [B, resolution, resolution, channels] in [-1, 1].

  num_classes > 0: one-hot labels join z. vbn_reference_size > 0: virtual batch
  norm replaces batch norm (the reference latents are prepended, then dropped).
  """
  resolution: int = 32
  channels: int = 1
  width: int = 64
  bn_axis_name: Optional[str] = None
  num_classes: int = 0
  vbn_reference_size: int = 0
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    start, n_up = _layout(self.resolution)
    r = self.vbn_reference_size
    norm = lambda: VirtualBatchNorm(r) if r else _batch_norm(train, self.bn_axis_name, self.dtype)  # noqa: E731
    h = generator_input(self, z, labels, self.num_classes, r)
    c = self.width * 2 ** (n_up - 1)
    h = nn.Dense(start * start * c, use_bias=False, kernel_init=INIT, dtype=self.dtype)(h)
    h = h.reshape(h.shape[0], start, start, c)
    h = nn.relu(norm()(h))
    for _ in range(n_up - 1):
      c //= 2
      h = ConvTranspose2x(c, use_bias=False, kernel_init=INIT, dtype=self.dtype)(h)
      h = nn.relu(norm()(h))
    return nn.tanh(ConvTranspose2x(self.channels, kernel_init=INIT)(to_float32(h[r:])))


class DCGANDiscriminator(DiscriminatorOptions):
  """images [B, R, R, C] (+ labels [B]) -> logits [B].

  `features=True` returns (logits, last feature map [B, r, r, F], class logits or None).
  The last layer, a convolution over the whole final map, is the dense head on the
  flattened map (`DiscriminatorHead`: projection / AC-GAN / minibatch discrimination);
  'concat' conditioning joins one-hot label maps to the input channels.
  """
  resolution: int = 32
  width: int = 64
  bn_axis_name: Optional[str] = None  # spectral_norm replaces D's batch norm

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, features: bool = False):
    _, n_down = _layout(self.resolution)

    def conv(h, *args, **kwargs):
      return self.layer(nn.Conv(*args, kernel_init=INIT, dtype=self.dtype, **kwargs), train)(h)

    def dense(width):
      return self.layer(nn.Dense(width, kernel_init=INIT), train)

    h = concat_labels(x, labels, self.num_classes) if self.conditioning == "concat" else x
    for i in range(n_down):
      h = conv(h, self.width * 2 ** i, (4, 4), strides=(2, 2), padding="SAME",
               use_bias=(i == 0 or self.spectral_norm))
      if i > 0 and not self.spectral_norm:
        h = _batch_norm(train, self.bn_axis_name, self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    h = to_float32(h)
    logits, class_logits = DiscriminatorHead(
        self.conditioning, self.num_classes, self.minibatch_kernels,
        semi_supervised_classes=self.semi_supervised_classes, dense=dense,
        layer=lambda module: self.layer(module, train))(
            h.reshape(h.shape[0], -1), labels)
    return (logits, h, class_logits) if features else logits


def build(opts, width, d_width):
  """(DCGANGenerator, DCGANDiscriminator) for `opts` (gan_jax.nets.NetOptions), G's base width and D's
  (0: G's)."""
  res, _, channels = opts.data_shape
  dtype = compute_dtype(opts.compute_dtype)
  return (DCGANGenerator(resolution=res, channels=channels, width=width, bn_axis_name=opts.bn_axis_name,
                         num_classes=opts.num_classes, vbn_reference_size=opts.virtual_batch_norm, dtype=dtype),
          DCGANDiscriminator(resolution=res, width=d_width or width, bn_axis_name=opts.bn_axis_name,
                             spectral_norm=opts.spectral_norm, conditioning=opts.conditioning,
                             num_classes=opts.num_classes, minibatch_kernels=opts.minibatch_discrimination,
                             semi_supervised_classes=opts.semi_supervised_classes,
                             dtype=dtype))
