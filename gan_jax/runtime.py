"""Process-wide settings the entry points apply before the first computation.

XLA:CPU flags live in `xla_cpu.py` (they must be set before JAX starts its CPU backend); this
module holds the persistent compilation cache (compiled steps are written to a directory and a
rerun or a resume of the same configuration loads them instead of compiling again) and the
handling of SIGINT / SIGTERM.
"""
import contextlib
import os
import signal
import sys

CACHE_ENV = "GAN_JAX_COMPILATION_CACHE"  # Overrides the default directory; empty turns the cache off.


def user_cache(*parts: str) -> str:
  """$XDG_CACHE_HOME/parts... (default ~/.cache/parts...): where every cache of this project lives."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, *parts)


def default_cache_dir() -> str:
  """$GAN_JAX_COMPILATION_CACHE, else $XDG_CACHE_HOME/gan_jax/jax (~/.cache/gan_jax/jax)."""
  if CACHE_ENV in os.environ:
    return os.environ[CACHE_ENV]
  return user_cache("gan_jax", "jax")


def enable_compilation_cache(directory: str, min_compile_seconds: float = 0.5) -> str:
  """Turns JAX's persistent compilation cache on in `directory` ('' leaves it off); returns it.

  Programs that took at least `min_compile_seconds` to compile are cached (the training steps,
  evaluation and sampling functions; not the many tiny ones).
  """
  import jax
  if not directory:
    return ""
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory


class Signals:
  """SIGINT / SIGTERM of one run: every one is remembered in `caught` (signal names, in order).

  While `raising` (start-up and the final evaluation) a signal also raises KeyboardInterrupt, so a
  long start-up stops at once. The list matters because Python drops an exception raised while a
  garbage-collector callback runs (JAX installs one): a Ctrl-C landing there would be lost, so the
  training loop looks at `caught` before its first step. While training, `raising` is False and the
  loop saves at its next step boundary instead.
  """

  def __init__(self):
    self.caught: list[str] = []
    self.raising = True

  def __call__(self, signum, frame):
    self.caught.append(signal.Signals(signum).name)
    if self.raising:
      raise KeyboardInterrupt


@contextlib.contextmanager
def handling_signals(handler: Signals):
  """Installs `handler` for SIGINT and SIGTERM in the block (main thread only); restores the previous ones.

  A KeyboardInterrupt that Python drops (raised in a gc or weakref callback) would be printed as
  "Exception ignored ... Traceback": it is already in `handler.caught`, so it is not printed. Nor is
  asyncio's "Event loop is closed", which tensorstore's callbacks raise by the dozen after a failed
  checkpoint write (a full disk) has closed orbax's loop: that failure is the run's one error line.
  """
  previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  previous_hook = sys.unraisablehook

  def hook(unraisable):
    value = unraisable.exc_value
    closed_loop = isinstance(value, RuntimeError) and str(value) == "Event loop is closed"
    if not (isinstance(value, KeyboardInterrupt) or closed_loop):
      previous_hook(unraisable)

  sys.unraisablehook = hook
  try:
    yield handler
  finally:
    sys.unraisablehook = previous_hook
    for s, h in previous.items():
      signal.signal(s, h)
