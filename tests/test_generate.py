"""The batch-norm statistics G_ema samples with (--ema_statistics): running, their EMA, standing statistics."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import generate
from gan_jax.data import make_dataset, stacked_batches
from gan_jax.nets import build_nets
from gan_jax.state import init_state, make_optimizers
from gan_jax.steps import make_steps
from tests.test_images import image_config


def _dcgan(tmp_path, **kw):
  cfg = image_config(tmp_path, "mnist5k", resolution=32, latent_dim=16, **kw)
  nets = build_nets(cfg, (32, 32, 1))
  g_tx, d_tx = make_optimizers(cfg)
  return cfg, nets, init_state(cfg, nets, g_tx, d_tx), make_steps(cfg, nets, g_tx, d_tx)


def test_standing_statistics_are_the_batch_statistics_of_g_ema(tmp_path):
  """G's first batch norm sees z W (W: the EMA weights of its first dense layer): the standing mean and
  variance are those of z W over each batch, averaged over the batches."""
  _, nets, state, _ = _dcgan(tmp_path, ema_statistics="standing")
  state = state.replace(ema_g_params=jax.tree.map(lambda p: p + 0.05, state.ema_g_params))  # not G's weights
  stats = generate.standing_statistics(nets, state, num_batches=3, batch_size=8, seed=4)["batch_stats"]
  z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(4), 2**31 - 3), (3, 8, 16))
  h = np.asarray(z @ state.ema_g_params["Dense_0"]["kernel"]).reshape(3, 8 * 16, -1)  # [batches, B * 4 * 4, C]
  np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], h.mean(1).mean(0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["BatchNorm_0"]["var"], h.var(1).mean(0), rtol=1e-4, atol=1e-6)
  assert set(stats) == set(state.g_collections["batch_stats"])  # every layer of G


def test_sampling_state_picks_the_statistics(tmp_path):
  cfg, nets, state, _ = _dcgan(tmp_path, ema_statistics="ema")
  marked = state.replace(ema_g_collections=jax.tree.map(lambda a: a + 1.0, state.g_collections))
  assert generate.sampling_state(nets, marked, "running") is marked
  ema = generate.sampling_state(nets, marked, "ema").g_collections
  np.testing.assert_array_equal(ema["batch_stats"]["BatchNorm_0"]["var"],
                                marked.ema_g_collections["batch_stats"]["BatchNorm_0"]["var"])
  standing = generate.sampling_state(nets, marked, "standing", batch_size=8).g_collections
  assert not np.allclose(standing["batch_stats"]["BatchNorm_0"]["mean"], 0.0)  # computed, not the running ones


@pytest.mark.parametrize("decay", [0.0, 0.9])
def test_the_ema_of_the_statistics_moves_at_the_weights_decay(tmp_path, decay):
  """One G step: ema_cols <- d ema_cols + (1 - d) cols, the EMA of the weights' rule; with d = 0 they are the
  running statistics themselves. Without --ema_statistics=ema the state keeps no such EMA."""
  cfg, nets, state, steps = _dcgan(tmp_path, ema_statistics="ema", ema_decay=decay)
  batch = jax.tree.map(lambda a: jnp.asarray(a[0, 0]), stacked_batches(make_dataset(cfg), 0, 1, 1, cfg.batch_size))
  new, _ = jax.jit(steps.g_step)(state, batch)
  for old_ema, cols, ema in zip(jax.tree.leaves(state.ema_g_collections), jax.tree.leaves(new.g_collections),
                                jax.tree.leaves(new.ema_g_collections)):
    np.testing.assert_allclose(ema, decay * old_ema + (1 - decay) * cols, rtol=1e-6, atol=1e-7)
  assert not np.allclose(jax.tree.leaves(new.g_collections)[0], jax.tree.leaves(state.g_collections)[0])
  assert _dcgan(tmp_path)[2].ema_g_collections is None


def test_ema_statistics_resume_policy():
  cfg = config_lib.Config(workdir="w")
  assert config_lib.resume_policy("ema_statistics", "running", "standing", cfg) == config_lib.FREE
  assert config_lib.resume_policy("ema_statistics", "running", "ema", cfg) == config_lib.SHAPE
  assert config_lib.resume_policy("ema_statistics", "ema", "standing", cfg) == config_lib.SHAPE
  assert dataclasses.replace(cfg, ema_statistics="standing")  # a valid value
