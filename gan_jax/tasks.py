"""What a run's samples are judged by: toy mixtures (mode coverage) or images (features of a classifier).

One interface for the training evaluator, `experiments/evaluate.py` and `experiments/sample.py`:
  eval_samples         how many samples an evaluation draws
  to_data_units(x)     G's output [N, ...] -> the data's own units (toy data trains scaled)
  metrics(x)           {name: value} for samples in data units
  draw(x, path, step)  the evaluation's picture of the samples (PNG); returns what TensorBoard shows, or None
  picture(x, path, t)  a picture of any number of samples (sample.py)
  rank(record)         a tuple to maximise for the best checkpoint, or None when nothing ranks
  final_metrics(rec)   what eval/final_metrics.json holds
  write_reals(dir)     reals.png beside the samples (images only)
"""
import os

import numpy as np

from gan_jax import metrics as metrics_lib
from gan_jax import pictures
from gan_jax.metrics import modes


class ToyTask:
  """Mixtures of Gaussians: PacGAN's mode coverage on samples in data units."""
  kind = "toy"
  FINAL_KEYS = ("modes", "high_quality", "reverse_kl", "mode_counts")

  def __init__(self, cfg, dataset=None):
    from gan_jax.data import toy
    self.dataset = dataset or toy.ToyDataset(toy.TOY[cfg.dataset](), cfg.seed, cfg.data_scale)
    self.mixture, self.scale = self.dataset.mixture, cfg.data_scale
    self.eval_samples = cfg.eval_samples

  def to_data_units(self, x):
    return x / self.scale

  def metrics(self, x) -> dict:
    return modes.mode_metrics(x, self.mixture.means, self.mixture.sigma)

  def draw(self, x, path: str, step: int, record=None):
    record = record if record is not None else self.metrics(x)
    pictures.scatter_png(x, self.mixture.means, path, real=self.dataset.reference_sample(len(x)),
                         title=f"step {step}: {record['modes']}/{len(self.mixture.means)} modes, "
                               f"{100 * record['high_quality']:.1f}% high quality")
    return None

  def picture(self, x, path: str, title: str = ""):
    pictures.scatter_png(x, self.mixture.means, path, title=title)

  def rank(self, record):
    """More modes first, then a lower reverse KL."""
    return (record["modes"], -record["reverse_kl"]) if "modes" in record else None

  def final_metrics(self, record) -> dict:
    return {k: record[k] for k in self.FINAL_KEYS if k in record}

  def write_reals(self, workdir: str):
    del workdir


class ImageTask:
  """Images in [-1, 1]: `--eval_metrics` on the features of the shipped digit CNN."""
  kind = "image"
  GRID = 64  # samples in a picture

  def __init__(self, cfg, dataset=None):
    """Without a dataset the task only draws pictures (sample.py)."""
    self.dataset, self.names = dataset, cfg.eval_metric_names
    self.eval_samples = cfg.eval_samples if self.names else self.GRID
    self._num_reals = min(cfg.eval_samples, dataset.num_examples) if dataset is not None else 0
    self._image_metrics = None

  def to_data_units(self, x):
    return x

  def image_metrics(self):
    """The metrics against the real data's features, computed at the first evaluation (not before
    the first training step)."""
    if self._image_metrics is None and self.names:
      from gan_jax.metrics import digits
      reals = self.dataset.get_batch(0, self._num_reals)["x"]
      self._image_metrics = metrics_lib.ImageMetrics(reals, self.names, digits.classify)
    return self._image_metrics

  def metrics(self, x) -> dict:
    return self.image_metrics()(x) if self.names else {}

  def draw(self, x, path: str, step: int = 0, record=None):
    del step, record
    grid = pictures.image_grid(x[:self.GRID], cols=8)
    pictures.save_png(grid, path)
    return grid

  def picture(self, x, path: str, title: str = ""):
    del title
    pictures.save_png(pictures.image_grid(np.asarray(x)), path)

  def rank(self, record):
    """Lower FID (else KID) first."""
    for name in ("fid", "kid"):
      if name in record:
        return (-record[name],)
    return None

  def final_metrics(self, record) -> dict:
    return dict(record)

  def write_reals(self, workdir: str):
    reals = self.dataset.get_batch(0, self.GRID)["x"]
    pictures.save_png(pictures.image_grid(reals, cols=8), os.path.join(workdir, "reals.png"))


def make_task(cfg, dataset=None):
  """The task of `cfg.dataset`: toy mixtures or images (without `dataset`: pictures only, for images)."""
  return ToyTask(cfg, dataset) if cfg.is_toy else ImageTask(cfg, dataset)

