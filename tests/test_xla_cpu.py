"""The Threefry lowering `gan_jax.xla_cpu.configure` registers for CPU (conftest configures JAX as the entry
points do): one unrolled hash, the same bits as JAX's rolled CPU lowering and the published test vector."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import xla_cpu

threefry2x32 = pytest.importorskip("jax._src.random.threefry2x32")  # private: jax 0.10's module


def _threefry_jit(key, count):
  return jax.jit(threefry2x32.threefry_2x32)(jnp.asarray(key, jnp.uint32), jnp.asarray(count, jnp.uint32))


def test_configure_unrolls_threefry_on_cpu():
  if jax.default_backend() != "cpu" or not xla_cpu._measured(jax.__version__):
    pytest.skip("the lowering is registered for jax 0.10's CPU backend")
  hlo = jax.jit(lambda k: jax.random.bits(k, (64,))).lower(jax.random.key(0)).as_text()
  assert "while" not in hlo  # the rolled lowering is a 5-trip loop


def test_threefry_on_cpu_matches_the_random123_vector_and_the_rolled_lowering():
  # Salmon et al. 2011 (Random123), threefry2x32_20 known-answer test (also JAX's own test).
  out = _threefry_jit([0x13198A2E, 0x03707344], [0x243F6A88, 0x85A308D3])
  np.testing.assert_array_equal(np.asarray(out), np.array([0xC4923A9C, 0x483DF7A0], np.uint32))
  key = np.array([0xDEADBEEF, 0x12345678], np.uint32)
  count = np.random.default_rng(0).integers(0, 2**32, 2048, dtype=np.uint64).astype(np.uint32)
  x1, x2 = count[:1024], count[1024:]
  rolled = threefry2x32._threefry2x32_lowering(jnp.uint32(key[0]), jnp.uint32(key[1]), jnp.asarray(x1),
                                               jnp.asarray(x2), use_rolled_loops=True)
  np.testing.assert_array_equal(np.asarray(_threefry_jit(key, count)), np.concatenate([np.asarray(r) for r in rolled]))
