"""Rebuild a trained run from its workdir alone: config, networks and state from a checkpoint."""
import os

import jax

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax.errors import CheckpointError
from gan_jax.nets import build_nets
from gan_jax.state import init_state, make_optimizers


def load_run(workdir: str, step: int | None = None, best: bool = False):
  """(cfg, nets, state, step, meta) from WORKDIR/checkpoints (or checkpoints_best with best=True).

  The state is restored onto this process's first device, whatever topology the run was trained on.
  """
  directory = os.path.join(workdir, "checkpoints_best" if best else "checkpoints")
  found, meta = ckpt_lib.read_meta(directory, step)
  if meta is None:
    raise CheckpointError(
        f"no readable checkpoint{' at step ' + str(step) if step is not None else ''} in {directory}")
  cfg = config_lib.config_from_dict(meta["config"])
  nets = build_nets(cfg, meta["data_shape"], num_classes=meta.get("num_classes", 0))
  g_tx, d_tx = make_optimizers(cfg)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                          jax.eval_shape(lambda: init_state(cfg, nets, g_tx, d_tx)))
  state, meta, found = ckpt_lib.restore_from(directory, found, abstract)
  return cfg, nets, state, found, meta
