"""Layers as TensorFlow's DCGANs write them (carpedm20/DCGAN-tensorflow, the Stacked MNIST nets of PacGAN
and of the Unrolled GAN paper): 'SAME' convolutions that halve a side rounding up (28 -> 14 -> 7 -> 4),
the transposed convolutions that undo them to a given side (4 -> 7 -> 14 -> 28), and their batch norm
(tf.contrib.layers.batch_norm: decay 0.9, epsilon 1e-5, scale 1 at init)."""
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def halved(side: int) -> int:
  """The side a stride-2 'SAME' convolution leaves: ceil(side / 2)."""
  return -(-side // 2)


# Outputs of at most these sides are convolved as patches @ kernel (`_patch_conv`), measured layer by layer
# on XLA:CPU at batch 64 (DCGAN-TF's layers): strided 'SAME' convolutions to 4x4 and below, and the
# stride-1 phases of a transposed convolution to 2x2 and below; XLA's convolution is faster above.
DOT_SIDE, DOT_PHASE_SIDE = 4, 2


def _patch_conv(x, kernel, stride: int, out_side: int):
  """x [B, H, W, C] (padded already) convolved with kernel [kh, kw, C, C_out] as one dot of its patches:
  the k * k strided slices side by side [B, out, out, kh * kw * C] @ [kh * kw * C, C_out]. On XLA:CPU
  (jaxlib 0.10, 2 cores) its convolutions are pathological on small maps: a 5x5 stride-2 'SAME' conv
  4x4x256 -> 2x2x512 at batch 64 took 549 ms forward and 910 ms with its gradients, the patch dot 5 ms
  and 13 ms (7x7x128 -> 4x4x256: 230 ms against 17 ms with gradients); to 7x7 the convolution is
  faster (4 ms against 16 ms), hence DOT_SIDE."""
  kh, kw = kernel.shape[:2]
  reach = stride * (out_side - 1) + 1
  patches = jnp.concatenate([lax.slice(x, (0, i, j, 0), (x.shape[0], i + reach, j + reach, x.shape[3]),
                                       (1, stride, stride, 1)) for i in range(kh) for j in range(kw)], axis=-1)
  return patches @ kernel.reshape(-1, kernel.shape[-1])


def conv_same(x, kernel, stride: int = 2):
  """'SAME' convolution, x [B, H, W, C_in], kernel [k, k, C_in, C_out] -> [B, ceil(H/s), ceil(W/s), C_out]
  (square maps; XLA's and TF's padding: the smaller half before)."""
  side = -(-x.shape[1] // stride)
  if side > DOT_SIDE:
    return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=DIMENSIONS)
  k = kernel.shape[0]
  total = max((side - 1) * stride + k - x.shape[1], 0)
  pads = ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0))
  return _patch_conv(jnp.pad(x, pads), kernel, stride, side)


def conv_transpose_to(x, kernel, side: int):
  """TF's conv2d_transpose(output_shape=side, strides=2, 'SAME'): the adjoint of `conv_same` from a
  [B, side, side, C_out] map to x's [B, ceil(side/2), ceil(side/2), C_in], applied to x.

  kernel [k, k, C_out, C_in] (TF's layout for transposed convolutions) -> [B, side, side, C_out].
  The definition, as the vjp of that convolution (the reference of the tests; on XLA:CPU its
  dilated convolution is two orders of magnitude slower than `subpixel_conv_transpose_to`).
  """
  shape = (x.shape[0], side, side, kernel.shape[2])
  _, adjoint = jax.vjp(lambda y: conv_same(y, kernel), jnp.zeros(shape, x.dtype))
  return adjoint(x)[0]


def _phase(k: int, side: int, parity: int):
  """For outputs o = 2 m + parity of the transposed convolution of a k-tap kernel to `side`: (first
  tap t0, first input offset j0, taps), with y[2m + parity] = sum_q x[m + j0 + q] w[t0 - 2 q]."""
  inputs = halved(side)
  pad = max((inputs - 1) * 2 + k - side, 0) // 2  # the forward 'SAME' convolution's padding before
  taps = [t for t in range(k) if (t - parity - pad) % 2 == 0]  # x[i] w[t] lands on o = 2 i + t - pad
  return max(taps), (parity + pad - max(taps)) // 2, len(taps)


def _window(x, axis: int, start: int, length: int):
  """x[start : start + length] along `axis`, zeros where that runs off either end."""
  n = x.shape[axis]
  lo, hi = max(0, -start), max(0, start + length - n)
  pads = [(0, 0)] * x.ndim
  pads[axis] = (lo, hi)
  return lax.slice_in_dim(jnp.pad(x, pads), start + lo, start + lo + length, axis=axis)


def subpixel_conv_transpose_to(x, kernel, side: int):
  """`conv_transpose_to` as four stride-1 convolutions, one per output parity (a row and a column),
  interleaved: each sees only the kernel taps that reach its outputs (static strided slices of the
  kernel, reversed), so the FLOPs are the transposed convolution's and no input is dilated."""
  k, half = kernel.shape[0], halved(side)
  rows = []
  for py in (0, 1):
    ty, jy, ny = _phase(k, side, py)
    cols = []
    for px in (0, 1):
      tx, jx, nx = _phase(k, side, px)
      taps = kernel[ty - 2 * (ny - 1)::2][::-1][:, tx - 2 * (nx - 1)::2][:, ::-1]  # w[t0 - 2q], q = 0 ..
      patch = _window(_window(x, 1, jy, half + ny - 1), 2, jx, half + nx - 1)
      taps = jnp.swapaxes(taps, 2, 3)  # [ny, nx, C_in, C_out]
      cols.append(_patch_conv(patch, taps, 1, half) if half <= DOT_PHASE_SIDE else
                  lax.conv_general_dilated(patch, taps, (1, 1), "VALID", dimension_numbers=DIMENSIONS))
    rows.append(jnp.stack(cols, axis=3))  # [B, half, half, 2 (px), C]
  y = jnp.stack(rows, axis=2)  # [B, half, 2 (py), half, 2 (px), C]
  b, _, _, _, _, c = y.shape
  return y.reshape(b, 2 * half, 2 * half, c)[:, :side, :side]


class ConvTransposeTo(nn.Module):
  """A transposed convolution to `side` x `side` (`conv_transpose_to`), k x k kernels, with a bias."""
  features: int
  side: int
  kernel_size: int = 5
  kernel_init: Callable = nn.initializers.normal(0.02)
  dtype: Optional[Any] = None  # computation dtype (None: that of the input); parameters stay float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, self.features, x.shape[-1]))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    if self.dtype is not None:
      x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return subpixel_conv_transpose_to(x, kernel, self.side) + bias.astype(x.dtype)


def batch_norm(train: bool, axis_name: Optional[str], dtype=None):
  """tf.contrib.layers.batch_norm(decay=0.9, epsilon=1e-5, scale=True) as Flax's BatchNorm."""
  from gan_jax.nets.layers import BN_MOMENTUM
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=1e-5, dtype=dtype,
                      axis_name=axis_name if train else None)


class Conv(nn.Module):
  """A k x k 'SAME' convolution of stride `stride` with a bias (carpedm20's conv2d; weights N(0, 0.02)),
  computed by `conv_same`; parameters 'kernel' [k, k, C_in, C_out] and 'bias' as nn.Conv's."""
  features: int
  kernel_size: int = 5
  stride: int = 2
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.normal(0.02), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    if self.dtype is not None:
      x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return conv_same(x, kernel, self.stride) + bias.astype(x.dtype)
