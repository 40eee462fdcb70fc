"""Rebuild a trained run from its workdir alone: config, networks and state from a checkpoint."""
import dataclasses
import os

import jax
import numpy as np

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax.nets import build_nets
from gan_jax.state import create_state, make_optimizers
from gan_jax.steps import cycled_labels, make_generate_fn


def config_from_dict(d: dict) -> config_lib.Config:
  fields = {f.name: f for f in dataclasses.fields(config_lib.Config)}
  values = {k: tuple(v) if isinstance(fields[k].default, tuple) else v for k, v in d.items() if k in fields}
  return config_lib.Config(**values)


def load_run(workdir: str, step: int | None = None, best: bool = False):
  """(cfg, nets, state, step, meta) from WORKDIR/checkpoints (or checkpoints_best with best=True)."""
  directory = os.path.join(workdir, "checkpoints_best" if best else "checkpoints")
  found, meta = ckpt_lib.read_meta(directory, step)
  if meta is None:
    raise ckpt_lib.CheckpointError(
        f"no readable checkpoint{' at step ' + str(step) if step is not None else ''} in {directory}")
  cfg = config_from_dict(meta["config"])
  nets = build_nets(cfg, meta["data_shape"], num_classes=meta.get("num_classes", 0))
  g_tx, d_tx = make_optimizers(cfg)
  # Restored onto this process's first device, whatever topology the run was trained on.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                          jax.eval_shape(lambda: create_state(cfg, nets, g_tx, d_tx)))
  state, meta, found = ckpt_lib.restore_from(directory, found, abstract)
  return cfg, nets, state, found, meta


def generate_from_latents(nets, state, z, labels=None, chunk: int = 1000):
  """G_ema(z) in inference mode for latents z [N, latent_dim]: numpy [N, *data_shape].

  A conditional G takes `labels` [N] (default: row i gets class i % num_classes).
  """
  generate = make_generate_fn(nets)
  z = jax.numpy.asarray(z, jax.numpy.float32)
  if nets.num_classes and labels is None:
    labels = cycled_labels(len(z), nets.num_classes)
  part = lambda i: None if labels is None else jax.numpy.asarray(labels[i:i + chunk], jax.numpy.int32)  # noqa: E731
  return np.concatenate([np.asarray(generate(state.ema_g_params, state.g_collections, z[i:i + chunk],
                                             part(i)))
                         for i in range(0, len(z), chunk)])


def generate_samples(nets, state, num_samples: int, seed: int = 0, label=None):
  """num_samples draws of G_ema(z), z ~ N(0, I) from `seed`: numpy [N, *data_shape].

  `label`: a conditional G's class for every sample (None: the classes in turn).
  """
  z = jax.random.normal(jax.random.PRNGKey(seed), (num_samples, nets.latent_dim))
  labels = None if label is None else np.full((num_samples,), label, np.int32)
  return generate_from_latents(nets, state, z, labels)
