"""What a resume may change: each Config field's declared policy (gan_jax/config.py) against the
checkpoint's config. Flags that fix shapes must match; flags that change the trajectory need
--allow_config_change (and are then recorded in config_history.jsonl)."""
import os

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax.errors import CheckpointError, ConfigError


def flag_str(value) -> str:
  return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def resume_changes(saved: dict, cfg) -> dict:
  """{'shape': [...], 'trajectory': [...]}: (field, saved value, current value) that differ.

  `saved`: the checkpoint's config (field names of earlier versions translated); fields it does
  not hold (added since) count as unchanged.
  """
  saved = {config_lib.ALIASES.get(k, k): v for k, v in saved.items()}
  out = {config_lib.SHAPE: [], config_lib.TRAJECTORY: []}
  for field, value in config_lib.to_dict(cfg).items():
    if field in saved and saved[field] != value:
      group = config_lib.resume_policy(field, saved[field], value, cfg)
      if group != config_lib.FREE:
        out[group].append((field, saved[field], value))
  return out


def _detail(rows) -> str:
  return ", ".join(f"--{f}={flag_str(new)} (checkpoint: {flag_str(old)})" for f, old, new in rows)


def check_resumable(cfg, saved: dict):
  """The trajectory changes a resume accepts: [(flag, checkpoint's, now)].

  Raises ConfigError naming every flag that differs from the checkpoint's and fixes shapes, or
  that changes the trajectory without --allow_config_change.
  """
  changes = resume_changes(saved, cfg)
  if changes[config_lib.SHAPE]:
    field, _, new = changes[config_lib.SHAPE][0]
    raise ConfigError(field, flag_str(new), f"the checkpoint in {cfg.workdir}/checkpoints was trained with "
                      f"other settings: {_detail(changes[config_lib.SHAPE])}. Use the checkpoint's flags (its "
                      "config.json) or a new --workdir")
  trajectory = changes[config_lib.TRAJECTORY]
  if trajectory and not cfg.allow_config_change:
    field, _, new = trajectory[0]
    raise ConfigError(field, flag_str(new), f"differs from the checkpoint's and would change the run's "
                      f"trajectory: {_detail(trajectory)}. Resume with the checkpoint's flags (its "
                      "config.json), pass --allow_config_change to resume with these (recorded in "
                      "config_history.jsonl), or use a new --workdir")
  return trajectory


def _listed(paths, most: int = 4) -> str:
  paths = sorted(paths)
  return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")


def check_layout(cfg, step: int, abstract_state):
  """Refuses a checkpoint whose state arrays (names, shapes, dtypes) are not those this version builds
  from the checkpoint's own flags, before anything is restored or written: one CheckpointError that
  says which arrays differ and why (a spectral-norm run of a version that left some layers of D
  unnormalised), instead of an orbax traceback or a checkpoint set aside as corrupt."""
  directory = os.path.join(cfg.workdir, "checkpoints")
  saved = ckpt_lib.saved_layout(directory, step)
  if saved is None:
    return
  expected = ckpt_lib.layout(abstract_state)
  missing, extra = set(expected) - set(saved), set(saved) - set(expected)
  reshaped = {p for p in set(saved) & set(expected) if saved[p] != expected[p]}
  if not (missing or extra or reshaped):
    return
  why = "its arrays are not those this version of gan-jax builds for its flags"
  if cfg.spectral_norm and all("SpectralNorm" in p for p in missing | extra):
    why = ("it was written by an earlier gan-jax whose --spectral_norm left the projection embedding, the AC-GAN "
           "head, minibatch discrimination or maxout units of D unnormalised; every layer of D is normalised now, "
           "so its spectral-norm state does not fit")
  detail = "; ".join(f"{name}: {_listed(paths)}" for name, paths in
                     (("missing", missing), ("not expected", extra), ("other shape", reshaped)) if paths)
  raise CheckpointError(f"the checkpoint {directory}/{step} cannot be resumed here: {why} ({detail}). Finish "
                        "that run with the gan-jax version that wrote it, or use a new --workdir (nothing was "
                        "changed in this one)")


def _data_difference(old: dict, new: dict) -> str:
  changed = [f"{k} {old.get(k)!r} then, {new.get(k)!r} now" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
  return "; ".join(changed)


def check_data(cfg, saved_meta: dict, dataset):
  """The data change a resume accepts: [('data', checkpoint's identity, now)] or [].

  A checkpoint records its dataset's fingerprint (gan_jax.data: name, shape, size and a digest of the
  decoded contents, or a tfds dataset's version and split). Other data on resume (an image added to a
  folder, another prepared version) would silently change the run's data order and meaning: refused
  unless --allow_config_change, which records it. Checkpoints that hold no fingerprint pass.
  """
  saved = saved_meta.get("data")
  if saved is None:
    return []
  old, new = data_lib.content_identity(saved), data_lib.content_identity(dataset.fingerprint())
  if old == new:
    return []
  if not cfg.allow_config_change:
    raise ConfigError("dataset", cfg.dataset, f"holds other data than when the checkpoint in {cfg.workdir}/"
                      f"checkpoints was written ({_data_difference(old, new)}): resuming would change the run's data. "
                      "Restore the data, pass --allow_config_change to go on with these (recorded in "
                      "config_history.jsonl), or use a new --workdir")
  return [("data", old, new)]
