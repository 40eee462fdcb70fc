"""Loss values against hand computation, stability at extreme logits, and the registry."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses

REAL = np.array([2.0, -1.0, 0.5])
FAKE = np.array([-3.0, 0.0, 1.5])


def sig(x):
  return 1.0 / (1.0 + np.exp(-x))


def test_value_function_by_hand():
  expected = np.mean(np.log(sig(REAL))) + np.mean(np.log(1 - sig(FAKE)))
  np.testing.assert_allclose(losses.value_function(REAL, FAKE), expected, rtol=1e-6)


def test_discriminator_loss_is_minus_value():
  np.testing.assert_allclose(losses.discriminator_loss(REAL, FAKE), -losses.value_function(REAL, FAKE),
                             rtol=1e-6)


def test_one_sided_label_smoothing_by_hand():
  s = 0.1
  t = 1 - s
  expected = -(np.mean(t * np.log(sig(REAL)) + (1 - t) * np.log(1 - sig(REAL)))
               + np.mean(np.log(1 - sig(FAKE))))
  np.testing.assert_allclose(losses.discriminator_loss(REAL, FAKE, s), expected, rtol=1e-6)
  # One-sided: the fake term does not change with smoothing.
  d0 = losses.discriminator_loss(REAL, FAKE + 1, s) - losses.discriminator_loss(REAL, FAKE, s)
  d1 = losses.discriminator_loss(REAL, FAKE + 1, 0.0) - losses.discriminator_loss(REAL, FAKE, 0.0)
  np.testing.assert_allclose(d0, d1, rtol=1e-6)


# Every registered loss, by hand on the fixed logits.
HAND = {
    "nonsaturating": (-(np.mean(np.log(sig(REAL))) + np.mean(np.log(1 - sig(FAKE)))),
                      -np.mean(np.log(sig(FAKE)))),
    "minimax": (-(np.mean(np.log(sig(REAL))) + np.mean(np.log(1 - sig(FAKE)))),
                np.mean(np.log(1 - sig(FAKE)))),
    "maximum_likelihood": (-(np.mean(np.log(sig(REAL))) + np.mean(np.log(1 - sig(FAKE)))),
                           -0.5 * np.mean(sig(FAKE) / (1 - sig(FAKE)))),  # -1/2 E D / (1 - D)
    "wgan": (np.mean(FAKE) - np.mean(REAL), -np.mean(FAKE)),
    "hinge": (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)), -np.mean(FAKE)),
    "lsgan": (0.5 * np.mean((REAL - 1) ** 2) + 0.5 * np.mean(FAKE ** 2), 0.5 * np.mean((FAKE - 1) ** 2)),
}


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_registered_losses_by_hand(name):
  d_expected, g_expected = HAND[name]
  loss = losses.get_loss(name)
  np.testing.assert_allclose(loss.d_loss(REAL, FAKE, 0.0), d_expected, rtol=1e-6)
  np.testing.assert_allclose(loss.g_loss(FAKE), g_expected, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_label_smoothing_defaults_to_none(name):
  loss = losses.get_loss(name)
  np.testing.assert_allclose(loss.d_loss(REAL, FAKE), loss.d_loss(REAL, FAKE, 0.0), rtol=1e-7)


def test_least_squares_smoothing_moves_the_real_target():
  """b = 1 - s: the real target of LSGAN's D with one-sided smoothing s."""
  expected = 0.5 * np.mean((REAL - 0.9) ** 2) + 0.5 * np.mean(FAKE ** 2)
  np.testing.assert_allclose(losses.least_squares_discriminator_loss(REAL, FAKE, 0.1), expected, rtol=1e-6)


def test_every_registered_loss_has_a_hand_value():
  assert set(HAND) == set(losses.LOSSES)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_finite_at_extreme_logits(name):
  loss = losses.get_loss(name)
  logits = jnp.array([100.0, -100.0, 0.0])
  for fn in (lambda r: loss.d_loss(r, -r, 0.1), loss.g_loss):
    value, grad = jax.value_and_grad(fn)(logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_extreme_logits_give_the_right_limits():
  # D(x) = sigmoid(100) ~ 1 and D(G(z)) = sigmoid(-100) ~ 0: V -> 0 from below, no log(0).
  assert abs(float(losses.value_function(jnp.array([100.0]), jnp.array([-100.0])))) < 1e-30
  # A D that is perfectly wrong costs ~100 nats per term.
  np.testing.assert_allclose(losses.value_function(jnp.array([-100.0]), jnp.array([100.0])), -200.0,
                             rtol=1e-6)


def test_minimax_gradient_saturates_and_nonsaturating_does_not():
  """Goodfellow et al. 2014, sec. 3: early on D(G(z)) -> 0 and log(1 - D) saturates."""
  for logit in (-5.0, -10.0, -20.0):
    l = jnp.array([logit])
    g_minimax = jax.grad(losses.minimax_generator_loss)(l)[0]
    g_ns = jax.grad(losses.nonsaturating_generator_loss)(l)[0]
    # d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0;  d/dl -log sigmoid(l) = -(1 - sigmoid(l)) -> -1.
    np.testing.assert_allclose(g_minimax, -sig(logit), rtol=1e-5)
    np.testing.assert_allclose(g_ns, -(1 - sig(logit)), rtol=1e-5)
    assert abs(g_minimax) < 1e-2 and abs(g_ns) > 0.99
  # Both push D(G(z)) up: the two losses share their direction (and fixed point).
  assert np.sign(jax.grad(losses.minimax_generator_loss)(jnp.array([0.3]))[0]) == np.sign(
      jax.grad(losses.nonsaturating_generator_loss)(jnp.array([0.3]))[0])


def test_unknown_loss_lists_valid_names():
  with pytest.raises(KeyError, match="valid: hinge, lsgan, maximum_likelihood, minimax, nonsaturating, wgan"):
    losses.get_loss("wgan-typo")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_maximum_likelihood_loss_is_exact_below_its_clamp_and_finite_beyond(dtype):
  below = jnp.array([-100.0, -5.0, 0.0, 40.0], dtype)
  expected = -0.5 * np.mean(np.exp(np.asarray(below, np.float64)))
  np.testing.assert_allclose(losses.maximum_likelihood_generator_loss(below), expected, rtol=1e-6)
  grad = jax.grad(lambda l: losses.maximum_likelihood_generator_loss(l).astype(jnp.float32))
  rtol = 1e-6 if dtype == jnp.float32 else 1e-2  # the gradient comes back in the input's dtype
  np.testing.assert_allclose(np.asarray(grad(below), np.float64), -0.5 * np.exp(np.asarray(below, np.float64)) / 4,
                             rtol=rtol, atol=1e-30)
  extreme = jnp.array([-100.0, 100.0], dtype)
  value, g = losses.maximum_likelihood_generator_loss(extreme), grad(extreme)
  assert np.isfinite(value) and np.all(np.isfinite(np.asarray(g, np.float32)))
  np.testing.assert_allclose(value, -0.25 * np.exp(losses.ML_LOGIT_CLAMP), rtol=1e-6)  # the clamp, stated


def _gauss_log_pdf(x, mean, std):
  return -0.5 * ((x - mean) / std) ** 2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi)


def test_maximum_likelihood_gradient_at_the_optimal_d_is_half_the_kl_gradient():
  """Goodfellow 2014 (tutorial exercise 3): with D fixed at D* of theta_0, so that exp(l*) = p_data / p_g,
  E_z grad_theta J(G) = 1/2 grad_theta KL(p_data || p_g_theta) at theta_0. 1-D family G(z) = mu + sigma z,
  z ~ N(0, 1), data N(m, s^2): the left side by Gauss-Hermite quadrature of the registry's own loss at
  each node, the right side from the closed form KL = log(sigma / s) + (s^2 + (m - mu)^2) / (2 sigma^2) - 1/2."""
  m, s, mu0, sigma0 = 1.0, 0.7, 0.3, 1.4
  nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # int f(z) N(z; 0, 1) dz = sum w f / sqrt(2 pi)
  weights = jnp.asarray(weights / np.sqrt(2 * np.pi))
  optimal_logit = lambda x: _gauss_log_pdf(x, m, s) - _gauss_log_pdf(x, mu0, sigma0)  # D* of theta_0, fixed
  g_loss = losses.get_loss("maximum_likelihood").g_loss

  def expected_j(theta):
    samples = theta[0] + theta[1] * jnp.asarray(nodes)
    per_node = jax.vmap(lambda x: g_loss(optimal_logit(x)[None]))(samples)
    return jnp.sum(weights * per_node)

  lhs = jax.grad(expected_j)(jnp.array([mu0, sigma0]))
  kl_grad = np.array([-(m - mu0) / sigma0 ** 2, 1 / sigma0 - (s ** 2 + (m - mu0) ** 2) / sigma0 ** 3])
  np.testing.assert_allclose(lhs, 0.5 * kl_grad, rtol=1e-4)
  assert np.all(np.abs(kl_grad) > 0.1)  # a point where the gradient is not ~0
