"""The fully connected networks of the original GAN paper (Goodfellow et al. 2014).

`dtype` is the computation dtype of the hidden layers (None: float32); G's output layer and D's
head compute in float32, and every parameter is float32.
"""
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.nets.layers import (ACTIVATIONS, DiscriminatorHead, DiscriminatorOptions, Maxout,
                                 VirtualBatchNorm, compute_dtype, concat_labels, generator_input, to_float32)

BIAS_INITS = ("zeros", "fan_in_uniform")


def bias_init(kind: str, fan_in: int):
  """A dense layer's bias initializer: zeros (flax's default) or U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's).

  With zero biases every first-layer ReLU of a 1-D input kinks at x = 0, so the net starts as two
  linear pieces; PyTorch's nn.Linear draws the biases uniformly and spreads the kinks over the inputs.
  """
  if kind == "zeros":
    return nn.initializers.zeros
  bound = 1.0 / np.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class MLPGenerator(nn.Module):
  """z [B, latent] (+ labels [B]) -> x [B, *out_shape]: `activation` hidden layers, then `output`.

  num_classes > 0: conditional on one-hot labels. vbn_reference_size > 0: virtual
  batch norm before each hidden ReLU (the reference batch is prepended, then dropped).
  """
  hidden: Sequence[int]
  out_shape: Sequence[int]
  output: str = "linear"
  activation: str = "relu"
  num_classes: int = 0
  vbn_reference_size: int = 0
  bias_init: str = "zeros"
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    r = self.vbn_reference_size
    h = generator_input(self, z, labels, self.num_classes, r)
    for width in self.hidden:
      h = nn.Dense(width, dtype=self.dtype, bias_init=bias_init(self.bias_init, h.shape[-1]))(h)
      if r:
        h = VirtualBatchNorm(r)(h)
      h = ACTIVATIONS[self.activation](h)
    x = nn.Dense(int(np.prod(self.out_shape)), bias_init=bias_init(self.bias_init, h.shape[-1]))(to_float32(h))[r:]
    return ACTIVATIONS[self.output](x).reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(DiscriminatorOptions):
  """x [B, ...] (+ labels [B]) -> logits [B]; relu / leaky_relu / tanh / maxout hidden layers.

  `features=True` returns (logits, last hidden h [B, F], class logits [B, C] or None).
  Conditioning: 'concat' joins one-hot labels to x; 'projection' / 'acgan' act in the head.
  """
  hidden: Sequence[int] = (256, 256, 256)
  activation: str = "relu"
  maxout_pieces: int = 5
  dropout: float = 0.0
  bias_init: str = "zeros"

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, features: bool = False):
    def dense(width, h, dtype=self.dtype):
      return self.layer(nn.Dense(width, dtype=dtype, bias_init=bias_init(self.bias_init, h.shape[-1])), train)(h)

    h = x.reshape(x.shape[0], -1)
    if self.conditioning == "concat":
      h = concat_labels(h, labels, self.num_classes)
    for width in self.hidden:
      if self.dropout:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
      if self.activation == "maxout":
        h = self.layer(Maxout(width, self.maxout_pieces, dtype=self.dtype), train)(h)
      else:
        h = ACTIVATIONS[self.activation](dense(width, h))
    if self.dropout:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = to_float32(h)
    logits, class_logits = DiscriminatorHead(
        self.conditioning, self.num_classes, self.minibatch_kernels,
        semi_supervised_classes=self.semi_supervised_classes,
        dense=lambda width: lambda v: dense(width, v, None),
        layer=lambda module: self.layer(module, train))(h, labels)
    return (logits, h, class_logits) if features else logits


def build(opts, g_hidden, d_hidden, g_activation, d_activation, maxout_pieces, d_dropout, g_output, mlp_bias_init):
  """(MLPGenerator, MLPDiscriminator) for `opts` (gan_jax.nets.NetOptions) and the MLP's own options."""
  dtype = compute_dtype(opts.compute_dtype)
  return (MLPGenerator(hidden=tuple(g_hidden), out_shape=opts.data_shape, output=g_output, activation=g_activation,
                       num_classes=opts.num_classes, vbn_reference_size=opts.virtual_batch_norm, bias_init=mlp_bias_init,
                       dtype=dtype),
          MLPDiscriminator(hidden=tuple(d_hidden), activation=d_activation, maxout_pieces=maxout_pieces,
                           dropout=d_dropout, spectral_norm=opts.spectral_norm, conditioning=opts.conditioning,
                           num_classes=opts.num_classes, minibatch_kernels=opts.minibatch_discrimination,
                           semi_supervised_classes=opts.semi_supervised_classes, bias_init=mlp_bias_init,
                           dtype=dtype))
