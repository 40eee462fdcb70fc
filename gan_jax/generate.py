"""G(z) for evaluation and sampling: the EMA generator in inference mode, in chunks, classes in turn.

One place for the training evaluator, `experiments/evaluate.py` and `experiments/sample.py`.
A conditional G without given labels draws the classes in turn over the whole sample set
(label i % C for sample i), so chunked generation still covers the classes evenly.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.nets import GANNets, apply_module, draw_latents
from gan_jax.sharding import host_array


def cycled_labels(n: int, num_classes: int):
  """Classes 0, 1, ..., C-1, 0, 1, ... for n samples: int32 [n]."""
  return jnp.arange(n, dtype=jnp.int32) % num_classes


def make_generate_fn(nets: GANNets):
  """jitted (params, collections, z [N, latent], labels [N] = None) -> x [N, *data_shape].

  G in inference mode. A conditional G without labels draws the classes in turn
  (`cycled_labels`: label i % C for row i of this call).
  """

  def generate(params, collections, z, labels=None):
    if nets.num_classes and labels is None:
      labels = cycled_labels(z.shape[0], nets.num_classes)
    return apply_module(nets.generator, params, collections, (z, labels), False)[0]

  return jax.jit(generate)


class Generator:
  """Chunked G_ema(z): `generator(state, z, labels=None)` -> numpy [N, *data_shape] in model units."""

  def __init__(self, nets: GANNets, chunk: int = 500):
    self.nets, self.chunk = nets, chunk
    self._generate = make_generate_fn(nets)

  def __call__(self, state, z, labels=None):
    """z [N, latent]; labels [N] for a conditional G (default: the classes in turn over all N)."""
    z = jnp.asarray(z, jnp.float32)
    if self.nets.num_classes and labels is None:
      labels = cycled_labels(len(z), self.nets.num_classes)
    part = lambda i: None if labels is None else jnp.asarray(labels[i:i + self.chunk], jnp.int32)  # noqa: E731
    return np.concatenate([host_array(self._generate(state.ema_g_params, state.g_collections,
                                                   z[i:i + self.chunk], part(i)))
                           for i in range(0, len(z), self.chunk)])


@functools.lru_cache(maxsize=8)
def _batch_statistics(nets: GANNets):
  """jitted (params, collections, z, labels) -> the batch_stats G returns in train mode."""
  return jax.jit(lambda params, cols, z, y: apply_module(nets.generator, params, cols, (z, y), True)[1]["batch_stats"])


def standing_statistics(nets: GANNets, state, num_batches: int, batch_size: int, seed: int = 0):
  """BigGAN's standing statistics of G_ema: G_ema(z) in train mode on `num_batches` batches of fixed
  latents (labels in turn), each batch-norm layer's batch mean and variance averaged over the batches.

  Each pass starts from zeroed running statistics, so a layer returns (1 - BN_MOMENTUM) times the
  statistic of its batch. `nets` must be built without a device axis (train-mode batch norm).
  """
  from gan_jax.nets.layers import BN_MOMENTUM
  cols = dict(state.g_collections)
  zeros = {**cols, "batch_stats": jax.tree.map(jnp.zeros_like, cols["batch_stats"])}
  one = functools.partial(_batch_statistics(nets), state.ema_g_params, zeros)
  z = draw_latents(nets.latent_distribution, jax.random.fold_in(jax.random.PRNGKey(seed), 2**31 - 3),
                   (num_batches, batch_size, nets.latent_dim))
  labels = cycled_labels(num_batches * batch_size, nets.num_classes).reshape(num_batches, batch_size) \
      if nets.num_classes else [None] * num_batches
  total = jax.tree.map(lambda *batches: sum(batches), *[one(z[i], labels[i]) for i in range(num_batches)])
  return {**cols, "batch_stats": jax.tree.map(lambda t: t / (num_batches * (1.0 - BN_MOMENTUM)), total)}


def sampling_state(nets: GANNets, state, statistics: str, batch_size: int = 64, seed: int = 0):
  """`state` with the batch-norm statistics G_ema samples with (--ema_statistics) as g_collections:
  running (the training G's, unchanged), ema (their EMA, kept in the state) or standing (recomputed,
  `standing_statistics`, from STANDING_BATCHES batches of `batch_size`)."""
  if statistics == "running" or "batch_stats" not in state.g_collections:
    return state
  if statistics == "ema":
    return state.replace(g_collections=state.ema_g_collections)
  from gan_jax.config import STANDING_BATCHES
  return state.replace(g_collections=standing_statistics(nets, state, STANDING_BATCHES, batch_size, seed))


def latents(seed: int, num_samples: int, nets: GANNets):
  """z ~ p_z (nets.latent_distribution) [num_samples, latent_dim] from a seed of the caller's."""
  return draw_latents(nets.latent_distribution, jax.random.PRNGKey(seed), (num_samples, nets.latent_dim))


def generate_samples(nets: GANNets, state, num_samples: int, seed: int = 0, label=None, chunk: int = 1000):
  """num_samples draws of G_ema(z), z ~ N(0, I) from `seed`: numpy [N, *data_shape] in model units.

  `label`: a conditional G's class for every sample (None: the classes in turn).
  """
  labels = None if label is None else np.full((num_samples,), label, np.int32)
  return Generator(nets, chunk)(state, latents(seed, num_samples, nets), labels)


def make_discriminate_fn(nets: GANNets):
  """jitted (params, collections, x [N, *data_shape]) -> D's logits [N / pack]: an unconditional D
  in inference mode, behind its PacGAN packing."""

  def discriminate(params, collections, x):
    return apply_module(nets.discriminator, params, collections, (x, None), False)[0]

  return jax.jit(discriminate)


class Probe:
  """G and D of the training state as numpy functions (the theory's pictures and metrics).

  `samples(state, z, ema)`: G_ema(z) or the training G(z) [N, *data_shape], model units;
  `d_logits(state, x)`: D's logits [N / pack] for model-unit samples x (N a multiple of `pack`).
  Inputs go in chunks of `chunk` rows, the last one padded, so each function compiles once.
  """

  def __init__(self, nets: GANNets, chunk: int = 20000):
    self.nets, self.chunk = nets, chunk - chunk % nets.discriminator.pack
    self._generate, self._discriminate = make_generate_fn(nets), make_discriminate_fn(nets)

  def _chunked(self, fn, x, rows_per_output: int = 1):
    x = np.asarray(x, np.float32)
    out = []
    for i in range(0, len(x), self.chunk):
      part = x[i:i + self.chunk]
      padded = np.concatenate([part, np.zeros((self.chunk - len(part), *x.shape[1:]), np.float32)])
      out.append(host_array(fn(jnp.asarray(padded)))[:len(part) // rows_per_output])
    return np.concatenate(out)

  def samples(self, state, z, ema: bool = True):
    params = state.ema_g_params if ema else state.g_params
    return self._chunked(lambda v: self._generate(params, state.g_collections, v), z)

  def d_logits(self, state, x):
    logits = self._chunked(lambda v: self._discriminate(state.d_params, state.d_collections, v), x,
                           self.nets.discriminator.pack)
    return logits.reshape(-1)
