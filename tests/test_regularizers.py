"""Gradient penalties against closed forms, and training with them stays finite."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import regularizers, train
from tests.conftest import toy_config


def linear_critic(w):
  return lambda x: x.reshape(x.shape[0], -1) @ w


@pytest.mark.parametrize("scale,expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(scale, expected):
  w = jnp.array([0.6, 0.8, 0.0]) * scale  # ||w|| = scale: grad norm is scale everywhere
  x_real = jax.random.normal(jax.random.key(0), (16, 3))
  x_fake = jax.random.normal(jax.random.key(1), (16, 3))
  gp = regularizers.gradient_penalty(linear_critic(w), x_real, x_fake, jax.random.key(2))
  np.testing.assert_allclose(gp, expected, atol=1e-6)


def test_r1_of_a_quadratic_critic():
  # D(x) = 1/2 ||x||^2: grad = x, so R1 = E||x||^2.
  x = jax.random.normal(jax.random.key(0), (32, 4))
  r1 = regularizers.r1_penalty(lambda v: 0.5 * jnp.sum(v ** 2, axis=1), x)
  np.testing.assert_allclose(r1, jnp.mean(jnp.sum(x ** 2, axis=1)), rtol=1e-5)


def test_penalty_uses_per_example_gradients_on_interpolates():
  # D(x) = sum x^2 per example: ||grad|| = 2||x_hat||; with x_real = x_fake, x_hat = x_real.
  x = jax.random.normal(jax.random.key(0), (8, 2))
  gp = regularizers.gradient_penalty(lambda v: jnp.sum(v ** 2, axis=1), x, x, jax.random.key(1))
  np.testing.assert_allclose(gp, jnp.mean((2 * jnp.linalg.norm(x, axis=1) - 1) ** 2), rtol=1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("overrides", [dict(loss="wgan", gp_weight=10.0, lr_d=1e-4, beta1=0.0, beta2=0.9,
                                            d_steps=5),
                                       dict(r1_weight=1.0), dict(loss="hinge", gp_weight=1.0, pack=2)],
                         ids=["wgan-gp", "r1", "hinge-gp-pack"])
def test_penalised_training_stays_finite_for_200_ring_steps(tmp_path, overrides):
  train.train_and_evaluate(toy_config(tmp_path, train_steps=200, steps_per_call=100, eval_every=100,
                                               checkpoint_every=200, **overrides))
  rows = [__import__("json").loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  key = "gp" if overrides.get("gp_weight") else "r1"
  assert all(np.isfinite(r[key]) and np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  assert any(r[key] > 0 for r in rows)  # the penalty is computed and reported


def test_spectral_norm_matches_the_top_singular_value():
  import flax.linen as nn
  layer = nn.SpectralNorm(nn.Dense(7, kernel_init=nn.initializers.normal(1.0)), n_steps=1)
  x = jnp.ones((2, 5))
  variables = layer.init(jax.random.key(0), x, update_stats=True)
  for _ in range(100):  # power iteration, one step per call, state carried in 'batch_stats'
    _, updates = layer.apply(variables, x, update_stats=True, mutable=["batch_stats"])
    variables = {**variables, **updates}
  kernel = np.asarray(variables["params"]["layer_instance"]["kernel"])
  stats = jax.tree_util.tree_flatten_with_path(variables["batch_stats"])[0]
  sigma = [np.asarray(v).item() for k, v in stats if "sigma" in jax.tree_util.keystr(k)][0]
  np.testing.assert_allclose(sigma, np.linalg.svd(kernel, compute_uv=False)[0], rtol=1e-3)
  # The normalised layer's own weight matrix then has spectral norm 1.
  y = layer.apply(variables, jnp.eye(5), update_stats=False)
  bias = np.asarray(variables["params"]["layer_instance"]["bias"])
  np.testing.assert_allclose(np.linalg.svd(np.asarray(y) - bias, compute_uv=False)[0], 1.0, rtol=1e-3)


@pytest.mark.integration
def test_spectral_norm_trains_finite_and_checkpoints_its_state(tmp_path):
  from gan_jax import restore
  train.train_and_evaluate(toy_config(tmp_path, loss="hinge", spectral_norm=True, train_steps=200,
                                      steps_per_call=100, eval_every=100, checkpoint_every=200))
  rows = [__import__("json").loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  _, _, state, _, _ = restore.load_run(str(tmp_path))
  assert "batch_stats" in state.d_collections  # u and sigma of each layer, in the checkpoint
