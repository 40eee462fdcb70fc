"""Layers the GAN networks share: a fast stride-2 transposed convolution, maxout, PacGAN packing,
virtual batch norm, minibatch discrimination and label conditioning."""
import dataclasses
from typing import Any, Callable, Optional

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
  kernel gradient is an ordinary convolution gradient. On XLA:CPU (jaxlib 0.10,
  2 cores) the kernel gradient of the strided transposed convolution took
  1.3-1.4 s for an 8x8x256 -> 128 layer at batch 64 against 21 ms for its input
  gradient; with this layer the DCGAN iteration went from 624 to 307 ms
  (benchmarks/results/step_time.md).

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
  dtype: Optional[Any] = None  # computation dtype (None: that of the input); parameters stay float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
    if self.dtype is not None:
      x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    y = subpixel_conv_transpose(x, kernel)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
    return y


class Maxout(nn.Module):
  """h_i = max_j (x W_ij + b_ij), j < pieces (Goodfellow et al. 2013). [B, D] -> [B, features]."""
  features: int
  pieces: int
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x):
    y = nn.Dense(self.features * self.pieces, dtype=self.dtype)(x)
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


@dataclasses.dataclass(frozen=True)
class PackedDiscriminator:
  """D behind PacGAN packing: takes samples [B, ...] like G's output, judges packs of `pack` of them.

  `init` / `apply` have the Flax module's signatures and variables (packing adds no parameters);
  `inputs(x)` is D's own input layout ([B/pack, ...]) and `module` applies to it, which is where
  input-gradient penalties (WGAN-GP, R1) differentiate. pack = 1 is plain D.
  """
  module: nn.Module
  pack: int = 1

  def inputs(self, x):
    """Samples [B, ...] -> D's input [B/pack, ...]."""
    return pack_samples(x, self.pack)

  def init(self, rngs, x, *args, **kwargs):
    return self.module.init(rngs, self.inputs(x), *args, **kwargs)

  def apply(self, variables, x, *args, **kwargs):
    return self.module.apply(variables, self.inputs(x), *args, **kwargs)


class VirtualBatchNorm(nn.Module):
  """Virtual batch normalisation (Salimans et al. 2016, sec. 3.4).

  x: [R + B, ..., F] whose first R = `reference_size` rows are the activations of
  a reference batch fixed at the start of training (the generator prepends its
  reference latents). The reference rows are normalised with the reference
  statistics; example i with the statistics of the reference batch plus itself:
    mu_i = (R * mu_ref + m_i) / (R + 1),  s_i = (R * E_ref[x^2] + E_i[x^2]) / (R + 1),
    y_i = gamma * (x_i - mu_i) / sqrt(s_i - mu_i^2 + eps) + beta,
  m_i, E_i[x^2] being the moments over example i's own spatial positions (x_i
  itself for dense layers). y_i depends on x_i and the reference only, never on
  the rest of its minibatch.
  """
  reference_size: int
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x):
    """Statistics and normalisation in float32 at least; the output in x's dtype."""
    out_dtype = x.dtype
    x = to_float32(x)
    r = self.reference_size
    ref = x[:r]
    batch_axes, own_axes = tuple(range(x.ndim - 1)), tuple(range(1, x.ndim - 1))
    ref_mean, ref_sq = jnp.mean(ref, batch_axes), jnp.mean(jnp.square(ref), batch_axes)
    own_mean = jnp.mean(x, own_axes, keepdims=True)
    own_sq = jnp.mean(jnp.square(x), own_axes, keepdims=True)
    w = 1.0 / (r + 1)
    is_ref = (jnp.arange(x.shape[0]) < r).reshape(-1, *([1] * (x.ndim - 1)))
    mean = jnp.where(is_ref, ref_mean, w * own_mean + (1 - w) * ref_mean)
    sq = jnp.where(is_ref, ref_sq, w * own_sq + (1 - w) * ref_sq)
    var = jnp.maximum(sq - jnp.square(mean), 0.0)
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return ((x - mean) * lax.rsqrt(var + self.epsilon) * scale + bias).astype(out_dtype)


class MinibatchDiscrimination(nn.Module):
  """Minibatch discrimination (Salimans et al. 2016, sec. 3.2). h [N, F] -> [N, F + num_kernels].

  M_i = h_i T reshaped to [num_kernels, kernel_dim]; c_b(i, j) = exp(-||M_i,b - M_j,b||_1);
  o(h_i)_b = sum_{j != i} c_b(i, j), concatenated to h_i. The sum runs over the
  examples D sees together: this device's share of the batch under data parallelism.
  """
  num_kernels: int
  kernel_dim: int = 5

  @nn.compact
  def __call__(self, h):
    h = to_float32(h)  # exp(-L1 distances): in float32
    t = self.param("kernel", nn.initializers.normal(0.1), (h.shape[-1], self.num_kernels * self.kernel_dim))
    m = (h @ t).reshape(h.shape[0], self.num_kernels, self.kernel_dim)
    l1 = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # [N, N, num_kernels]
    o = jnp.sum(jnp.exp(-l1), axis=1) - 1.0  # Drops j = i (exp(0) = 1).
    return jnp.concatenate([h, o], axis=-1)


class GaussianNoise(nn.Module):
  """x + sigma * eps, eps ~ N(0, I) from the 'dropout' rng, in training; x itself in inference (Salimans et
  al. 2016's MNIST D, after Rasmus et al. 2015). Any shape."""
  sigma: float

  @nn.compact
  def __call__(self, x, train: bool):
    if not train or self.sigma == 0:
      return x
    return x + self.sigma * jax.random.normal(self.make_rng("dropout"), x.shape, x.dtype)


def _data_dependent_init(y):
  """(g, b) that give each unit of y [N, F] mean 0 and standard deviation 1 over the N rows: g = 1 / std,
  b = -mean / std; a unit constant over the rows (the all-zero batch of a shapes-only init) gets g = 1, b = 0."""
  mean = jnp.mean(y, axis=0)
  std = jnp.sqrt(jnp.mean(jnp.square(y - mean), axis=0))
  ok = std > 0
  safe = jnp.where(ok, std, 1.0)
  return jnp.where(ok, 1.0 / safe, 1.0), jnp.where(ok, -mean / safe, 0.0)


class WeightNormDense(nn.Module):
  """Weight normalisation (Salimans & Kingma 2016) as improved-gan's MNIST code writes it, [N, D] -> [N, F]:

    y = x (V / ||V||) g + b,   ||V||: each output unit's column norm (+ `epsilon` under the root),

  V ~ `kernel_init`, g = 1, b = 0 at init; `data_init`: g and b from the batch the network is initialised on
  (`_data_dependent_init`: every unit's pre-activation of mean 0 and std 1 there, layer after layer).
  `train_scale=False` holds g at its initial value (a stop_gradient: Adam leaves it exactly where it is),
  as improved-gan does for every hidden layer of its MNIST D.
  """
  features: int
  train_scale: bool = True
  data_init: bool = True
  kernel_init: Callable = nn.initializers.normal(0.1)
  epsilon: float = 0.0
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x):
    v = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
    direction = v / jnp.sqrt(jnp.sum(jnp.square(v), axis=0) + self.epsilon)
    if self.dtype is not None:
      x, direction = x.astype(self.dtype), direction.astype(self.dtype)
    y = to_float32(x @ direction)
    init = _data_dependent_init(y) if self.data_init and self.is_initializing() else (None, None)
    scale = self.param("scale", lambda _, n: jnp.ones((n,)) if init[0] is None else init[0], self.features)
    bias = self.param("bias", lambda _, n: jnp.zeros((n,)) if init[1] is None else init[1], self.features)
    if not self.train_scale:
      scale = lax.stop_gradient(scale)
    return y * scale + bias


def spectrally_normalised(module: nn.Module, train: bool):
  """`module` as a callable whose every kernel (parameter of rank >= 2) is divided by its top singular
  value (Miyato et al. 2018), estimated by one power iteration per call; the iteration's vectors are
  updated (and checkpointed, in 'batch_stats') only in training. The parameters keep their names."""
  return lambda *args: nn.SpectralNorm(module)(*args, update_stats=train)


class DiscriminatorOptions(nn.Module):
  """What every discriminator can be asked for (MLP and DCGAN alike)."""
  spectral_norm: bool = False  # Miyato et al. 2018: every layer of D normalised by its top singular value
  conditioning: str = "none"   # none | concat | acgan | projection
  num_classes: int = 0
  minibatch_kernels: int = 0   # minibatch discrimination before the head; 0: off
  semi_supervised_classes: int = 0  # K > 0: the K+1-class head of a semi-supervised GAN (DiscriminatorHead)
  dtype: Optional[Any] = None  # computation dtype of the hidden layers (None: float32)

  def layer(self, module: nn.Module, train: bool):
    """`module` as a callable, spectrally normalised when asked: every layer of D goes through here."""
    return spectrally_normalised(module, train) if self.spectral_norm else module


class DiscriminatorHead(nn.Module):
  """Features h [N, F] -> (logit [N], class logits [N, C] or None), with label conditioning.

  conditioning 'projection' (Miyato & Koyama 2018): logit = w.h + b + embed(y).h;
  'acgan' (Odena et al. 2017): a second, auxiliary classifier head of C logits;
  'none' / 'concat' (labels enter at the input): logit = w.h + b.
  semi_supervised_classes K > 0 (Salimans et al. 2016, sec. 5; unconditional): K class logits l_1..l_K with
  the fake class's logit fixed at 0, so D(x) = Z(x) / (Z(x) + 1), Z(x) = sum_k exp(l_k(x)), and the real/fake
  logit is log Z(x) = logsumexp(l) (`k_plus_one_logit`); the class logits come back as the second output.
  Optional minibatch discrimination features are appended to h first. Computed in float32
  whatever the precision of the layers below (the logits feed the losses). `dense(width)` makes
  the D's dense layer, `layer(module)` wraps any other (both spectrally normalised when D is).
  """
  conditioning: str = "none"
  num_classes: int = 0
  minibatch_kernels: int = 0
  minibatch_kernel_dim: int = 5
  semi_supervised_classes: int = 0
  dense: Callable = nn.Dense
  layer: Callable = lambda module: module
  embedding_init: Callable = nn.initializers.normal(0.02)  # the projection's class embedding

  @nn.compact
  def __call__(self, h, labels=None):
    h = to_float32(h)
    if self.minibatch_kernels:
      h = self.layer(MinibatchDiscrimination(self.minibatch_kernels, self.minibatch_kernel_dim))(h)
    if self.semi_supervised_classes:
      class_logits = self.dense(self.semi_supervised_classes)(h)
      return k_plus_one_logit(class_logits), class_logits
    logit = jnp.squeeze(self.dense(1)(h), -1)
    class_logits = None
    if self.conditioning == "projection":
      embed = self.layer(nn.Embed(self.num_classes, h.shape[-1], embedding_init=self.embedding_init))
      logit = logit + jnp.sum(embed(labels) * h, axis=-1)
    elif self.conditioning == "acgan":
      class_logits = self.layer(nn.Dense(self.num_classes))(h)
    return logit, class_logits


def k_plus_one_logit(class_logits):
  """D's real/fake logit of a K+1-class D whose fake class has logit 0: log Z = logsumexp(l), [N, K] -> [N].

  sigmoid(log Z) = Z / (Z + 1) = 1 - p(y = K+1 | x); logsumexp subtracts the largest logit first, so logits
  of +-100 give finite values and gradients.
  """
  return jax.nn.logsumexp(class_logits, axis=-1)


def head(d: "DiscriminatorOptions", h, labels, train: bool, kernel_init=None, bias_init=None, embedding_init=None):
  """D's head on its last map h [N, ...] (flattened), built inside d's call: (logit [N], class logits).
  The initialisers left None are Flax's (the dense layers) and N(0, 0.02) (the projection's embedding)."""
  kw = {k: v for k, v in (("kernel_init", kernel_init), ("bias_init", bias_init)) if v is not None}
  embedding = {} if embedding_init is None else {"embedding_init": embedding_init}
  return DiscriminatorHead(d.conditioning, d.num_classes, d.minibatch_kernels,
                           semi_supervised_classes=d.semi_supervised_classes, dense=lambda width: d.layer(nn.Dense(width, **kw), train),
                           layer=lambda module: d.layer(module, train), **embedding)(h.reshape(h.shape[0], -1), labels)


def concat_labels(x, labels, num_classes: int):
  """Label conditioning by concatenation (Mirza & Osindero 2014): one-hot(y) joins x.

  [B, D] -> [B, D + C]; images [B, H, W, Ch] -> [B, H, W, Ch + C] (constant label maps).
  """
  onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)
  if x.ndim == 2:
    return jnp.concatenate([x, onehot], axis=-1)
  maps = jnp.broadcast_to(onehot[:, None, None, :], (*x.shape[:-1], num_classes))
  return jnp.concatenate([x, maps], axis=-1)


def generator_input(module: nn.Module, z, labels, num_classes: int, reference_size: int):
  """G's first-layer input: [R + B, latent (+ C)], R = `reference_size` (0 without VBN).

  With virtual batch norm the reference latents (drawn once at init from the
  'params' key and kept in the 'vbn_reference' collection, so checkpointed) are
  prepended; G drops their R rows from its output. With label conditioning
  one-hot labels are concatenated (the reference rows cycle through the classes).
  """
  if reference_size:
    ref = module.variable("vbn_reference", "z", lambda: jax.random.normal(
        module.make_rng("params"), (reference_size, z.shape[-1]), z.dtype)).value
    z = jnp.concatenate([ref, z], axis=0)
    if labels is not None:
      labels = jnp.concatenate([jnp.arange(reference_size) % num_classes, labels])
  if num_classes:
    z = concat_labels(z, labels, num_classes)
  return z


BN_MOMENTUM = 0.9  # every batch norm of the models: running = m * running + (1 - m) * batch statistic


def to_float32(x):
  """x in float32 at least (bfloat16 -> float32; float64 stays): where precision matters."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


# --compute_dtype -> the hidden layers' computation dtype (None: float32, as the parameters).
COMPUTE_DTYPES = {"f32": None, "bf16": jnp.bfloat16}


def compute_dtype(name: str):
  return COMPUTE_DTYPES[name]


ACTIVATIONS = {
    "linear": lambda x: x,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.2),
}
