"""The run's directory: one run at a time (a lock), files written whole (temp + rename), strict JSON,
metrics.jsonl repaired after a crash, and earlier outputs set aside (never deleted) for --restart.
"""
import datetime
import json
import math
import os
import shutil
import socket
import tempfile
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


def write_atomic(path: str, write, mode: str = "w"):
  """Calls write(file) on a temporary file beside `path`, then renames it over `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
  try:
    with os.fdopen(fd, mode) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, value, indent=1):
  """Strict JSON (non-finite numbers as null, named under 'nonfinite'), written whole."""
  write_atomic(path, lambda f: json.dump(strict_json(value), f, indent=indent, allow_nan=False))


def save_npy(path: str, array):
  write_atomic(path, lambda f: np.save(f, array), mode="wb")


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
