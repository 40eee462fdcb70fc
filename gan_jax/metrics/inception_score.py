"""Inception-style score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))).

With a classifier of the data domain (here the digit CNN) instead of Inception.
1 when every prediction is the same; the number of classes when predictions are
confident and spread uniformly over the classes.
"""
import numpy as np
from scipy import special


def inception_score(probs, num_splits: int = 1):
  """probs [N, C] (rows sum to 1) -> (mean, std) over `num_splits` splits."""
  probs = np.asarray(probs, np.float64)
  scores = []
  for part in np.array_split(probs, num_splits):
    marginal = part.mean(0, keepdims=True)
    kl = np.sum(special.rel_entr(part, marginal), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))
