"""`--dataset=stacked_mnist5k[:train|test]`: Stacked MNIST (Srivastava et al. 2017, VEEGAN; Metz et al.
2017; PacGAN) on the embedded digits: each example is three digits drawn independently, with
replacement, stacked as the three colour channels, so the data have 10^3 = 1,000 modes. The label of
a triple is its mode 100 a + 10 b + c (a, b, c the channels' digits).

train: 128,000 triples of the 4,000 mnist5k training digits (VEEGAN's count); test: 26,000 triples of
the 1,000 held-out digits (the evaluation's sample count), so the two splits share no digit.
Example i of a split is a pure function of (seed, i): its digits are `digit_indices(seed, i)`, a
counter-based hash computed the same way by numpy on the host and by jax.numpy inside the step, so no
table of triples exists anywhere: the devices hold the digits alone (4,000 x 28 x 28 bytes) and
gather each batch from them; the epochs' order is ImageDataset's per-epoch permutation.
"""
import hashlib

import numpy as np

from gan_jax.data.images import PIXEL_VALUES, EpochOrder, load_mnist5k

EXAMPLES = {"train": 128_000, "test": 26_000}
MODES = 1000
_SALT = {"train": 0x2545F491, "test": 0x9E3779B9}  # the splits' streams differ whatever the seed


def _mix(x, xp):
  """lowbias32 (C. Wellons): a bijective uint32 hash with a full avalanche; `xp` is numpy or jax.numpy."""
  x = x ^ (x >> 16)
  x = x * xp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * xp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def digit_indices(key, index, num_digits: int, xp=np):
  """[..., 3] digit indices (into the split's digits) of examples `index` [...]: channel j of example
  i is hash(key, 3 i + j) mod num_digits. `key` is a uint32 derived from the seed and the split."""
  index = xp.asarray(index).astype(xp.uint32)
  slots = index[..., None] * xp.uint32(3) + xp.arange(3, dtype=xp.uint32)
  return (_mix(_mix(slots ^ xp.uint32(key), xp) + xp.uint32(key), xp) % xp.uint32(num_digits)).astype(xp.int32)


def stream_key(seed: int, split: str) -> int:
  return int(_mix(np.array([(seed * 0x85EBCA6B + _SALT[split]) & 0xFFFFFFFF], np.uint32), np)[0])


class StackedDigits(EpochOrder):
  """A `DeviceDataset` (gan_jax.data) of digit triples; {'x': float32 [b, R, R, 3], 'label': int32 [b]}."""
  ORDER_SALT = 3

  def __init__(self, split: str, resolution: int, seed: int):
    digits, labels = load_mnist5k(resolution, split)
    self.digits, self.digit_labels = digits[..., 0], labels.astype(np.int32)  # [N, R, R] uint8, [N]
    self.split, self.seed, self.key = split, seed, stream_key(seed, split)
    self.name = f"stacked_mnist5k:{split}"
    self.num_examples = EXAMPLES[split]
    self.data_shape = (resolution, resolution, 3)
    self.num_classes = MODES

  def fingerprint(self) -> dict:
    if not hasattr(self, "_fingerprint"):
      digest = hashlib.sha256(self.digits.tobytes() + self.digit_labels.tobytes()).hexdigest()
      self._fingerprint = {"name": self.name, "shape": list(self.data_shape), "examples": self.num_examples,
                           "seed": self.seed, "sha256": digest}
    return self._fingerprint

  def examples(self, index):
    """uint8 images [..., R, R, 3] and mode labels [...] of examples `index`, on the host."""
    digits = digit_indices(self.key, index, len(self.digits))
    return np.moveaxis(self.digits[digits], -3, -1), mode_of(self.digit_labels[digits])

  def get_batch(self, index: int, batch_size: int, rows: slice = slice(None)):
    images, labels = self.examples(self.indices(index, batch_size, rows))
    return {"x": PIXEL_VALUES[images], "label": labels}

  def device_arrays(self, limit_bytes: int):
    del limit_bytes  # the digits are 3 MB
    return {"digits": self.digits, "labels": self.digit_labels, "pixels": PIXEL_VALUES,
            "key": np.array(self.key, np.uint32)}

  @staticmethod
  def gather(arrays, index):
    """On the device: example indices [...] -> the batch `get_batch` gives, bit for bit."""
    import jax.numpy as jnp
    digits = digit_indices(arrays["key"], index, arrays["digits"].shape[0], xp=jnp)
    images = jnp.moveaxis(jnp.take(arrays["digits"], digits, axis=0), -3, -1).astype(jnp.int32)
    return {"x": jnp.take(arrays["pixels"], images), "label": mode_of(jnp.take(arrays["labels"], digits), jnp)}


def mode_of(channel_labels, xp=np):
  """Channel labels [..., 3] -> the mode 100 a + 10 b + c [...]."""
  return (channel_labels[..., 0] * 100 + channel_labels[..., 1] * 10 + channel_labels[..., 2]).astype(xp.int32)


def load(name: str, split: str, opts) -> StackedDigits:
  """The registry's loader of `stacked_mnist5k[:SPLIT]`; opts: gan_jax.data.DataOptions."""
  del name
  return StackedDigits(split or "train", opts.resolution, opts.seed)
