"""The feature network of the image metrics, and the real data's features computed once and cached.

`feature_network(name, weights)` is `images [N, R, R, C] in [-1, 1] -> (logits, features)` for
'digits' (the shipped digit CNN: 10 logits, 128 features) or 'inception' (pytorch-fid's Inception:
1008 logits, 2048 pool3 features). `reference_features` computes those of a dataset's real images
once per (dataset contents, split, resolution, channels, seed, count, network) and keeps them in
~/.cache/gan_jax/reference/ (or $GAN_JAX_REFERENCE_CACHE), so an evaluation of 50,000 samples
does not push 50,000 real images through Inception every time.
"""
import hashlib
import json
import os
import time

import numpy as np
from absl import logging

from gan_jax import runtime, workdir
from gan_jax.errors import WorkdirError

CACHE_ENV = "GAN_JAX_REFERENCE_CACHE"


def feature_network(name: str, inception_weights: str = ""):
  """(feature_fn, identity string of the network and its weights)."""
  if name == "digits":
    from gan_jax.metrics import digits
    with open(digits.WEIGHTS, "rb") as f:
      identity = "digits:" + hashlib.sha256(f.read()).hexdigest()[:16]
    return digits.logits_and_features, identity
  from gan_jax.metrics import inception, inception_weights as weights
  path = inception_weights or weights.default_path()
  params = weights.load_params(path)

  def fn(images):
    pool3, logits = inception.inception_features(params, images, progress=ProgressLog("Inception features"))
    return logits, pool3

  return fn, f"inception:{os.path.basename(path)}:{os.path.getsize(path)}"


class ProgressLog:
  """A progress line every tenth of the way (and at the end): done/total, elapsed time, ETA."""

  def __init__(self, label: str):
    self.label, self.start, self.shown = label, time.time(), 0

  def __call__(self, done: int, total: int):
    tenth = 10 * done // max(total, 1)
    if tenth <= self.shown and done < total:
      return
    self.shown = tenth
    elapsed = time.time() - self.start
    eta = elapsed / max(done, 1) * (total - done)
    logging.info("%s: %d/%d images [%-10s] %.0f s, ETA %.0f s", self.label, done, total, "#" * tenth, elapsed, eta)


def cache_dir() -> str:
  if os.environ.get(CACHE_ENV):
    return os.environ[CACHE_ENV]
  return runtime.user_cache("gan_jax", "reference")


def reference_features(dataset, num: int, feature_fn, network: str):
  """(logits, features) of the first `num` real images of `dataset`'s stream, cached on disk."""
  key = json.dumps({"dataset": dataset.fingerprint(), "count": num, "network": network}, sort_keys=True)
  path = os.path.join(cache_dir(), hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")
  if os.path.exists(path):
    try:
      with np.load(path) as cached:
        return cached["logits"], cached["features"]
    except (OSError, ValueError, KeyError):
      logging.warning("reference features %s are unreadable; computing them again", path)
  t = time.time()
  reals = dataset.get_batch(0, num)["x"]
  logits, features = feature_fn(reals)
  logging.info("features of %d real images of %s (%s) in %.1f s, cached in %s", num, dataset.name, network,
               time.time() - t, path)
  try:
    workdir.write_atomic(path, lambda f: np.savez(f, logits=logits, features=features), mode="wb")
  except WorkdirError as e:  # a cache: the run goes on without it
    logging.warning("reference features not cached: %s", e)
  return logits, features
