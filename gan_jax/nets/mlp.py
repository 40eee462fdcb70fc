"""The fully connected networks of the original GAN paper (Goodfellow et al. 2014)."""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gan_jax.nets.layers import ACTIVATIONS, Maxout


class MLPGenerator(nn.Module):
  """z [B, latent] -> x [B, *out_shape]: ReLU hidden layers, then `output` activation."""
  hidden: Sequence[int]
  out_shape: Sequence[int]
  output: str = "linear"

  @nn.compact
  def __call__(self, z, train: bool = True):
    h = z
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    x = nn.Dense(int(np.prod(self.out_shape)))(h)
    return ACTIVATIONS[self.output](x).reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
  """x [B, ...] -> logits [B]: relu / leaky_relu / maxout hidden layers, optional dropout."""
  hidden: Sequence[int]
  activation: str = "relu"
  maxout_pieces: int = 5
  dropout: float = 0.0
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, train: bool = True):
    dense = lambda width, h: (nn.SpectralNorm(nn.Dense(width))(h, update_stats=train)  # noqa: E731
                              if self.spectral_norm else nn.Dense(width)(h))
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      if self.dropout:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
      if self.activation == "maxout":
        h = Maxout(width, self.maxout_pieces)(h)
      else:
        h = ACTIVATIONS[self.activation](dense(width, h))
    if self.dropout:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return jnp.squeeze(dense(1, h), -1)
