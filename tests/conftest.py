"""Eight fake CPU devices and the entry points' XLA:CPU flags for every test (set before JAX
initialises), and shared helpers."""
import os

from gan_jax import xla_cpu

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
xla_cpu.configure()

import dataclasses  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_config(workdir, **overrides):
  """A tiny ring run on one device: fast enough for integration tests."""
  from gan_jax.config import Config
  base = Config(workdir=str(workdir), dataset="ring", model="mlp", latent_dim=2, g_hidden=(32, 32),
                d_hidden=(32, 32), batch_size=32, train_steps=10, steps_per_call=5, eval_every=5,
                log_every=5, checkpoint_every=5, eval_samples=200, num_devices=1)
  return dataclasses.replace(base, **overrides)


@pytest.fixture
def repo():
  return REPO
