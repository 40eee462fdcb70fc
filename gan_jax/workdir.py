"""The run's directory: one run at a time (a lock), files written whole (temp + rename), strict JSON,
metrics.jsonl repaired after a crash, and earlier outputs set aside (never deleted) for --restart.

Every file the project writes goes through `write_atomic` or `append_line`: whole files are written to
a new temporary file (O_EXCL | O_NOFOLLOW, mode 0666 less the umask) and renamed over the target, so a
symbolic link planted at the target is replaced, never followed, and a failed write leaves the old
file whole; appends open with O_NOFOLLOW, so a planted link is refused. A write that fails (a full
disk, an I/O error, a link) raises a WorkdirError naming the path and the cause.
"""
import datetime
import errno
import json
import math
import os
import secrets
import shutil
import socket
import threading
import time

import numpy as np
from absl import logging

from gan_jax.errors import WorkdirError

LOCK = ".lock"
HEARTBEAT_SECONDS = 30.0  # The holder touches its lock this often ...
STALE_SECONDS = 300.0     # ... so a lock untouched this long was left by a dead process on another host.
OUTPUTS = ("checkpoints", "checkpoints_best", "checkpoints_corrupt", "metrics.jsonl", "samples", "eval",
           "tensorboard", "config.json", "config_history.jsonl", "reals.png")


# --- files written whole ------------------------------------------------------------------------

def strict_json(value):
  """`value` with every non-finite float replaced by None, and {key: 'inf' / '-inf' / 'nan'} of those
  replaced at the top level under 'nonfinite' (JSON has no Infinity or NaN; strict parsers reject them)."""
  nonfinite = {}

  def clean(v, key=None):
    if isinstance(v, dict):
      return {k: clean(x, k) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
      return [clean(x) for x in v]
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
      if key is not None:
        nonfinite[key] = str(float(v))
      return None
    if isinstance(v, np.generic):
      return v.item()
    return v

  out = clean(value)
  if nonfinite and isinstance(out, dict):
    out["nonfinite"] = nonfinite
  return out


def write_error(path: str, error: OSError) -> WorkdirError:
  """The one-line error of a write that failed: the path, the cause, and that older files are kept."""
  cause = f"{error.strerror or error} ({errno.errorcode.get(error.errno, 'error')})" if error.errno else str(error)
  hint = "; free some space there" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
  if error.errno == errno.ELOOP:
    cause, hint = "it is a symbolic link this run did not create", "; remove the link (or use another --workdir)"
  return WorkdirError(f"writing {path} failed: {cause}{hint}. Files written before are kept; rerun the "
                      "same command to go on from the newest checkpoint")


def write_atomic(path: str, write, mode: str = "w"):
  """Calls write(file) on a new temporary file beside `path`, then renames it over `path` (module
  docstring); any OSError becomes a WorkdirError."""
  directory = os.path.dirname(os.path.abspath(path))
  tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
  try:
    os.makedirs(directory, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
      with os.fdopen(fd, mode) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, path)
    except BaseException:
      if os.path.lexists(tmp):
        os.remove(tmp)
      raise
  except OSError as e:
    raise write_error(path, e) from None


def append_line(path: str, line: str):
  """Appends `line` (and a newline) to `path`, creating it (0666 less the umask); a symbolic link at
  `path` is refused, not followed; any OSError becomes a WorkdirError."""
  try:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    with os.fdopen(fd, "a") as f:
      f.write(line + "\n")
  except OSError as e:
    raise write_error(path, e) from None


def write_json(path: str, value, indent=1):
  """Strict JSON (non-finite numbers as null, named under 'nonfinite'), written whole."""
  write_atomic(path, lambda f: json.dump(strict_json(value), f, indent=indent, allow_nan=False))


def save_npy(path: str, array):
  write_atomic(path, lambda f: np.save(f, array), mode="wb")


OUTPUT_FILES = ("metrics.jsonl", "config.json", "config_history.jsonl", "reals.png", "theory.png", LOCK,
                "eval/final_metrics.json", "eval/final_samples.npy")


def refuse_links(workdir: str):
  """A WorkdirError, before anything is written, when a file this run writes is a symbolic link: a
  link it did not create (a workdir under a shared /tmp) must not be followed. Directories may be
  links (checkpoints/ on another disk); the files inside them are written by temp file + rename."""
  for name in OUTPUT_FILES:
    path = os.path.join(workdir, name)
    if os.path.islink(path):
      raise WorkdirError(f"{path} is a symbolic link (to {os.readlink(path)}) that this run did not create; "
                         "it would write through it: remove the link, or use another --workdir")


# --- metrics.jsonl --------------------------------------------------------------------------------

def read_records(path: str):
  """The records of a metrics.jsonl; a torn last line (a crash mid-write) is dropped with a warning."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [l for l in f.read().split("\n") if l.strip()]
  records = []
  for i, line in enumerate(lines):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      where = "its last line" if i == len(lines) - 1 else f"line {i + 1}"
      logging.warning("%s: dropped %s, which is not a whole JSON record (a run stopped while writing it): %r",
                      path, where, line[:80])
  return records


def keep_records_up_to(path: str, step: int):
  """Rewrites metrics.jsonl (whole) with its readable records up to `step`: later ones came from a run
  that died before checkpointing them and are written again by the resumed run."""
  if not os.path.exists(path):
    return
  kept = [r for r in read_records(path) if isinstance(r, dict) and r.get("step", math.inf) <= step]
  write_atomic(path, lambda f: f.writelines(json.dumps(r) + "\n" for r in kept))


# --- one run per workdir ---------------------------------------------------------------------------

def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class WorkdirLock:
  """WORKDIR/.lock while a run writes there: {host, pid, started}; touched every HEARTBEAT_SECONDS.

  A second run refuses at once, naming the holder. A lock left by a process that is gone (same
  host, no such PID; or another host's lock untouched for STALE_SECONDS) is taken over.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK)
    self._stop = threading.Event()
    self._thread = None

  def acquire(self):
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.now().isoformat(timespec="seconds")}
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        self._take_over_or_refuse()
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(me, f)
      self._thread = threading.Thread(target=self._heartbeat, daemon=True)
      self._thread.start()
      return self
    raise WorkdirError(f"could not lock {self.path}")

  def _take_over_or_refuse(self):
    try:
      with open(self.path) as f:
        holder = json.load(f)
      age = time.time() - os.path.getmtime(self.path)
    except (OSError, ValueError):
      holder, age = {}, math.inf  # unreadable: a lock cut short while being written
    same_host = holder.get("host") == socket.gethostname()
    gone = (same_host and not _alive(int(holder.get("pid", -1)))) or (not same_host and age > STALE_SECONDS)
    if not gone:
      raise WorkdirError(
          f"--workdir={os.path.dirname(self.path)} is in use by another run (host {holder.get('host')}, pid "
          f"{holder.get('pid')}, started {holder.get('started')}); wait for it, stop it, or use another --workdir")
    logging.warning("taking over %s, left by a run that is gone (%s)", self.path, holder or "unreadable")
    os.remove(self.path)

  def _heartbeat(self):
    while not self._stop.wait(HEARTBEAT_SECONDS):
      try:
        os.utime(self.path)
      except OSError:
        return

  def release(self):
    self._stop.set()
    if os.path.exists(self.path):
      os.remove(self.path)


# --- --restart ---------------------------------------------------------------------------------------

def set_aside_outputs(workdir: str) -> str:
  """Moves a run's outputs into WORKDIR/previous_<time>/ (kept, never deleted); returns that folder."""
  dest = os.path.join(workdir, "previous_" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
  moved = [name for name in OUTPUTS if os.path.exists(os.path.join(workdir, name))]
  if moved:
    os.makedirs(dest, exist_ok=True)
    for name in moved:
      shutil.move(os.path.join(workdir, name), os.path.join(dest, name))
  return dest if moved else ""
