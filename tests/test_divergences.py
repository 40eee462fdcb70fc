"""GAN theory against closed forms: D*, V(D*, G) = -log 4 + 2 JSD, and the divergences themselves."""
import numpy as np
import pytest
from scipy import integrate, stats

from gan_jax import divergences as dv

LOG4 = np.log(4.0)

PAIRS = {
    "identical": ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]),
    "disjoint": ([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.25, 0.75]),
    "overlapping": ([0.1, 0.4, 0.5, 0.0], [0.3, 0.3, 0.2, 0.2]),
    "skewed": ([0.97, 0.01, 0.01, 0.01], [0.01, 0.01, 0.01, 0.97]),
}


def test_kl_and_js_by_hand():
  p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
  kl = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
  np.testing.assert_allclose(dv.kl_discrete(p, q), kl, rtol=1e-12)
  m = (p + q) / 2
  js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
  np.testing.assert_allclose(dv.js_discrete(p, q), js, rtol=1e-12)
  assert dv.js_discrete([1, 0], [0, 1]) == pytest.approx(np.log(2), abs=1e-12)
  assert dv.kl_discrete([0.5, 0.5], [1.0, 0.0]) == np.inf


def test_gaussian_kl_closed_form_matches_quadrature():
  mu1, s1, mu2, s2 = 0.3, 0.7, -1.0, 1.9
  p, q = stats.norm(mu1, s1), stats.norm(mu2, s2)
  quad = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -20, 20, limit=200)[0]
  np.testing.assert_allclose(dv.kl_gaussian(mu1, s1, mu2, s2), quad, rtol=1e-7)


def test_gaussian_js_limits():
  assert dv.js_gaussian(0.0, 1.0, 0.0, 1.0) == pytest.approx(0.0, abs=1e-10)
  assert dv.js_gaussian(0.0, 0.1, 100.0, 0.1) == pytest.approx(np.log(2), abs=1e-6)
  js = dv.js_gaussian(0.0, 1.0, 1.0, 2.0)
  assert 0 < js < np.log(2)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_optimal_discriminator_maximises_value_pointwise(name):
  p, q = map(np.asarray, PAIRS[name])
  d_star = dv.optimal_discriminator(p, q)
  v_star = dv.expected_value(p, q, d_star)
  rng = np.random.default_rng(0)
  for _ in range(200):
    d = np.clip(d_star + rng.normal(0, 0.05, size=d_star.shape), 1e-6, 1 - 1e-6)
    # Where p = 0 (q = 0), D* = 0 (1) and any other value lowers V.
    assert dv.expected_value(p, q, d) <= v_star + 1e-12
  # Pointwise: a log D + b log(1 - D) peaks at D = a / (a + b).
  for a, b in zip(p, q):
    if a > 0 and b > 0:
      grid = np.linspace(1e-4, 1 - 1e-4, 20001)
      best = grid[np.argmax(a * np.log(grid) + b * np.log(1 - grid))]
      assert best == pytest.approx(float(dv.optimal_discriminator([a], [b])[0]), abs=1e-4)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_value_at_optimal_discriminator_is_minus_log4_plus_2jsd(name):
  p, q = map(np.asarray, PAIRS[name])
  v = dv.expected_value(p, q, dv.optimal_discriminator(p, q))
  np.testing.assert_allclose(v, -LOG4 + 2 * dv.js_discrete(p, q), atol=1e-12)


def test_value_at_optimal_discriminator_gaussians():
  mu1, s1, mu2, s2 = 0.0, 1.0, 1.5, 0.6
  p, q = stats.norm(mu1, s1), stats.norm(mu2, s2)

  def integrand(x):
    # In log space: log D* = log p - log(p + q), log(1 - D*) = log q - log(p + q).
    lp, lq = p.logpdf(x), q.logpdf(x)
    lm = np.logaddexp(lp, lq)
    return np.exp(lp) * (lp - lm) + np.exp(lq) * (lq - lm)

  v = integrate.quad(integrand, -12, 12, points=[mu1, mu2], limit=200)[0]
  np.testing.assert_allclose(v, -LOG4 + 2 * dv.js_gaussian(mu1, s1, mu2, s2), atol=1e-8)


def test_minimum_minus_log4_exactly_when_equal():
  rng = np.random.default_rng(1)
  p = rng.dirichlet(np.ones(6))
  assert dv.expected_value(p, p, dv.optimal_discriminator(p, p)) == pytest.approx(-LOG4, abs=1e-12)
  assert np.allclose(dv.optimal_discriminator(p, p), 0.5)
  for _ in range(50):
    q = rng.dirichlet(np.ones(6))
    assert dv.expected_value(p, q, dv.optimal_discriminator(p, q)) > -LOG4 + 1e-6
