"""Evaluation metrics behind one registry.

Image metrics work on features from a pluggable feature function
`feature_fn(images [N, R, R, C] in [-1, 1]) -> (class probabilities [N, K], features [N, D])`;
`digits.classify` (a CNN trained on mnist5k, shipped with the package) is the one the flags use.
Toy metrics (`modes.mode_metrics`) need no features.
"""
import numpy as np

from gan_jax.divergences import kl_discrete
from gan_jax.metrics import frechet, inception_score, kid, prdc


def _fid(ctx):
  return {"fid": frechet.fid(ctx["fake_features"], ctx["real_features"])}


def _kid(ctx):
  mean, std = kid.kid(ctx["fake_features"], ctx["real_features"])
  return {"kid": mean, "kid_std": std}


def _score(ctx):
  mean, std = inception_score.inception_score(ctx["fake_probs"], num_splits=10)
  return {"score": mean, "score_std": std}


def _prdc(ctx):
  n = min(len(ctx["fake_features"]), len(ctx["real_features"]), 2500)
  return prdc.prdc(ctx["real_features"][:n], ctx["fake_features"][:n])


def _classes(ctx):
  """Class histogram of generated samples: classes with >= 1% of them, reverse KL to uniform."""
  probs = ctx["fake_probs"]
  counts = np.bincount(probs.argmax(1), minlength=probs.shape[1])
  q = counts / counts.sum()
  return {"classes": int(np.sum(q >= 0.01)),
          "class_reverse_kl": kl_discrete(q, np.full(len(q), 1.0 / len(q))),
          "class_counts": counts.tolist()}


IMAGE_METRICS = {"fid": _fid, "kid": _kid, "score": _score, "prdc": _prdc, "classes": _classes}


def check_names(names):
  unknown = [n for n in names if n not in IMAGE_METRICS]
  if unknown:
    raise KeyError(f"unknown metric {unknown[0]!r}; valid: {', '.join(IMAGE_METRICS)}")


class ImageMetrics:
  """Computes the named metrics of generated images against a fixed set of real images."""

  def __init__(self, real_images, names, feature_fn):
    check_names(names)
    self.names, self.feature_fn = tuple(names), feature_fn
    self.real_probs, self.real_features = feature_fn(real_images)

  def __call__(self, fake_images) -> dict:
    fake_probs, fake_features = self.feature_fn(fake_images)
    ctx = {"real_features": self.real_features, "real_probs": self.real_probs,
           "fake_features": fake_features, "fake_probs": fake_probs}
    out = {}
    for name in self.names:
      out.update(IMAGE_METRICS[name](ctx))
    return out
