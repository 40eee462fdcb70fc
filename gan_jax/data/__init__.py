"""Datasets behind one `--dataset` flag, and the batch stream the training loop reads.

Every dataset answers `get_batch(index, batch_size, rows)` with the rows of
global batch `index` as numpy arrays; the batch is a pure function of
(seed, index), so the input pipeline's position is just the batch index and a
resumed run reads exactly the batches an uninterrupted run would have read.
"""
import numpy as np

from gan_jax.data import toy


def make_dataset(cfg):
  """Returns a dataset with `.data_shape`, `.num_classes` and `.get_batch`."""
  if cfg.dataset in toy.TOY:
    return toy.ToyDataset(toy.TOY[cfg.dataset](), cfg.seed, cfg.data_scale)
  from gan_jax.data import images  # Image code imports tfds lazily.
  return images.make_image_dataset(cfg)


def stacked_batches(dataset, first_step: int, num_steps: int, d_steps: int, batch_size: int,
                    rows: slice = slice(None)):
  """Batches for `num_steps` training steps of `d_steps` D updates: leaves [num_steps, k, b, ...]."""
  out = [[dataset.get_batch((first_step + s) * d_steps + i, batch_size, rows) for i in range(d_steps)]
         for s in range(num_steps)]
  return {key: np.stack([np.stack([b[key] for b in step]) for step in out]) for key in out[0][0]}
