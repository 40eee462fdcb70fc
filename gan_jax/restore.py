"""Rebuild a trained run from its workdir alone: config, networks and state from a checkpoint."""
import os

import jax

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax import validation
from gan_jax.errors import CheckpointError, ConfigError
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
  saved = meta.get("config") if isinstance(meta.get("config"), dict) else {}
  if saved.get("seeds") or saved.get("sweep"):
    from gan_jax import replicas
    names = [name for name, _ in replicas.program_runs(config_lib.config_from_dict(saved))]
    raise CheckpointError(f"{directory}/{found} holds {len(names)} runs stacked (--seeds / --sweep); read one of "
                          f"them: --workdir={os.path.join(workdir, names[0])} (the others: {', '.join(names[1:])})")
  cfg, data_shape, num_classes = checked_meta(meta, f"{directory}/{found}")
  nets = build_nets(cfg, data_shape, num_classes=num_classes)
  g_tx, d_tx = make_optimizers(cfg)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                          jax.eval_shape(lambda: init_state(cfg, nets, g_tx, d_tx)))
  saved = ckpt_lib.saved_layout(directory, found)
  if saved is not None and saved != ckpt_lib.layout(abstract):
    raise CheckpointError(f"{directory}/{found}: its arrays are not those its metadata's flags build (written by "
                          "another gan-jax version, or the metadata was edited); sample it with the version that wrote it")
  try:
    state, meta, found = ckpt_lib.restore_from(directory, found, abstract)
  except CheckpointError:
    raise
  except Exception as e:  # noqa: BLE001 - orbax and the digest check raise many types
    raise CheckpointError(f"{directory}/{found} could not be restored ({type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None
  return cfg, nets, state, found, meta


def load_for_sampling(workdir: str, step: int | None = None, best: bool = False):
  """`load_run`, with the state's G collections those G_ema samples with (--ema_statistics,
  `generate.sampling_state`): what evaluate.py and the benchmarks draw from."""
  from gan_jax import generate
  cfg, nets, state, found, meta = load_run(workdir, step, best)
  return cfg, nets, generate.sampling_state(nets, state, cfg.ema_statistics, cfg.batch_size, cfg.seed), found, meta


def checked_meta(meta: dict, where: str):
  """(cfg, data shape, classes) of a checkpoint's metadata, validated as strictly as flags."""
  try:
    cfg = validation.config_from_record(meta.get("config"))
  except ConfigError as e:
    raise CheckpointError(f"{where}: its metadata's config is not usable: {e}") from None
  shape, classes = meta.get("data_shape"), meta.get("num_classes", 0)
  ints = isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
  if not (ints and len(shape) in (1, 3)) or not (isinstance(classes, int) and classes >= 0):
    raise CheckpointError(f"{where}: its metadata's data_shape {shape!r} / num_classes {classes!r} are not a shape "
                          "of 1 or 3 positive ints and a count")
  return cfg, tuple(shape), classes
