"""What the command-line tools in experiments/ share: the one-line error and exit code 2."""
import contextlib
import sys

from gan_jax.errors import GanJaxError

EXIT_BAD_INPUT = 2


def fail(message: str):
  """Prints `error: message` on stderr and exits with code 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_BAD_INPUT)


@contextlib.contextmanager
def one_line_errors():
  """Any `GanJaxError` raised in the block ends the program with its one line and exit code 2."""
  try:
    yield
  except GanJaxError as e:
    fail(str(e))
