"""Layers the GAN networks share: a fast stride-2 transposed convolution, maxout, PacGAN packing."""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# A 4x4 stride-2 'SAME' transposed convolution (nn.ConvTranspose, transpose_kernel=False)
# computes, along each spatial axis, y[2m] = w0 x[m-1] + w2 x[m] and
# y[2m+1] = w1 x[m] + w3 x[m+1]: two 2-tap correlations. Per output parity we
# slice those taps out of the 4x4 kernel and pad the input on one side.
# parity -> (first kernel tap; taps are t and t + 2, a static strided slice), (pad_lo, pad_hi)
_TAPS = {0: (0, (1, 0)), 1: (1, (0, 1))}


def subpixel_conv_transpose(x, kernel):
  """Stride-2, 4x4, 'SAME' transposed convolution as four 2x2 convolutions + depth-to-space.

  Equal to `lax.conv_transpose(x, kernel, (2, 2), 'SAME')` (the op behind
  `nn.ConvTranspose(features, (4, 4), (2, 2))`) with the same FLOPs, but its
  kernel gradient is an ordinary convolution gradient, which XLA:CPU computes
  ~25x faster than that of a strided transposed convolution (FINDINGS.md).

  Args:
    x: [B, H, W, C_in].
    kernel: [4, 4, C_in, C_out], the layout of `nn.ConvTranspose`'s kernel.
  Returns:
    [B, 2H, 2W, C_out].
  """
  rows = []
  for py in (0, 1):
    (ty, pady) = _TAPS[py]
    cols = []
    for px in (0, 1):
      (tx, padx) = _TAPS[px]
      k = kernel[ty::2, tx::2]  # [2, 2, C_in, C_out]
      cols.append(lax.conv_general_dilated(
          x, k, window_strides=(1, 1), padding=(pady, padx),
          dimension_numbers=("NHWC", "HWIO", "NHWC")))
    rows.append(jnp.stack(cols, axis=3))  # [B, H, W, 2(px), C]
  y = jnp.stack(rows, axis=2)  # [B, H, 2(py), W, 2(px), C]
  b, h, _, w, _, c = y.shape
  return y.reshape(b, 2 * h, 2 * w, c)


class ConvTranspose2x(nn.Module):
  """Drop-in for `nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`.

  Same parameter names and shapes ('kernel' [4, 4, C_in, C_out], 'bias'), so
  weights move between the two; computed by `subpixel_conv_transpose`.
  """
  features: int
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.normal(0.02)

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
    y = subpixel_conv_transpose(x, kernel)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class Maxout(nn.Module):
  """h_i = max_j (x W_ij + b_ij), j < pieces (Goodfellow et al. 2013). [B, D] -> [B, features]."""
  features: int
  pieces: int

  @nn.compact
  def __call__(self, x):
    y = nn.Dense(self.features * self.pieces)(x)
    return jnp.max(y.reshape(*y.shape[:-1], self.features, self.pieces), axis=-1)


def pack_samples(x, pack: int):
  """PacGAN packing (Lin et al. 2018): m consecutive samples become one input of D.

  [B, D] -> [B/m, m*D]; images [B, H, W, C] -> [B/m, H, W, m*C].
  """
  if pack == 1:
    return x
  b = x.shape[0]
  x = x.reshape(b // pack, pack, *x.shape[1:])
  if x.ndim == 3:
    return x.reshape(b // pack, -1)
  x = jnp.moveaxis(x, 1, -2)  # [B/m, H, W, m, C]
  return x.reshape(*x.shape[:-2], -1)


ACTIVATIONS = {
    "linear": lambda x: x,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.2),
}
