"""Closed-form divergences for checking GAN theory and scoring toy runs.

Discrete distributions are 1-D arrays of probabilities over one support.
Natural logarithms throughout, so 0 <= JSD <= log 2. (scipy.stats and scipy.integrate are imported
where they are used: at import they were ~0.8 s of every run's start-up, and only the 1-D Gaussian
theory needs them.)
"""
import numpy as np
from scipy import special


def kl_discrete(p, q):
  """KL(p || q) = sum_i p_i log(p_i / q_i); inf where p puts mass that q does not."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  return float(np.sum(special.rel_entr(p, q)))


def js_discrete(p, q):
  """JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  m = 0.5 * (p + q)
  return 0.5 * kl_discrete(p, m) + 0.5 * kl_discrete(q, m)


def kl_gaussian(mu1, sigma1, mu2, sigma2):
  """KL(N(mu1, sigma1^2) || N(mu2, sigma2^2)) = log(s2/s1) + (s1^2 + (mu1-mu2)^2) / (2 s2^2) - 1/2."""
  return float(np.log(sigma2 / sigma1) + (sigma1 ** 2 + (mu1 - mu2) ** 2) / (2 * sigma2 ** 2) - 0.5)


def js_gaussian(mu1, sigma1, mu2, sigma2):
  """JSD between two 1-D Gaussians by adaptive quadrature (no closed form exists)."""
  from scipy import integrate, stats
  p, q = stats.norm(mu1, sigma1), stats.norm(mu2, sigma2)
  lo = min(mu1 - 12 * sigma1, mu2 - 12 * sigma2)
  hi = max(mu1 + 12 * sigma1, mu2 + 12 * sigma2)

  def integrand(x):
    px, qx = p.pdf(x), q.pdf(x)
    m = 0.5 * (px + qx)
    return 0.5 * special.rel_entr(px, m) + 0.5 * special.rel_entr(qx, m)

  points = sorted({mu1, mu2})
  value, _ = integrate.quad(integrand, lo, hi, points=points, limit=200, epsabs=1e-12)
  return float(value)


def optimal_discriminator(p_data, p_g):
  """D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Goodfellow et al. 2014, Prop. 1); 1/2 where both are 0."""
  p, q = np.asarray(p_data, np.float64), np.asarray(p_g, np.float64)
  total = p + q
  return np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.5)


def expected_value(p_data, p_g, d):
  """V(D, G) = sum_x p_data(x) log D(x) + p_g(x) log(1 - D(x)) over a discrete support (0 log 0 = 0)."""
  p, q, d = (np.asarray(a, np.float64) for a in (p_data, p_g, d))
  return float(np.sum(special.xlogy(p, d)) + np.sum(special.xlogy(q, 1.0 - d)))
