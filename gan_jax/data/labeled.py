"""Semi-supervised data (--labeled_examples): every example of a dataset for the GAN game, and beside each
batch a batch of the few labelled ones.

The labelled subset is balanced: N/K examples of each of the K classes, the first of each class in a
permutation drawn from (seed, SUBSET_SALT), as improved-gan picks them (`txs`); N = the whole dataset
takes every label. Batch `index` holds the base dataset's batch `index` ('x', 'label': the GAN game reads
no label), the labelled stream's batch `index` ('x_labeled', 'label_labeled'): stream positions over
the N labelled examples through a fresh permutation per pass, drawn from (seed, pass, LABELED_SALT), as
improved-gan tiles permutations of `txs` to the batch count, and G's batch `index` ('x_generator'): the
reals G's feature matching compares with, every example again through permutations of their own
(GENERATOR_SALT; improved-gan's `trainx_unl2`), so G does not match the very reals D has just been
updated on. All three are pure functions of (seed, index), so a resumed run reads the batches an
uninterrupted run would; on the devices one gather serves them all (`indices` gives three columns).
"""
import hashlib

import numpy as np

from gan_jax.data.images import PIXEL_VALUES, EpochOrder
from gan_jax.errors import ConfigError

SUBSET_SALT = 0x55B


def dataset_labels(dataset, chunk: int = 4096) -> np.ndarray:
  """int32 [N]: every example's label, in index order (`examples` of the dataset, read in chunks)."""
  n = dataset.num_examples
  return np.concatenate([np.asarray(dataset.examples(np.arange(i, min(i + chunk, n)))[1], np.int32)
                         for i in range(0, n, chunk)])


def labeled_subset(labels: np.ndarray, count: int, num_classes: int, seed: int) -> np.ndarray:
  """Example indices [count] of a balanced labelled subset (count / K per class, grouped by class), or
  every index when count = len(labels); a ConfigError naming --labeled_examples when neither fits."""
  total = len(labels)
  if count == total:
    return np.arange(total)
  per_class, rest = divmod(count, num_classes)
  fewest = int(np.bincount(labels, minlength=num_classes).min())
  require = (f"a multiple of the {num_classes} classes up to {num_classes * fewest} (balanced: the rarest class "
             f"has {fewest} examples), or {total} for every label")
  if rest or not 0 < per_class <= fewest:
    raise ConfigError("labeled_examples", count, require)
  order = np.random.default_rng([seed, SUBSET_SALT]).permutation(total)
  return np.concatenate([order[labels[order] == c][:per_class] for c in range(num_classes)])


class StreamOrder(EpochOrder):
  """Per-pass permutations of `count` stream positions, drawn from (seed, pass, salt): a stream of its own
  beside the base dataset's (whose salt is EpochOrder.ORDER_SALT)."""

  def __init__(self, count: int, seed: int, salt: int):
    self.num_examples, self.seed, self.ORDER_SALT = count, seed, salt


# The labelled stream's and G's reals' salts (stacked_mnist5k's own order is also salted 3: there G reads D's reals).
LABELED_SALT, GENERATOR_SALT = 2, 3


class SemiSupervisedDataset:
  """A DeviceDataset (gan_jax.data) wrapping `base` (one with `examples(index) -> (uint8 images, labels)`)
  whose batches also hold `count` labelled examples' rows and G's reals:
  {'x', 'label', 'x_labeled', 'label_labeled', 'x_generator'}."""
  index_shape = (3,)  # a row's indices: (the base's example, the labelled example, G's example)
  batch_keys = ("x", "label", "x_labeled", "label_labeled", "x_generator")

  def __init__(self, base, count: int):
    self.base = base
    self.name, self.data_shape, self.num_classes = base.name, base.data_shape, base.num_classes
    self.num_examples, self.seed = base.num_examples, base.seed
    self.labels = dataset_labels(base)
    self.subset = labeled_subset(self.labels, count, base.num_classes, base.seed)
    self.stream = StreamOrder(len(self.subset), base.seed, LABELED_SALT)
    self.generator_stream = StreamOrder(base.num_examples, base.seed, GENERATOR_SALT)

  def record(self) -> dict:
    """What WORKDIR/labeled_examples.json holds: the subset's indices (into the training split), labels, counts."""
    labels = self.labels[self.subset]
    return {"dataset": self.name, "seed": self.seed, "count": len(self.subset),
            "per_class": np.bincount(labels, minlength=self.num_classes).tolist(),
            "indices": self.subset.tolist(), "labels": labels.tolist()}

  def fingerprint(self) -> dict:
    """The base's, with the labelled subset's size, a sha256 of its indices, and where G's reals come from
    (a checkpoint of the code before G had reals of its own has no 'generator_reals': its resume is refused)."""
    digest = hashlib.sha256(np.asarray(self.subset, np.int64).tobytes()).hexdigest()
    return {**self.base.fingerprint(), "labeled": len(self.subset), "labeled_sha256": digest,
            "generator_reals": f"a pass of their own (salt {GENERATOR_SALT})"}

  def labeled_indices(self, index: int, batch_size: int, rows: slice = slice(None)) -> np.ndarray:
    """Example indices [b] of rows `rows` of the labelled stream's batch `index`."""
    return self.subset[self.stream.indices(index, batch_size, rows)]

  def indices(self, index: int, batch_size: int, rows: slice = slice(None)) -> np.ndarray:
    """int64 [b, 3]: the base's example, the labelled example and G's example of each row of batch `index`."""
    return np.stack([self.base.indices(index, batch_size, rows), self.labeled_indices(index, batch_size, rows),
                     self.generator_stream.indices(index, batch_size, rows)], -1)

  def device_arrays(self, limit_bytes: int):
    return self.base.device_arrays(limit_bytes)

  def gather(self, arrays, index):
    """On the device: indices [..., 3] -> the batch `get_batch` gives, bit for bit."""
    return _batch(*(self.base.gather(arrays, index[..., column]) for column in range(3)))

  def examples(self, index):
    return self.base.examples(index)

  def get_batch(self, index: int, batch_size: int, rows: slice = slice(None)):
    return _batch(self.base.get_batch(index, batch_size, rows),
                  self._rows(self.labeled_indices(index, batch_size, rows)),
                  self._rows(self.generator_stream.indices(index, batch_size, rows)))

  def _rows(self, indices):
    """On the host: {'x': float32 [b, ...] in [-1, 1], 'label': int32 [b]} of examples `indices` [b]."""
    images, labels = self.base.examples(indices)
    return {"x": PIXEL_VALUES[images], "label": np.asarray(labels, np.int32)}


def _batch(rows, labeled, generator):
  """One semi-supervised batch from the base's rows of its three streams (host and device alike)."""
  return {**rows, "x_labeled": labeled["x"], "label_labeled": labeled["label"], "x_generator": generator["x"]}
