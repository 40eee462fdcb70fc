"""Network registry: `build_nets(config, data_shape)` -> `GANNets`."""
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn

from gan_jax.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_jax.nets.mlp import MLPDiscriminator, MLPGenerator


class GANNets(NamedTuple):
  generator: nn.Module      # apply(vars, z [B, latent_dim], train) -> x [B, *data_shape]
  discriminator: nn.Module  # apply(vars, x [B', ...], train) -> logits [B']
  latent_dim: int
  data_shape: tuple         # one sample's shape, e.g. (2,) or (32, 32, 1)


def _mlp(cfg, data_shape, axis_name):
  del axis_name
  return (MLPGenerator(hidden=tuple(cfg.g_hidden), out_shape=tuple(data_shape), output=cfg.g_output),
          MLPDiscriminator(hidden=tuple(cfg.d_hidden), activation=cfg.d_activation,
                           maxout_pieces=cfg.maxout_pieces, dropout=cfg.d_dropout,
                           spectral_norm=cfg.spectral_norm))


def _dcgan(cfg, data_shape, axis_name):
  res, _, channels = data_shape
  bn_axis = axis_name if cfg.bn_sync else None
  return (DCGANGenerator(resolution=res, channels=channels, width=cfg.width, bn_axis_name=bn_axis),
          DCGANDiscriminator(resolution=res, width=cfg.width, bn_axis_name=bn_axis,
                             spectral_norm=cfg.spectral_norm))


NETS = {"mlp": _mlp, "dcgan": _dcgan}


def build_nets(cfg, data_shape: Sequence[int], axis_name: Optional[str] = None) -> GANNets:
  """Builds G and D for one sample shape; `axis_name` is the device axis for synced batch norm."""
  if cfg.model not in NETS:
    raise KeyError(f"unknown model {cfg.model!r}; valid: {', '.join(sorted(NETS))}")
  g, d = NETS[cfg.model](cfg, tuple(data_shape), axis_name)
  return GANNets(g, d, cfg.latent_dim, tuple(data_shape))
