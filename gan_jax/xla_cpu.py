"""XLA:CPU options that make GAN steps faster, applied by the entry points before JAX starts.

jaxlib 0.10 hands convolutions and dots on CPU to YNNPACK. For the DCGAN step
YNNPACK's convolutions, above all their kernel gradients, are slower than
XLA's own (Eigen) convolutions, while its dots are what makes the MLP fast:
keeping YNNPACK for dots only took the DCGAN iteration from ~300 to ~240 ms
on the 2-core machine (benchmarks/results/step_time.md). XLA reads XLA_FLAGS
once, when the CPU backend starts, so `configure` must run before the first
JAX computation; a flag the user already set is never overridden.

jax 0.10 lowers the Threefry hash behind every `jax.random` draw on CPU as a
rolled loop (5 trips of unfused u32 ops, to compile faster); `configure` also
registers for CPU the unrolled lowering JAX uses on every other platform, which
one loop fusion computes. The bits are the same (a resumed or repeated run is
bitwise what it was); drawing them is 4.6x faster, and the semi-supervised
step (D's Gaussian noise layers draw ~2 M normals per iteration) 1.17x faster
(benchmarks/results/step_time.md). Compile times did not move.
"""
import importlib.metadata
import os

# (flag, value): the versions it was measured on are those `_measured` admits.
FAST_FLAGS = (("--xla_cpu_experimental_ynn_fusion_type", "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"),)
OPT_OUT = "GAN_JAX_DEFAULT_XLA_FLAGS"  # =0: leave XLA_FLAGS and the Threefry lowering alone.


def _measured(jaxlib_version: str) -> bool:
  """XLA aborts on unknown flags: add them only to the jaxlib they were measured with."""
  return jaxlib_version.startswith("0.10.")


def unroll_threefry_on_cpu() -> bool:
  """Registers JAX's unrolled Threefry lowering for CPU (see above); False where this jax lacks the
  (private) names it was measured with, which leaves the rolled one."""
  try:
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32
    rule, primitive = threefry2x32._threefry2x32_lowering_rule, threefry2x32.threefry2x32_p
  except (ImportError, AttributeError):
    return False
  mlir.register_lowering(primitive, rule, platform="cpu")
  return True


def configure(environ=os.environ) -> str:
  """Adds FAST_FLAGS to environ['XLA_FLAGS'] (unless set there or opted out) and unrolls Threefry on CPU
  (unless opted out); returns XLA_FLAGS."""
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
  unroll_threefry_on_cpu()  # after XLA_FLAGS: it imports jax (which reads them when its backend starts)
  return environ.get("XLA_FLAGS", "")
