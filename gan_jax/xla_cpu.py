"""XLA:CPU options that make GAN steps faster, applied by the entry points before JAX starts.

jaxlib 0.10 hands convolutions and dots on CPU to YNNPACK. For the DCGAN step
YNNPACK's convolutions, above all their kernel gradients, are slower than
XLA's own (Eigen) convolutions, while its dots are what makes the MLP fast:
keeping YNNPACK for dots only took the DCGAN iteration from ~300 to ~240 ms
on the 2-core machine (benchmarks/results/step_time.md). XLA reads XLA_FLAGS
once, when the CPU backend starts, so `configure` must run before the first
JAX computation; a flag the user already set is never overridden.
"""
import importlib.metadata
import os

# (flag, value): the versions it was measured on are those `_measured` admits.
FAST_FLAGS = (("--xla_cpu_experimental_ynn_fusion_type", "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"),)
OPT_OUT = "GAN_JAX_DEFAULT_XLA_FLAGS"  # =0: leave XLA_FLAGS alone.


def _measured(jaxlib_version: str) -> bool:
  """XLA aborts on unknown flags: add them only to the jaxlib they were measured with."""
  return jaxlib_version.startswith("0.10.")


def configure(environ=os.environ) -> str:
  """Adds FAST_FLAGS to environ['XLA_FLAGS'] (unless set there or opted out); returns the result."""
  flags = environ.get("XLA_FLAGS", "")
  try:
    version = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return flags
  if environ.get(OPT_OUT, "1") == "0" or not _measured(version):
    return flags
  extra = [f"{name}={value}" for name, value in FAST_FLAGS if name not in flags]
  if extra:
    environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
  return environ.get("XLA_FLAGS", "")
