"""The ResNet G and D of SNGAN (Miyato et al. 2018) and cGAN-PD (Miyato & Koyama 2018), 32x32.

Layers, widths and initialisation follow Mimicry (kwotsin/mimicry, torch_mimicry/nets/sngan/sngan_32.py,
cgan_pd/cgan_pd_32.py, modules/resblocks.py, modules/layers.py), which follows the authors' Chainer code
(pfnet-research/sngan_projection) except for bilinear upsampling (`upsample='nearest'`: Chainer's and
StudioGAN's). For width (ngf) 256, d_width (ndf) 128, z of 128 and 3 channels:

  G: z -> Linear -> 256@4x4 -> GBlock up -> 8x8 -> GBlock up -> 16x16 -> GBlock up -> 32x32
       -> BN, ReLU, 3x3 conv -> 3@32x32, tanh
     GBlock(x) = conv3(ReLU(BN(conv3(up(ReLU(BN(x))))))) + conv1(up(x))
  D: x -> OptimizedBlock -> 128@16x16 -> DBlock down -> 8x8 -> DBlock -> DBlock -> ReLU, sum over
       space -> Linear -> logit (+ embed(y) . h: projection)
     OptimizedBlock(x) = pool(conv3(ReLU(conv3(x)))) + conv1(pool(x))
     DBlock(x) = [pool](conv3(ReLU(conv3(ReLU(x))))) + (conv1 then [pool] when it downsamples, else the
                 identity) of ReLU(x)

Parameter counts equal Mimicry's SNGANGenerator32 / SNGANDiscriminator32 (4,276,739 / 1,053,825) and,
with 10 classes, CGANPDGenerator32 / CGANPDDiscriminator32 (4,304,387 / 1,055,105) (tests/test_resnet.py).
Initialisation as Mimicry's: residual 3x3 convolutions xavier-uniform with gain sqrt(2), shortcuts, the
first Linear, G's last conv and D's Linear and embedding with gain 1; biases as PyTorch's default,
U(-1/sqrt(fan_in), 1/sqrt(fan_in)); batch norm: scale 1, bias 0, eps 1e-5, running averages at 0.9.
A conditional G (any --conditioning) uses conditional batch norm: batch norm without affine parameters,
then a per-class scale (init N(1, 0.02)) and bias (init 0) from an embedding of 2 x channels; D is
conditioned as --conditioning says (projection: cGAN-PD). One place where Mimicry's computation is not its
code's evident intent, and we follow the computation (benchmarks/resnet_vs_mimicry.py: the same outputs
from the same weights): its DBlock's ReLU is in place, so the shortcut reads ReLU(x), not x as in Chainer. Spectral normalisation of every D layer (the
embedding too) comes from --spectral_norm (experiments/sngan.flags sets it), as for every model.
"""
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.nets.layers import BN_MOMENTUM, DiscriminatorOptions, compute_dtype, concat_labels, head, to_float32

UPSAMPLINGS = ("bilinear", "nearest")


def xavier(gain: float = 1.0):
  """torch.nn.init.xavier_uniform_ with `gain`: U(+-gain * sqrt(6 / (fan_in + fan_out)))."""
  return nn.initializers.variance_scaling(gain ** 2, "fan_avg", "uniform")


def torch_bias(fan_in: int):
  """PyTorch's default bias of Linear / Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def upsample2x(x, method: str):
  """[B, H, W, C] -> [B, 2H, 2W, C]: bilinear with half-pixel centres (F.interpolate(scale_factor=2,
  mode='bilinear', align_corners=False)) or nearest (each pixel repeated)."""
  if method == "nearest":
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), "bilinear", antialias=False).astype(x.dtype)


def avg_pool2x(x):
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def conv(features: int, size: int, fan_in_channels: int, gain: float, dtype=None):
  """A 'SAME' size x size convolution with Mimicry's initialisation."""
  return nn.Conv(features, (size, size), padding="SAME", kernel_init=xavier(gain),
                 bias_init=torch_bias(fan_in_channels * size * size), dtype=dtype)


def _batch_norm(train: bool, axis_name: Optional[str], dtype, affine: bool = True):
  """PyTorch's BatchNorm2d defaults (eps 1e-5, running averages at 0.9; scale 1, bias 0 when affine),
  statistics over `axis_name`'s devices in training."""
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=1e-5, dtype=dtype,
                      use_scale=affine, use_bias=affine, axis_name=axis_name if train else None)


class ConditionalBatchNorm(nn.Module):
  """x [B, H, W, C], labels [B] -> gamma_y * BN(x) + beta_y (BN without affine parameters; gamma, beta
  from an embedding [num_classes, 2C], gamma init N(1, 0.02), beta 0). num_classes = 0: plain BN."""
  num_classes: int = 0
  train: bool = True
  axis_name: Optional[str] = None
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x, labels=None):
    affine = not self.num_classes
    h = _batch_norm(self.train, self.axis_name, self.dtype, affine)(x)
    if affine:
      return h
    c = x.shape[-1]

    def init(key, shape, dtype=jnp.float32):
      return jnp.concatenate([1.0 + 0.02 * jax.random.normal(key, (shape[0], c), dtype),
                              jnp.zeros((shape[0], c), dtype)], axis=1)

    gamma, beta = jnp.split(nn.Embed(self.num_classes, 2 * c, embedding_init=init)(labels), 2, axis=-1)
    return gamma[:, None, None, :].astype(h.dtype) * h + beta[:, None, None, :].astype(h.dtype)


class GBlock(nn.Module):
  """G's residual block, upsampling 2x: [B, H, W, C] -> [B, 2H, 2W, features]."""
  features: int
  num_classes: int = 0
  upsample: str = "bilinear"
  train: bool = True
  axis_name: Optional[str] = None
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x, labels=None):
    norm = lambda: ConditionalBatchNorm(self.num_classes, self.train, self.axis_name, self.dtype)  # noqa: E731
    c_in = x.shape[-1]
    h = upsample2x(nn.relu(norm()(x, labels)), self.upsample)
    h = conv(self.features, 3, c_in, math.sqrt(2), self.dtype)(h)
    h = nn.relu(norm()(h, labels))
    h = conv(self.features, 3, self.features, math.sqrt(2), self.dtype)(h)
    return h + conv(self.features, 1, c_in, 1.0, self.dtype)(upsample2x(x, self.upsample))


class ResNetGenerator(nn.Module):
  """z [B, latent] (+ labels [B]) -> images [B, 32, 32, channels] in [-1, 1]."""
  channels: int = 3
  width: int = 256
  num_classes: int = 0
  upsample: str = "bilinear"
  bn_axis_name: Optional[str] = None
  bottom: int = 4
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    h = nn.Dense(self.bottom ** 2 * self.width, kernel_init=xavier(), bias_init=torch_bias(z.shape[-1]),
                 dtype=self.dtype)(z)
    h = h.reshape(h.shape[0], self.bottom, self.bottom, self.width)
    for _ in range(3):
      h = GBlock(self.width, self.num_classes, self.upsample, train, self.bn_axis_name, self.dtype)(h, labels)
    h = _batch_norm(train, self.bn_axis_name, self.dtype)(h)
    h = to_float32(nn.relu(h))
    return nn.tanh(conv(self.channels, 3, self.width, 1.0)(h))


class ResNetDiscriminator(DiscriminatorOptions):
  """images [B, 32, 32, C] (+ labels [B]) -> logits [B]; `features=True`: (logits, the last map
  [B, 8, 8, F] after its ReLU, class logits or None)."""
  width: int = 128

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, features: bool = False):
    f = self.width

    def c(size, c_in, gain):
      return self.layer(conv(f, size, c_in, gain, self.dtype), train)

    h = concat_labels(x, labels, self.num_classes) if self.conditioning == "concat" else x
    c_in = h.shape[-1]
    r = nn.relu(c(3, c_in, math.sqrt(2))(h))  # the optimised first block
    r = avg_pool2x(c(3, f, math.sqrt(2))(r))
    h = r + c(1, c_in, 1.0)(avg_pool2x(h))
    for downsample in (True, False, False):
      h = nn.relu(h)  # Mimicry's in-place ReLU: the shortcut below reads ReLU(h) too
      r = nn.relu(c(3, f, math.sqrt(2))(h))
      r = c(3, f, math.sqrt(2))(r)
      h = avg_pool2x(r) + avg_pool2x(c(1, f, 1.0)(h)) if downsample else r + h
    h = to_float32(nn.relu(h))
    logits, class_logits = head(self, jnp.sum(h, axis=(1, 2)), labels, train, kernel_init=xavier(),
                                bias_init=torch_bias(f), embedding_init=xavier())
    return (logits, h, class_logits) if features else logits


def build(opts, width, d_width, upsample):
  """(ResNetGenerator, ResNetDiscriminator) for `opts` (gan_jax.nets.NetOptions): G's channels `width`
  (Mimicry's ngf), D's `d_width` (ndf; 0: width / 2, Mimicry's 256 / 128), `upsample` in G's blocks."""
  res, _, channels = opts.data_shape
  if res != 32:
    raise ValueError(f"the ResNet nets are 32x32, not {res}")
  dtype = compute_dtype(opts.compute_dtype)
  return (ResNetGenerator(channels=channels, width=width, num_classes=opts.num_classes, upsample=upsample,
                          bn_axis_name=opts.bn_axis_name, dtype=dtype),
          ResNetDiscriminator(width=d_width or width // 2, spectral_norm=opts.spectral_norm,
                              conditioning=opts.conditioning, num_classes=opts.num_classes,
                              minibatch_kernels=opts.minibatch_discrimination,
                              semi_supervised_classes=opts.semi_supervised_classes, dtype=dtype))
