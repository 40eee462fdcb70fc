"""The class histogram of generated digits, from the digit CNN's logits."""
import numpy as np

from gan_jax.divergences import kl_discrete


def class_histogram(logits) -> dict:
  """logits [N, C] -> classes with >= 1 % of the samples, KL(q || uniform) of the histogram q, the counts."""
  counts = np.bincount(np.asarray(logits).argmax(1), minlength=logits.shape[1])
  q = counts / counts.sum()
  return {"classes": int(np.sum(q >= 0.01)), "class_reverse_kl": kl_discrete(q, np.full(len(q), 1.0 / len(q))),
          "class_counts": counts.tolist()}


def class_metric(inputs) -> dict:
  """The registry's 'classes' (on the digit CNN's features only)."""
  return class_histogram(inputs.fake_logits)
