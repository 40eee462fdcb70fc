"""The MNIST networks of Salimans et al. 2016 ("Improved techniques for training GANs", sec. 5.1), as
openai/improved-gan's `mnist_svhn_cifar10/train_mnist_feature_matching.py` and `nn.py` write them.

G: z -> [Dense(w), batch norm without scale, softplus] per --g_hidden (500, 500) -> a weight-normalised
   Dense (trainable scale, Glorot-uniform direction) -> tanh.
D: x flattened -> Gaussian noise (sigma --d_input_noise, 0.6) -> [weight-normalised Dense(w), ReLU, Gaussian noise
   (sigma HIDDEN_NOISE)] per --d_hidden (1000, 500, 250, 250, 250) -> the head, a weight-normalised Dense
   with a trainable scale (K class logits under --labeled_examples, `layers.DiscriminatorHead`). Every
   hidden layer's scale is fixed at its data-dependent init (improved-gan trains only the head's); the
   directions start N(0, 0.1). D is initialised on INIT_ROWS training images (`nets.ModelSpec.init_rows`):
   each unit's pre-activation has mean 0 and std 1 there. Feature matching matches the last hidden
   layer's output before its noise (improved-gan's `layers[-3]`).

Where we differ, and why: pixels are in [-1, 1], not [0, 1], so G ends in tanh (= 2 sigmoid(2a) - 1, the same
family) and D's input noise is 0.6 (improved-gan's 0.3 in [0, 1] units); 32x32 padded digits (1,024
inputs, not 784); the init batch passes D without noise (improved-gan's init pass adds it); improved-gan
draws z ~ U[0, 1]^100, which batch norm after G's first layer makes the same as our U[-1, 1] (--latent_distribution).
"""
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np

from gan_jax.nets.layers import (BN_MOMENTUM, DiscriminatorHead, DiscriminatorOptions, GaussianNoise, WeightNormDense,
                                 compute_dtype, concat_labels, generator_input, to_float32)

INPUT_NOISE = 0.6   # improved-gan: 0.3 on pixels in [0, 1] (--d_input_noise's default)
HIDDEN_NOISE = 0.5
INIT_ROWS = 500     # improved-gan: init_param(trainx[:500])
BN_EPSILON = 1e-6   # improved-gan's BatchNormLayer


class ImprovedGANGenerator(nn.Module):
  """z [B, latent] (+ labels [B]) -> x [B, *out_shape] in [-1, 1]."""
  hidden: Sequence[int]
  out_shape: Sequence[int]
  num_classes: int = 0
  bn_axis_name: Optional[str] = None
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    h = generator_input(self, z, labels, self.num_classes, 0)
    for width in self.hidden:  # improved-gan's batch_norm drops the Dense's bias; BN has no scale (g=None)
      h = nn.Dense(width, use_bias=False, kernel_init=nn.initializers.xavier_uniform(), dtype=self.dtype)(h)
      h = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, use_scale=False,
                       axis_name=self.bn_axis_name if train else None)(to_float32(h))
      h = jax.nn.softplus(h)
    x = WeightNormDense(int(np.prod(self.out_shape)), train_scale=True, data_init=False, epsilon=1e-6,
                        kernel_init=nn.initializers.xavier_uniform())(h)
    return nn.tanh(x).reshape(z.shape[0], *self.out_shape)


class ImprovedGANDiscriminator(DiscriminatorOptions):
  """x [B, ...] (+ labels [B]) -> logits [B]; `features=True`: (logits, last hidden [B, F], class logits)."""
  hidden: Sequence[int] = (1000, 500, 250, 250, 250)
  input_noise: float = INPUT_NOISE

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, features: bool = False):
    h = x.reshape(x.shape[0], -1)
    if self.conditioning == "concat":
      h = concat_labels(h, labels, self.num_classes)
    h = GaussianNoise(self.input_noise)(h, train)
    for i, width in enumerate(self.hidden):
      h = nn.relu(self.layer(WeightNormDense(width, train_scale=False, dtype=self.dtype), train)(h))
      if i < len(self.hidden) - 1:
        h = GaussianNoise(HIDDEN_NOISE)(h, train)
    last = to_float32(h)
    logits, class_logits = DiscriminatorHead(
        self.conditioning, self.num_classes, self.minibatch_kernels,
        semi_supervised_classes=self.semi_supervised_classes,
        dense=lambda width: self.layer(WeightNormDense(width, train_scale=True), train),
        layer=lambda module: self.layer(module, train))(GaussianNoise(HIDDEN_NOISE)(last, train), labels)
    return (logits, last, class_logits) if features else logits


def build(opts, g_hidden, d_hidden, d_input_noise=INPUT_NOISE):
  """(ImprovedGANGenerator, ImprovedGANDiscriminator) for `opts` (gan_jax.nets.NetOptions)."""
  dtype = compute_dtype(opts.compute_dtype)
  return (ImprovedGANGenerator(hidden=tuple(g_hidden), out_shape=opts.data_shape, num_classes=opts.num_classes,
                               bn_axis_name=opts.bn_axis_name, dtype=dtype),
          ImprovedGANDiscriminator(hidden=tuple(d_hidden), input_noise=d_input_noise, spectral_norm=opts.spectral_norm,
                                   conditioning=opts.conditioning, num_classes=opts.num_classes,
                                   minibatch_kernels=opts.minibatch_discrimination,
                                   semi_supervised_classes=opts.semi_supervised_classes, dtype=dtype))
