"""Fréchet distance between Gaussians fitted to two feature sets (FID: Heusel et al. 2017).

d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}).
Tr((S_1 S_2)^{1/2}) is the sum of the square roots of the eigenvalues of S_1 S_2,
which are real and non-negative for covariance matrices (S_1 S_2 is similar to
S_1^{1/2} S_2 S_1^{1/2}); this avoids `sqrtm` and its complex round-off.
"""
import numpy as np


def gaussian_stats(features):
  """features [N, D] -> (mean [D], covariance [D, D]) in float64 (unbiased covariance)."""
  f = np.asarray(features, np.float64)
  return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
  s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
  eig = np.linalg.eigvals(s1 @ s2)
  tr_sqrt = np.sum(np.sqrt(np.clip(eig.real, 0.0, None)))
  diff = mu1 - mu2
  return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt, 0.0))


def fid(features_a, features_b) -> float:
  """Fréchet distance between the Gaussians fitted to two feature sets [N, D], [M, D]."""
  return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def fid_metric(inputs) -> dict:
  """The registry's 'fid': the samples' features against the real split's (a MetricInputs)."""
  return {"fid": fid(inputs.fake_features, inputs.real_features)}
