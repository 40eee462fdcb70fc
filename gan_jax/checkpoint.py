"""Checkpoints with orbax: the whole GANState plus JSON metadata (config, data position).

Layout (orbax's own): WORKDIR/checkpoints/<step>/{state,meta}, the newest
`keep` kept, written asynchronously; WORKDIR/checkpoints_best/<step>/ holds the
best evaluation so far and is never rotated away by the periodic ones.
The metadata holds a sha256 of the state's arrays (orbax verifies no contents);
a restore recomputes it. A checkpoint that cannot be read (a job killed while
writing it), whose arrays do not match their digest (a flipped byte) or are not
finite, is moved to WORKDIR/checkpoints_corrupt/ — never deleted — and the next
newest is used.
"""
import dataclasses
import errno
import hashlib
import os
import re
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from gan_jax.errors import CheckpointError
from gan_jax.sharding import host_array


def absolute(path: str) -> str:
  """orbax needs absolute paths; URLs (gs://...) are left as they are."""
  return path if "://" in path else os.path.abspath(path)


def _manager(directory: str, keep: int | None = None, barrier_prefix: str | None = None,
             timeout_seconds: int = 1200) -> ocp.CheckpointManager:
  """An orbax manager; `barrier_prefix` names its multi-process barriers apart from another manager's.

  Asynchronous saves end at coordination-service barriers named after the step
  ('async_write_complete.<step>'): two managers saving the same step at once (the best and the
  periodic checkpoint of an evaluation step) would enter one barrier twice and one save would fail
  ("Barrier ... is already ongoing") while the other process waits for ever. Distinct prefixes,
  orbax's own means, make the two barriers distinct; `timeout_seconds` bounds every wait.
  """
  return ocp.CheckpointManager(
      absolute(directory), options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=keep is not None, enable_async_checkpointing=True,
          multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=barrier_prefix),
          async_options=ocp.options.AsyncOptions(timeout_secs=timeout_seconds)))


def _restore_args(abstract_state=None):
  """orbax restore arguments: the metadata alone, or the state onto `abstract_state`'s shapes and shardings."""
  if abstract_state is None:
    return ocp.args.Composite(meta=ocp.args.JsonRestore())
  return ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())


def state_digest(state) -> str:
  """sha256 over every array of the state (dtype, shape and bytes, in tree order), on this host."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(state):
    a = host_array(leaf)
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


class CorruptCheckpoint(ValueError):
  """A checkpoint that reads but must not be trained from."""


def verify(state, meta: dict):
  """Raises CorruptCheckpoint when the state does not match its saved digest or is not finite."""
  expected = meta.get("state_sha256")
  if expected is not None and state_digest(state) != expected:
    raise CorruptCheckpoint("its arrays do not match the sha256 saved with them")
  for leaf in jax.tree.leaves(state):
    a = host_array(leaf)
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
      raise CorruptCheckpoint("it holds non-finite numbers")


def _saved_tree(directory: str, step: int):
  """Checkpoint `step`'s state tree of array metadata (orbax's; no array is read), or None for a
  checkpoint that is not whole (no commit marker) or whose metadata cannot be read."""
  state_dir = os.path.join(absolute(directory), str(step), "state")
  if "://" not in state_dir and not os.path.exists(os.path.join(state_dir, "commit_success.txt")):
    return None
  logger = logging.get_absl_logger()
  level = logger.level
  logger.setLevel("ERROR")  # orbax warns that an optional metadata file of the step is absent
  try:
    return ocp.StandardCheckpointer().metadata(state_dir).item_metadata.tree
  except Exception:  # noqa: BLE001 - any failure here means the tree is unknown, not different
    return None
  finally:
    logger.setLevel(level)


def _target(abstract_state, saved_tree):
  """(restore target, fields to add back as None): the state's fields that the checkpoint holds. A
  field that is None now and absent from an older checkpoint (a state field added since, off in this
  run) is left out of the target, so such checkpoints restore as they did."""
  if not dataclasses.is_dataclass(abstract_state) or not isinstance(saved_tree, dict):
    return abstract_state, None
  fields = {f.name: getattr(abstract_state, f.name) for f in dataclasses.fields(abstract_state)}
  absent = [k for k, v in fields.items() if v is None and k not in saved_tree]
  if not absent:
    return abstract_state, None
  return {k: v for k, v in fields.items() if k not in absent}, absent


def _restore(mngr: ocp.CheckpointManager, step: int, abstract_state=None):
  """(state or None, meta dict) of checkpoint `step`, verified: the one restore path."""
  target, absent = _target(abstract_state, _saved_tree(str(mngr.directory), step)) if abstract_state is not None \
      else (None, None)
  restored = mngr.restore(step, args=_restore_args(target))
  meta = dict(restored.meta)
  if abstract_state is None:
    return None, meta
  state = restored.state if absent is None else type(abstract_state)(**restored.state, **dict.fromkeys(absent))
  verify(state, meta)
  return state, meta


def saved_layout(directory: str, step: int):
  """{path: (shape, dtype)} of checkpoint `step`'s state arrays (`_saved_tree`), or None: the restore
  path then deals with the checkpoint (sets an incomplete one aside, falls back to the previous)."""
  tree = _saved_tree(directory, step)
  return None if tree is None else layout(tree)


def _path(keys) -> str:
  """'g_opt_state/0/mu/Dense_0/kernel' for the keys of a pytree path (dict keys, attributes, indices)."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys)


def layout(state) -> dict:
  """{path: (shape, dtype)} of a (possibly abstract) state, as `saved_layout` reports a checkpoint's."""
  return {_path(p): (tuple(a.shape), str(a.dtype)) for p, a in jax.tree_util.tree_flatten_with_path(state)[0]}


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


_OS_ERROR = re.compile(r"os_error_code='?(\d+)")  # how tensorstore reports the errno of a failed write


def failure_cause(error: Exception):
  """(what went wrong, what to do first) of a failed save: the errno of an OSError in the exception's
  chain or in tensorstore's message (e.g. 'No space left on device (ENOSPC)'), else its first line."""
  chain, e = [], error
  while e is not None and len(chain) < 10:
    chain.append(e)
    e = e.__cause__ or e.__context__
  codes = [c.errno for c in chain if isinstance(c, OSError) and c.errno]
  codes += [int(m) for c in chain for m in _OS_ERROR.findall(str(c))]
  if codes:
    code = codes[0]
    hint = "free some space there, then " if code in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{os.strerror(code)} ({errno.errorcode.get(code, code)})", hint
  text = str(error).strip()
  return f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}", ""


class Checkpointer:
  """Saves and restores `GANState` + metadata under WORKDIR/checkpoints{,_best}.

  A save that fails on this process (its write, or a barrier another process never reached
  within `timeout_seconds`) surfaces at the next save, wait or close as a CheckpointError naming
  the directory, so every process of a job stops within the timeout instead of waiting for ever.
  """

  def __init__(self, workdir: str, keep: int, timeout_seconds: int = 1200):
    self.workdir = workdir = absolute(workdir)
    self.directory = os.path.join(workdir, "checkpoints")
    self.best_directory = os.path.join(workdir, "checkpoints_best")
    self._mngr = _manager(self.directory, keep, "periodic", timeout_seconds)
    self._best = _manager(self.best_directory, 1, "best", timeout_seconds)

  def _reporting(self, mngr, action):
    try:
      return action()
    except Exception as e:  # noqa: BLE001 - orbax raises many types from its background threads.
      directory = self.best_directory if mngr is self._best else self.directory
      cause, hint = failure_cause(e)
      raise CheckpointError(f"saving a checkpoint in {directory} failed on process {jax.process_index()}: "
                            f"{cause}. The checkpoints written before are kept; {hint}rerun the same command "
                            "to resume") from e

  def save(self, step: int, state, meta: dict, best: bool = False):
    """Starts an asynchronous save (with the state's digest in the metadata); `best` writes to
    checkpoints_best/ instead."""
    mngr = self._best if best else self._mngr
    if step in mngr.all_steps():
      return
    meta = {**meta, "state_sha256": state_digest(state)}
    self._reporting(mngr, lambda: mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True))

  def wait(self):
    for mngr in (self._mngr, self._best):
      self._reporting(mngr, mngr.wait_until_finished)

  def latest_step(self):
    return self._mngr.latest_step()

  def restore_latest(self, abstract_state):
    """(state, meta, step) from the newest readable checkpoint, or None if there is none.

    Unreadable, unverified or non-finite checkpoints are set aside in checkpoints_corrupt/ with a warning;
    a whole checkpoint whose tree is another one than the state's (another version's) is refused as it
    is, never set aside as corrupt.
    """
    for step in sorted(self._mngr.all_steps(), reverse=True):
      try:
        return (*_restore(self._mngr, step, abstract_state), step)
      except Exception as e:  # noqa: BLE001 - a partial write shows up as many error types.
        if "tree structures do not match" in str(e) and _saved_tree(self.directory, step) is not None:
          raise CheckpointError(f"the checkpoint {self.directory}/{step} holds a state of another structure than "
                                "this version of gan-jax builds (nothing was changed in it); finish that run with "
                                "the version that wrote it, or use a new --workdir") from None
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
    """Waits for the saves in flight and closes both managers; raises the first failure of them."""
    failures = []
    for step in (self.wait, lambda: self._reporting(self._mngr, self._mngr.close),
                 lambda: self._reporting(self._best, self._best.close)):
      try:
        step()
      except CheckpointError as e:
        failures.append(e)
    if failures:
      raise failures[0]


def restore_from(directory: str, step: int | None, abstract_state):
  """(state, meta, step) from `directory` (checkpoints/ or checkpoints_best/), for sampling."""
  mngr = _manager(directory)
  step = mngr.latest_step() if step is None else step
  if step is None or step not in mngr.all_steps():
    raise CheckpointError(f"no checkpoint {'at step ' + str(step) if step is not None else ''} in "
                          f"{directory} (available: {sorted(mngr.all_steps()) or 'none'})")
  return (*_restore(mngr, step, abstract_state), step)
