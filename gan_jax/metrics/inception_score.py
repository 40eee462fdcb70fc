"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), from a classifier's logits.

p(y|x) = softmax(logits); the samples are shuffled (seeded) and split in `num_splits` groups
(torch-fidelity's protocol: 10 splits, shuffled); mean and standard deviation over the groups.
1 when every prediction is the same; the number of classes when predictions are confident and
spread uniformly. The classifier is Inception for RGB data, the shipped digit CNN for digits.
"""
import numpy as np
from scipy import special


def inception_score(logits, num_splits: int = 10, seed: int = 0):
  """logits [N, C] -> (mean, std) over `num_splits` splits of the shuffled samples.

  Raises ValueError for non-finite input and for rows that are already probabilities (non-negative,
  summing to 1), which a softmax would silently turn into a wrong score.
  """
  logits = np.asarray(logits, np.float64)
  if not np.all(np.isfinite(logits)):
    raise ValueError("inception_score: the logits hold inf or nan")
  if np.all(logits >= 0) and np.allclose(logits.sum(1), 1.0, atol=1e-4):
    raise ValueError("inception_score takes logits, and these rows are probabilities: pass np.log(probs)")
  log_p = special.log_softmax(logits, axis=1)
  log_p = log_p[np.random.default_rng(seed).permutation(len(log_p))]
  scores = []
  for part in np.array_split(log_p, num_splits):
    log_marginal = special.logsumexp(part, axis=0) - np.log(len(part))
    kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def is_metric(inputs) -> dict:
  """The registry's 'is', from the feature network's logits of the samples."""
  mean, std = inception_score(inputs.fake_logits, num_splits=10, seed=inputs.seed)
  return {"is": mean, "is_std": std}
