"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel.

k(x, y) = (x . y / d + 1)^3. On subsets of m samples from each set,
MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2,
averaged over subsets. Defaults are torch-fidelity's (100 subsets of 1,000); papers print KID x 1000.
"""
import numpy as np


def polynomial_kernel(x, y, degree: int = 3, coef0: float = 1.0):
  return (np.asarray(x, np.float64) @ np.asarray(y, np.float64).T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x, y, degree: int = 3) -> float:
  """Unbiased MMD^2 between samples x [m, D] and y [n, D]."""
  m, n = len(x), len(y)
  kxx, kyy, kxy = polynomial_kernel(x, x, degree), polynomial_kernel(y, y, degree), polynomial_kernel(x, y, degree)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
               - 2.0 * kxy.mean())


def kid(features_a, features_b, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0):
  """(mean, std) of the unbiased MMD^2 over `num_subsets` random subsets of `subset_size` from each set.

  Raises ValueError when a set has fewer than `subset_size` samples (a smaller subset would give
  a number that is not comparable with the literature's, so it is not chosen silently).
  """
  a, b = np.asarray(features_a), np.asarray(features_b)
  if subset_size > min(len(a), len(b)):
    raise ValueError(f"KID subsets of {subset_size} need at least that many samples in each set "
                     f"(got {len(a)} and {len(b)}); lower the subset size or draw more samples")
  rng = np.random.default_rng(seed)
  values = [mmd2_unbiased(a[rng.choice(len(a), subset_size, replace=False)],
                          b[rng.choice(len(b), subset_size, replace=False)]) for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))


def kid_metric(inputs) -> dict:
  """The registry's 'kid', in the units papers print (x 1000): mean and std over the subsets."""
  mean, std = kid(inputs.fake_features, inputs.real_features, subset_size=inputs.kid_subset_size, seed=inputs.seed)
  return {"kid_x1000": 1000.0 * mean, "kid_x1000_std": 1000.0 * std}
