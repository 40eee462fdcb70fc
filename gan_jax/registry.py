"""Named extension points: models (`gan_jax.nets.MODELS`), datasets (`gan_jax.data.DATASETS`), metrics
(`gan_jax.metrics.METRICS`).

An entry is a frozen dataclass with a `name` and a `help`, and declares what the rest of the code needs
to know about it (a model: is it convolutional, which data it takes; a metric: which way is better,
its inputs). Code is referenced as "package.module:attribute" and imported at first use, so that the
registries, the flag definitions and config validation stay light (no JAX at import).
Adding one is a module plus one `register(...)` line; `registered(...)` adds one for a block (tests).
"""
import contextlib
import importlib
from typing import Any, Callable, Dict, Generic, Iterator, TypeVar, Union

from gan_jax.errors import ConfigError

T = TypeVar("T")
Ref = Union[str, Callable]


def resolve(ref: Ref) -> Any:
  """'package.module:attribute' -> that object (imported now); a callable is returned as it is."""
  if not isinstance(ref, str):
    return ref
  module, _, attribute = ref.partition(":")
  return getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
  """Entries by name, in registration order; `get` raises a ConfigError for `--<flag>` listing them."""

  def __init__(self, kind: str, flag: str):
    self.kind, self.flag = kind, flag
    self._entries: Dict[str, T] = {}

  def register(self, entry: T) -> T:
    if entry.name in self._entries:
      raise ValueError(f"a {self.kind} named {entry.name!r} is already registered")
    self._entries[entry.name] = entry
    return entry

  @contextlib.contextmanager
  def registered(self, entry: T):
    """`entry` registered for the block only."""
    self.register(entry)
    try:
      yield entry
    finally:
      del self._entries[entry.name]

  def names(self) -> tuple:
    return tuple(self._entries)

  def __contains__(self, name) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[T]:
    return iter(tuple(self._entries.values()))

  def get(self, name: str, value=None) -> T:
    """The entry `name`; `value` is what the flag held (default: the name), for the error message."""
    if name not in self._entries:
      raise ConfigError(self.flag, name if value is None else value, f"valid choices: {', '.join(self._entries)}")
    return self._entries[name]

  def describe(self) -> str:
    """'name: help; name: help' for --helpfull."""
    return "; ".join(f"{getattr(e, 'syntax', e.name)}: {e.help}" for e in self._entries.values())
