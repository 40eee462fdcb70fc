"""Evaluation metrics behind one registry.

Image metrics compare generated with real images through a feature network,
`feature_fn(images [N, R, R, C] in [-1, 1]) -> (logits [N, K], features [N, D])`: pytorch-fid's
Inception (pool3, 1008 logits; `inception.py`) for RGB data, the shipped digit CNN (`digits.py`)
for digits; `features.py` picks one. Toy metrics (`modes.mode_metrics`) need no features.

  fid      Fréchet distance of Gaussians fitted to the features (Heusel et al. 2017)
  kid      KID x 1000 (papers print it so), 100 subsets of --kid_subset_size (torch-fidelity's protocol)
  is       Inception Score from the logits, 10 shuffled splits
  pr, dc   precision / recall and density / coverage, k = 5, on a random subset of at most 5,000 each
  classes  the digit-class histogram: classes with >= 1 % of the samples, reverse KL to uniform
"""
import numpy as np

from gan_jax.divergences import kl_discrete
from gan_jax.metrics import frechet, inception_score, kid, prdc

PRDC_MAX = 5000  # pairwise distances of this many real and fake samples: O(n^2 D)


def _fid(ctx):
  return {"fid": frechet.fid(ctx["fake_features"], ctx["real_features"])}


def _kid(ctx):
  mean, std = kid.kid(ctx["fake_features"], ctx["real_features"], subset_size=ctx["kid_subset_size"],
                      seed=ctx["seed"])
  return {"kid_x1000": 1000.0 * mean, "kid_x1000_std": 1000.0 * std}


def _is(ctx):
  mean, std = inception_score.inception_score(ctx["fake_logits"], num_splits=10, seed=ctx["seed"])
  return {"is": mean, "is_std": std}


def _prdc(ctx):
  """Precision, recall, density, coverage on seeded random subsets (not the first rows)."""
  if "prdc" not in ctx:
    rng = np.random.default_rng(ctx["seed"])
    real, fake = ctx["real_features"], ctx["fake_features"]
    n = min(len(real), len(fake), PRDC_MAX)
    ctx["prdc"] = prdc.prdc(real[rng.choice(len(real), n, replace=False)],
                            fake[rng.choice(len(fake), n, replace=False)])
  return ctx["prdc"]


def _pr(ctx):
  return {k: _prdc(ctx)[k] for k in ("precision", "recall")}


def _dc(ctx):
  return {k: _prdc(ctx)[k] for k in ("density", "coverage")}


def _classes(ctx):
  """Class histogram of generated samples: classes with >= 1% of them, reverse KL to uniform."""
  logits = ctx["fake_logits"]
  counts = np.bincount(logits.argmax(1), minlength=logits.shape[1])
  q = counts / counts.sum()
  return {"classes": int(np.sum(q >= 0.01)),
          "class_reverse_kl": kl_discrete(q, np.full(len(q), 1.0 / len(q))),
          "class_counts": counts.tolist()}


IMAGE_METRICS = {"fid": _fid, "kid": _kid, "is": _is, "pr": _pr, "dc": _dc, "classes": _classes}


def check_names(names):
  unknown = [n for n in names if n not in IMAGE_METRICS]
  if unknown:
    raise KeyError(f"unknown metric {unknown[0]!r}; valid: {', '.join(IMAGE_METRICS)}")


class ImageMetrics:
  """The named metrics of generated images against a fixed set of real images.

  `real` = (logits, features) of the real images when already computed (a cached reference),
  else they are computed from `real_images`.
  """

  def __init__(self, real_images, names, feature_fn, real=None, kid_subset_size: int = 1000, seed: int = 0):
    check_names(names)
    self.names, self.feature_fn = tuple(names), feature_fn
    self.kid_subset_size, self.seed = kid_subset_size, seed
    self.real_logits, self.real_features = real if real is not None else feature_fn(real_images)

  def __call__(self, fake_images) -> dict:
    return self.compare(*self.feature_fn(fake_images))

  def compare(self, fake_logits, fake_features) -> dict:
    """The metrics of already computed (logits, features) of generated images."""
    ctx = {"real_features": self.real_features, "real_logits": self.real_logits,
           "fake_features": fake_features, "fake_logits": fake_logits,
           "kid_subset_size": self.kid_subset_size, "seed": self.seed}
    out = {}
    for name in self.names:
      out.update(IMAGE_METRICS[name](ctx))
    return out
