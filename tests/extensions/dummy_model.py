"""A model outside gan_jax: one dense layer each way (what a contributor's model module looks like)."""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class LinearGenerator(nn.Module):
  out_shape: tuple

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    del labels, train
    return jnp.tanh(nn.Dense(int(np.prod(self.out_shape)))(z)).reshape(z.shape[0], *self.out_shape)


class LinearDiscriminator(nn.Module):
  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, features: bool = False):
    del labels, train
    h = x.reshape(x.shape[0], -1)
    logits = nn.Dense(1)(h)[:, 0]
    return (logits, h, None) if features else logits


def build(opts, g_output):
  """The registry's builder: NetOptions and the one Config field this model reads (ignored here)."""
  del g_output
  return LinearGenerator(opts.data_shape), LinearDiscriminator()
