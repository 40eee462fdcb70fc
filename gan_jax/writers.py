"""Where metrics go: `metrics.jsonl`, TensorBoard event files (tensorboardX) and the console.

Only the chief process (index 0) writes; the others get a writer that does nothing.
"""
import contextlib
import json
import logging as python_logging
import os
import sys
import time

import numpy as np
from absl import logging

from gan_jax.workdir import append_line, strict_json, write_error


def _summary_writer_class():
  """tensorboardX's SummaryWriter, imported without PyTorch where PyTorch is not loaded already.

  tensorboardX imports torch when it is installed (only to accept torch tensors, which this
  project never passes): 1.7 s of every run's start-up on these CPUs where `.[bench]` installs
  torch. A None entry in sys.modules makes that `import torch` fail as if torch were absent, and
  is removed straight after, so a later `import torch` in the same process works.
  """
  if "tensorboardX" in sys.modules or "torch" in sys.modules:
    from tensorboardX import SummaryWriter
    return SummaryWriter
  sys.modules["torch"] = None
  try:
    from tensorboardX import SummaryWriter
  finally:
    del sys.modules["torch"]
  return SummaryWriter


class MetricWriter:
  """Appends one JSON object per evaluation to WORKDIR/metrics.jsonl and mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.workdir = workdir
    self._tb = None
    if enabled:
      self._tb = _summary_writer_class()(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, values: dict):
    """One line of strict JSON (a non-finite value is written null and named under 'nonfinite')."""
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _plain(v) for k, v in values.items()}}
    append_line(os.path.join(self.workdir, "metrics.jsonl"), json.dumps(strict_json(record), allow_nan=False))
    with self._tensorboard():
      for k, v in record.items():
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
          self._tb.add_scalar(k, v, step)
      self._tb.flush()

  @contextlib.contextmanager
  def _tensorboard(self):
    """TensorBoard's own writes (event files under WORKDIR/tensorboard) fail as the project's do."""
    try:
      yield
    except OSError as e:
      raise write_error(os.path.join(self.workdir, "tensorboard"), e) from None

  def write_image(self, step: int, name: str, image_uint8):
    """image_uint8: [H, W, C]."""
    if self.enabled:
      with self._tensorboard():
        self._tb.add_image(name, np.asarray(image_uint8), step, dataformats="HWC")
        self._tb.flush()

  def close(self):
    if self._tb is not None:
      with self._tensorboard():
        self._tb.close()


def _plain(v):
  if isinstance(v, (list, tuple)):
    return [_plain(x) for x in v]
  a = np.asarray(v)
  if a.ndim == 0:
    return a.item()
  return a.tolist()


class _QuietLibraries:
  """Drops INFO chatter of orbax and jax's backend probing (their warnings stay), and the tracebacks
  orbax and asyncio log when a checkpoint write fails (a full disk): each keeps its first line, and
  the run's own one-line error (gan_jax.checkpoint) names the cause and the directory."""

  def filter(self, record):
    noisy = any(part in record.pathname for part in ("/orbax/", "/jax/_src/xla_bridge"))
    if record.levelno < python_logging.WARNING:
      return not noisy
    if record.name == "asyncio" and str(record.msg).split("\n")[0].endswith("exception was never retrieved"):
      return False  # orbax's write tasks, failed and already reported through the save that awaited them
    if (noisy or record.name == "asyncio") and record.exc_info:
      record.exc_info, record.exc_text = None, None
      record.msg, record.args = str(record.getMessage()).splitlines()[0][:300], ()
    return True


def quiet_library_logs():
  logging.get_absl_logger().addFilter(_QuietLibraries())
  python_logging.getLogger("asyncio").addFilter(_QuietLibraries())


def format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
  """Console progress lines: steps/s since the previous line, and the ETA."""

  def __init__(self, step: int, total: int):
    self.total, self.step, self.time = total, step, time.time()

  def log(self, step: int, metrics: dict):
    now = time.time()
    log_progress(step, self.total, metrics, (step - self.step) / max(now - self.time, 1e-9))
    self.step, self.time = step, now


def log_progress(step: int, total: int, metrics: dict, steps_per_sec: float):
  eta = (total - step) / steps_per_sec if steps_per_sec > 0 else 0.0
  parts = [f"step {step}/{total}"]
  for key, label in (("d_loss", "d_loss"), ("g_loss", "g_loss"), ("d_real", "D(x)"),
                     ("d_fake", "D(G(z))")):
    if key in metrics:
      parts.append(f"{label} {float(metrics[key]):.4f}")
  parts.append(f"{steps_per_sec:.1f} steps/s")
  parts.append(f"ETA {format_duration(eta)}")
  logging.info(" | ".join(parts))
