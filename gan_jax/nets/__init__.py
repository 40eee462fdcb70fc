"""Network registry: `build_nets(config, data_shape)` -> `GANNets`, and `apply_module`."""
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.errors import ConfigError
from gan_jax.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_jax.nets.layers import PackedDiscriminator
from gan_jax.nets.mlp import MLPDiscriminator, MLPGenerator


class GANNets(NamedTuple):
  generator: nn.Module      # apply(vars, z [B, latent_dim], labels [B] | None, train) -> x [B, *data_shape]
  discriminator: PackedDiscriminator  # apply(vars, x [B, *data_shape], labels [B] | None, train) -> logits [B/pack]
  latent_dim: int
  data_shape: tuple         # one sample's shape, e.g. (2,) or (32, 32, 1)
  num_classes: int = 0      # > 0: G and D are conditioned on labels (cfg.conditioning)


def apply_module(module, params, collections, inputs, train: bool, rng=None, **kwargs):
  """Applies a network to `inputs` (a tuple); returns (output, collections after the call).

  In train mode the non-parameter collections (batch statistics, spectral-norm vectors) are
  mutable and come back updated; in inference mode they come back as given. `rng` feeds dropout.
  """
  variables = {"params": params, **collections}
  rngs = {"dropout": rng} if rng is not None else None
  if train and collections:
    return module.apply(variables, *inputs, train=True, rngs=rngs, mutable=list(collections), **kwargs)
  return module.apply(variables, *inputs, train=train, rngs=rngs, **kwargs), collections


def _conditioning(cfg, num_classes):
  """(conditioning, classes G and D see): 0 classes for an unconditional GAN."""
  if cfg.conditioning == "none":
    return "none", 0
  if num_classes < 2:
    raise ConfigError("conditioning", cfg.conditioning,
                      f"needs a labelled dataset, and --dataset={cfg.dataset} has {num_classes} classes; "
                      "use --conditioning=none or a dataset with labels (mnist5k, a labelled tfds "
                      "dataset, a folder of class subfolders, the toy mixtures)")
  return cfg.conditioning, num_classes


# --precision -> the hidden layers' computation dtype (None: float32, as the parameters).
COMPUTE_DTYPES = {"f32": None, "bf16": jnp.bfloat16}


def _mlp(cfg, data_shape, axis_name, conditioning, num_classes):
  del axis_name
  dtype = COMPUTE_DTYPES[cfg.precision]
  return (MLPGenerator(hidden=tuple(cfg.g_hidden), out_shape=tuple(data_shape), output=cfg.g_output,
                       num_classes=num_classes, vbn_reference_size=cfg.virtual_batch_norm, dtype=dtype),
          MLPDiscriminator(hidden=tuple(cfg.d_hidden), activation=cfg.d_activation,
                           maxout_pieces=cfg.maxout_pieces, dropout=cfg.d_dropout,
                           spectral_norm=cfg.spectral_norm, conditioning=conditioning,
                           num_classes=num_classes, minibatch_kernels=cfg.minibatch_discrimination, dtype=dtype))


def _dcgan(cfg, data_shape, axis_name, conditioning, num_classes):
  res, _, channels = data_shape
  bn_axis = axis_name if cfg.bn_sync else None
  dtype = COMPUTE_DTYPES[cfg.precision]
  return (DCGANGenerator(resolution=res, channels=channels, width=cfg.width, bn_axis_name=bn_axis,
                         num_classes=num_classes, vbn_reference_size=cfg.virtual_batch_norm, dtype=dtype),
          DCGANDiscriminator(resolution=res, width=cfg.width, bn_axis_name=bn_axis,
                             spectral_norm=cfg.spectral_norm, conditioning=conditioning,
                             num_classes=num_classes, minibatch_kernels=cfg.minibatch_discrimination,
                             dtype=dtype))


NETS = {"mlp": _mlp, "dcgan": _dcgan}


def build_nets(cfg, data_shape: Sequence[int], axis_name: Optional[str] = None,
               num_classes: int = 0) -> GANNets:
  """Builds G and D for one sample shape and the dataset's `num_classes`.

  `axis_name` is the device axis for synced batch norm. D sits behind PacGAN packing
  (`--pack`), so it takes samples like G's. Raises ConfigError when label conditioning is
  asked of a dataset without labels.
  """
  if cfg.model not in NETS:
    raise KeyError(f"unknown model {cfg.model!r}; valid: {', '.join(sorted(NETS))}")
  conditioning, classes = _conditioning(cfg, num_classes)
  g, d = NETS[cfg.model](cfg, tuple(data_shape), axis_name, conditioning, classes)
  return GANNets(g, PackedDiscriminator(d, cfg.pack), cfg.latent_dim, tuple(data_shape), classes)
