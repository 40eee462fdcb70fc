"""The exceptions a user sees. Entry points turn each into one `error:` line and exit code 2."""
from typing import Any


class ConfigError(ValueError):
  """A flag has a value the framework cannot run with."""

  def __init__(self, flag: str, value: Any, allowed: str):
    self.flag, self.value = flag, value
    super().__init__(f"--{flag}={value!s}: {allowed}")


class DataError(ValueError):
  """The dataset cannot be read; the message says how to fix it."""


class CheckpointError(RuntimeError):
  """No usable checkpoint where one was asked for."""


class NonFiniteError(RuntimeError):
  """A loss or gradient became NaN or infinite."""


class WorkdirError(RuntimeError):
  """The workdir cannot be used: another run holds it, or it is not a writable directory."""
