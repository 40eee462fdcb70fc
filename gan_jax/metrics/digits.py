"""A small digit classifier, trained by this project on mnist5k and shipped with it: the feature
network for FID / KID / the score / precision-recall on MNIST-like runs.

Architecture: 3x3 convs 32-64-64 with 2x2 max-pooling, dense 128 (the feature layer), dense 10.
Input: [N, 32, 32, 1] in [-1, 1] (28 px digits are zero-padded, other sizes resized).
Weights: gan_jax/metrics/digits_cnn.msgpack, written by experiments/train_digit_classifier.py.
"""
import functools
import os

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

WEIGHTS = os.path.join(os.path.dirname(__file__), "digits_cnn.msgpack")


class DigitCNN(nn.Module):
  """x [N, 32, 32, 1] -> (logits [N, 10], features [N, 128])."""

  @nn.compact
  def __call__(self, x):
    for width in (32, 64, 64):
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    features = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    return nn.Dense(10)(features), features


def to_classifier_input(images):
  """[N, R, R, 1] in [-1, 1] -> [N, 32, 32, 1]: pad 28 px by 2 (background -1), resize others."""
  images = jnp.asarray(images, jnp.float32)
  if images.shape[-1] != 1:
    images = images.mean(-1, keepdims=True)
  if images.shape[1:3] == (28, 28):
    return jnp.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
  if images.shape[1:3] != (32, 32):
    return jax.image.resize(images, (images.shape[0], 32, 32, 1), "linear")
  return images


@functools.lru_cache(maxsize=1)
def load_params():
  if not os.path.exists(WEIGHTS):
    raise FileNotFoundError(f"{WEIGHTS} is missing: run experiments/train_digit_classifier.py")
  template = jax.eval_shape(lambda: DigitCNN().init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1))))["params"]
  with open(WEIGHTS, "rb") as f:
    return flax.serialization.from_bytes(template, f.read())


@jax.jit
def _apply(params, x):
  return DigitCNN().apply({"params": params}, x)


def logits_and_features(images, params=None, batch: int = 500):
  """images [N, R, R, 1] in [-1, 1] -> (class logits [N, 10], features [N, 128]) as numpy: the
  feature function of the image metrics."""
  params = load_params() if params is None else params
  logits, feats = [], []
  for i in range(0, len(images), batch):
    l, f = _apply(params, to_classifier_input(images[i:i + batch]))
    logits.append(np.asarray(l))
    feats.append(np.asarray(f))
  return np.concatenate(logits), np.concatenate(feats)


def classify(images, params=None, batch: int = 500):
  """images [N, R, R, 1] in [-1, 1] -> (class probabilities [N, 10], features [N, 128]) as numpy."""
  logits, features = logits_and_features(images, params, batch)
  return np.asarray(jax.nn.softmax(logits)), features
