"""Every test runs on the CPU platform with eight fake devices and the entry points' XLA:CPU
flags, on a laptop and on a GPU box alike (set before JAX initialises); tests marked `gpu` run
their own subprocesses on the accelerator and skip where there is none. No test process
preallocates accelerator memory. Shared helpers."""
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

from gan_jax import runtime, xla_cpu

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ["JAX_PLATFORMS"] = "cpu"  # Inherited by the subprocesses the tests start.
os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
# One persistent compilation cache per test worker, shared with its run.py subprocesses (never the
# user's own): the many runs of the same tiny configurations compile once.
os.environ.setdefault(runtime.CACHE_ENV, tempfile.mkdtemp(prefix="gan_jax_test_cache_"))
os.environ.setdefault("GAN_JAX_REFERENCE_CACHE", tempfile.mkdtemp(prefix="gan_jax_test_reference_"))
xla_cpu.configure()
runtime.enable_compilation_cache(os.environ[runtime.CACHE_ENV])

import dataclasses  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_config(workdir, **overrides):
  """A tiny ring run on one device: fast enough for integration tests."""
  from gan_jax.config import Config
  base = Config(workdir=str(workdir), dataset="ring", model="mlp", latent_dim=2, g_hidden=(32, 32),
                d_hidden=(32, 32), batch_size=32, train_steps=10, steps_per_call=5, eval_every=5,
                log_every=5, checkpoint_every=5, eval_samples=200, num_devices=1,
                theory_samples=0)  # tests/test_theory.py turns the theory on
  return dataclasses.replace(base, **overrides)


def load_run_py():
  """experiments/run.py as a module (a script, not part of the package)."""
  spec = importlib.util.spec_from_file_location("run_py", os.path.join(REPO, "experiments", "run.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture
def repo():
  return REPO


@functools.lru_cache(maxsize=1)
def accelerator() -> str:
  """'gpu' or 'tpu' when JAX finds one outside the CPU pin (asked in a subprocess), else ''."""
  if not (shutil.which("nvidia-smi") or os.path.exists("/dev/accel0")):
    return ""
  env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "XLA_FLAGS")}
  out = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"], env=env,
                       capture_output=True, text=True, timeout=300)
  backend = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
  return backend if backend in ("gpu", "tpu") else ""


def accelerator_env():
  """The environment for a subprocess that should run on the accelerator."""
  env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "XLA_FLAGS")}
  return env


def pytest_collection_modifyitems(config, items):
  del config
  gpu_tests = [item for item in items if "gpu" in item.keywords]
  if gpu_tests and not accelerator():
    skip = pytest.mark.skip(reason="no GPU or TPU on this machine")
    for item in gpu_tests:
      item.add_marker(skip)
