"""The exceptions a user sees, under one base: entry points catch `GanJaxError` once and print its
message as one `error:` line with exit code 2 (`gan_jax.cli`)."""
from typing import Any


class GanJaxError(Exception):
  """Bad input or a state the run cannot go on from; the message names the problem and the fix."""


class ConfigError(GanJaxError, ValueError):
  """A flag has a value the framework cannot run with."""

  def __init__(self, flag: str, value: Any, allowed: str):
    self.flag, self.value = flag, value
    super().__init__(f"--{flag}={value!s}: {allowed}")


class DataError(GanJaxError, ValueError):
  """The dataset cannot be read; the message says how to fix it."""


class CheckpointError(GanJaxError, RuntimeError):
  """No usable checkpoint where one was asked for, or a checkpoint that cannot be written."""


class NonFiniteError(GanJaxError, RuntimeError):
  """A loss or gradient became NaN or infinite."""


class WorkdirError(GanJaxError, RuntimeError):
  """The workdir cannot be used: another run holds it, or it is not a writable directory."""
