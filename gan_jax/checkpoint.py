"""Checkpoints with orbax: the whole GANState plus JSON metadata (config, data position).

Layout (orbax's own): WORKDIR/checkpoints/<step>/{state,meta}, the newest
`keep` kept, written asynchronously; WORKDIR/checkpoints_best/<step>/ holds the
best evaluation so far and is never rotated away by the periodic ones.
A checkpoint that cannot be read (e.g. a job killed while writing it) is moved
to WORKDIR/checkpoints_corrupt/ — never deleted — and the next newest is used.
"""
import os
import shutil

import jax
import orbax.checkpoint as ocp
from absl import logging

from gan_jax.errors import CheckpointError


def absolute(path: str) -> str:
  """orbax needs absolute paths; URLs (gs://...) are left as they are."""
  return path if "://" in path else os.path.abspath(path)


def _manager(directory: str, keep: int | None = None, async_save: bool = True) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      absolute(directory), options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=keep is not None, enable_async_checkpointing=async_save))


def _restore_args(abstract_state=None):
  """orbax restore arguments: the metadata alone, or the state onto `abstract_state`'s shapes and shardings."""
  if abstract_state is None:
    return ocp.args.Composite(meta=ocp.args.JsonRestore())
  return ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())


def _restore(mngr: ocp.CheckpointManager, step: int, abstract_state=None):
  """(state or None, meta dict) of checkpoint `step`: the one restore path."""
  restored = mngr.restore(step, args=_restore_args(abstract_state))
  return (restored.state if abstract_state is not None else None), dict(restored.meta)


def read_meta(directory: str, step: int | None = None):
  """(step, metadata dict) of the newest (or given) checkpoint in `directory`, or (None, None)."""
  if "://" not in directory and not os.path.isdir(directory):
    return None, None
  mngr = _manager(directory)
  steps = sorted(mngr.all_steps(), reverse=True) if step is None else [step]
  for s in steps:
    try:
      return s, _restore(mngr, s)[1]
    except Exception as e:  # noqa: BLE001 - any read failure means this one is unusable.
      logging.warning("checkpoint %s/%d has unreadable metadata (%s)", directory, s, type(e).__name__)
  return None, None


class Checkpointer:
  """Saves and restores `GANState` + metadata under WORKDIR/checkpoints{,_best}."""

  def __init__(self, workdir: str, keep: int):
    self.workdir = workdir = absolute(workdir)
    self.directory = os.path.join(workdir, "checkpoints")
    self.best_directory = os.path.join(workdir, "checkpoints_best")
    self._mngr = _manager(self.directory, keep)
    self._best = _manager(self.best_directory, 1)

  def save(self, step: int, state, meta: dict, best: bool = False):
    """Starts an asynchronous save; `best` writes to checkpoints_best/ instead."""
    mngr = self._best if best else self._mngr
    if step in mngr.all_steps():
      return
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                            meta=ocp.args.JsonSave(meta)), force=True)

  def wait(self):
    self._mngr.wait_until_finished()
    self._best.wait_until_finished()

  def latest_step(self):
    return self._mngr.latest_step()

  def restore_latest(self, abstract_state):
    """(state, meta, step) from the newest readable checkpoint, or None if there is none.

    Unreadable checkpoints are set aside in checkpoints_corrupt/ with a warning.
    """
    for step in sorted(self._mngr.all_steps(), reverse=True):
      try:
        return (*_restore(self._mngr, step, abstract_state), step)
      except Exception as e:  # noqa: BLE001 - a partial write shows up as many error types.
        self._set_aside(step, e)
    return None

  def _set_aside(self, step: int, error: Exception):
    dest = os.path.join(self.workdir, "checkpoints_corrupt", str(step))
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(dest), exist_ok=True)
      if os.path.exists(dest):
        shutil.rmtree(dest)
      shutil.move(os.path.join(self.directory, str(step)), dest)
    logging.warning("checkpoint at step %d is incomplete or corrupt (%s: %s); moved it to %s and "
                    "falling back to the previous one", step, type(error).__name__,
                    str(error).splitlines()[0][:200] if str(error) else "", dest)
    self._mngr.reload()

  def close(self):
    self.wait()
    self._mngr.close()
    self._best.close()


def restore_from(directory: str, step: int | None, abstract_state):
  """(state, meta, step) from `directory` (checkpoints/ or checkpoints_best/), for sampling."""
  mngr = _manager(directory)
  step = mngr.latest_step() if step is None else step
  if step is None or step not in mngr.all_steps():
    raise CheckpointError(f"no checkpoint {'at step ' + str(step) if step is not None else ''} in "
                          f"{directory} (available: {sorted(mngr.all_steps()) or 'none'})")
  return (*_restore(mngr, step, abstract_state), step)
