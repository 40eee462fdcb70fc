"""k-NN manifold estimates: precision / recall (Kynkäänniemi et al. 2019), density / coverage (Naeem et al. 2020).

Each real (fake) sample gets a ball reaching its k-th nearest real (fake) neighbour.
precision: share of fakes inside some real ball; recall: share of reals inside some fake ball;
density: (1/k) * mean over fakes of the number of real balls containing it;
coverage: share of real balls that contain at least one fake.
"""
import numpy as np


def _pairwise(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
  return np.sqrt(np.clip(d2, 0, None))


def _kth_radius(x, k):
  d = _pairwise(x, x)
  return np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself


def prdc(real, fake, k: int = 5) -> dict:
  """real [N, D], fake [M, D] -> {'precision', 'recall', 'density', 'coverage'}."""
  r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
  d = _pairwise(real, fake)  # [N, M]
  inside_real = d < r_real[:, None]  # fake j inside real ball i
  return {
      "precision": float(inside_real.any(0).mean()),
      "recall": float((d < r_fake[None, :]).any(1).mean()),
      "density": float(inside_real.sum(0).mean() / k),
      "coverage": float((d.min(1) < r_real).mean()),
  }


PRDC_MAX = 5000  # pairwise distances of this many real and fake samples: O(n^2 D)


def prdc_of(inputs) -> dict:
  """prdc on seeded random subsets of at most PRDC_MAX of each (not the first rows), computed once
  per MetricInputs for 'pr' and 'dc' alike."""
  def compute():
    rng = np.random.default_rng(inputs.seed)
    real, fake = inputs.real_features, inputs.fake_features
    n = min(len(real), len(fake), PRDC_MAX)
    return prdc(real[rng.choice(len(real), n, replace=False)], fake[rng.choice(len(fake), n, replace=False)])

  return inputs.shared("prdc", compute)


def pr_metric(inputs) -> dict:
  return {k: prdc_of(inputs)[k] for k in ("precision", "recall")}


def dc_metric(inputs) -> dict:
  return {k: prdc_of(inputs)[k] for k in ("density", "coverage")}
