"""G(z) for evaluation and sampling: the EMA generator in inference mode, in chunks, classes in turn.

One place for the training evaluator, `experiments/evaluate.py` and `experiments/sample.py`.
A conditional G without given labels draws the classes in turn over the whole sample set
(label i % C for sample i), so chunked generation still covers the classes evenly.
"""
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.nets import GANNets, apply_module
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


def latents(seed: int, num_samples: int, latent_dim: int):
  """z ~ N(0, I) [num_samples, latent_dim] from a seed of the caller's."""
  return jax.random.normal(jax.random.PRNGKey(seed), (num_samples, latent_dim))


def generate_samples(nets: GANNets, state, num_samples: int, seed: int = 0, label=None, chunk: int = 1000):
  """num_samples draws of G_ema(z), z ~ N(0, I) from `seed`: numpy [N, *data_shape] in model units.

  `label`: a conditional G's class for every sample (None: the classes in turn).
  """
  labels = None if label is None else np.full((num_samples,), label, np.int32)
  return Generator(nets, chunk)(state, latents(seed, num_samples, nets.latent_dim), labels)


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
