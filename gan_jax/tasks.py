"""What a run's samples are judged by: toy mixtures (mode coverage) or images (features of a classifier).

One interface for the training evaluator, `experiments/evaluate.py` and `experiments/sample.py`:
  eval_samples         how many samples an evaluation draws
  to_data_units(x)     G's output [N, ...] -> the data's own units (toy data trains scaled)
  metrics(x, state)    {name: value} for samples in data units (the registry's metrics, gan_jax.metrics)
  theory(probe, state) metrics that need G and D themselves, and what the picture draws of them
  draw(x, path, step)  the evaluation's picture of the samples (PNG); returns what TensorBoard shows, or None
  finish(workdir)      pictures drawn over the whole run (toy: theory.png, the Figure 1 animation)
  picture(x, path, t)  a picture of any number of samples (sample.py)
  rank(record)         a tuple to maximise for the best checkpoint (the ranking metric's), or None
  final_metrics(rec)   what eval/final_metrics.json holds
  write_reals(dir)     reals.png beside the samples (images only)
"""
import os

import numpy as np

from gan_jax import metrics as metrics_lib
from gan_jax import pictures, theory, workdir
from gan_jax.divergences import optimal_discriminator
from gan_jax.metrics.inputs import MetricInputs


class ToyTask:
  """Mixtures of Gaussians: PacGAN's mode coverage on samples in data units, and the theory
  (`gan_jax/theory.py`): JSD(p_data || p_g), V(D, G) against V(D*, G), D's surface, Figure 1."""
  kind = "toy"
  FINAL_KEYS = ("modes", "modes_ever", "high_quality", "reverse_kl", "mode_counts", "jsd", "value", "value_at_optimum",
                "d_deviation")
  SURFACE = 100  # D's heat map: SURFACE^2 points (2-D); Figure 1's curves: 10 * SURFACE points (1-D)

  NAMES = ("modes",)  # the metrics of every toy evaluation

  def __init__(self, cfg, dataset=None):
    from gan_jax.data import make_dataset
    self.dataset = dataset or make_dataset(cfg)
    self.mixture, self.scale, self.shift = self.dataset.mixture, cfg.data_scale, cfg.data_shift
    self.eval_samples = cfg.eval_samples
    self.pack, self.seed = cfg.pack, cfg.seed
    self.metrics_path = os.path.join(cfg.workdir, "metrics.jsonl")
    self.latents_name = "U[-1, 1]" if cfg.latent_distribution == "uniform" else "N(0, 1)"
    self.grid = theory.DensityGrid.for_mixture(self.mixture)
    self._p_grid = None  # p_data on the grid, computed at the first evaluation
    rng = np.random.default_rng([cfg.seed, 2**31 - 2])  # fixed across evaluations, apart from training's
    # --theory_samples of G (and as many fresh reals) per evaluation, for JSD and V (theory.JSD_ERROR).
    shape = (cfg.theory_samples, cfg.latent_dim)  # z ~ p_z (--latent_distribution)
    self.theory_z = (rng.uniform(-1.0, 1.0, shape) if cfg.latent_distribution == "uniform"
                     else rng.standard_normal(shape)).astype(np.float32)
    self.theory_reals = self.mixture.sample(rng, cfg.theory_samples)[0]
    self.with_theory = cfg.theory_samples > 0 and cfg.conditioning == "none"  # V(D, G) of an unconditional D

  def to_data_units(self, x):
    return x / self.scale + np.float32(self.shift)

  def to_train_units(self, x):
    """Data units -> what the networks see: (x - data_shift) * data_scale."""
    return (x - np.float32(self.shift)) * self.scale

  def metrics(self, x, state=None) -> dict:
    """The registry's toy metrics, and `modes_ever`: the modes covered at this or any earlier evaluation
    in WORKDIR/metrics.jsonl (a GAN that hops from mode to mode covers few at a time, many over time)."""
    del state
    record = metrics_lib.compute(self.NAMES, MetricInputs(x, mixture=self.mixture, dataset=self.dataset))
    covered = np.asarray(record["mode_counts"]) > 0
    for earlier in workdir.read_records(self.metrics_path) if os.path.exists(self.metrics_path) else ():
      if len(earlier.get("mode_counts", ())) == len(covered):
        covered |= np.asarray(earlier["mode_counts"]) > 0
    record["modes_ever"] = int(covered.sum())
    return record

  def theory(self, probe, state):
    """({jsd, value_at_optimum, value, and for 1-D data d_deviation}, what the picture draws), or ({}, None)
    for a conditional D.

    jsd: JSD(p_data || p_g) of G_ema (the generator evaluations and final_samples.npy use), error
    theory.JSD_ERROR. value: V(D, G) of the current D against the G it trains with, on fresh
    reals and fakes; value_at_optimum: -log 4 + 2 JSD for that G, which bounds `value` from
    above (for pack > 1: D judges pack-tuples, so the JSD is that of the pack-fold products).
    d_deviation: max |D(x) - 1/2| over mu +- 3 sigma (Figure 1's panel (d) has 0).
    """
    if not self.with_theory:
      return {}, None
    x_ema = self.to_data_units(probe.samples(state, self.theory_z, ema=True))
    x_g = self.to_data_units(probe.samples(state, self.theory_z, ema=False))
    if self._p_grid is None:
      self._p_grid = theory.data_density_on_grid(self.mixture, self.grid)
    jsd = theory.jsd_estimate(self.mixture, x_ema, self.grid, self._p_grid)
    jsd_g = (theory.jsd_estimate(self.mixture, x_g, self.grid, self._p_grid) if self.pack == 1 else
             theory.packed_jsd_estimate(self.mixture, x_g, self.pack, np.random.default_rng(self.seed), self.grid))
    real = probe.d_logits(state, self.to_train_units(self.theory_reals))
    fake = probe.d_logits(state, self.to_train_units(x_g))
    record = {"jsd": jsd, "value_at_optimum": theory.value_at_optimum(jsd_g), "value": theory.value(real, fake)}
    surface = self._surface(probe, state, x_g)
    if self.mixture.dim == 1:  # Figure 1's panel (d): D = 1/2 on mu +- 3 sigma
      curves, mean, sigma = surface[0], self.mixture.means[0, 0], self.mixture.sigma
      inside = np.abs(curves["x"] - mean) <= 3 * sigma
      record["d_deviation"] = float(np.max(np.abs(curves["d"][inside] - 0.5)))
    return record, surface

  def _surface(self, probe, state, x_g):
    """2-D: (D on a square grid, half-width); 1-D: Figure 1's curves and z -> G(z) lines."""
    if self.mixture.dim == 2:
      half = 1.5 * np.abs(self.mixture.means).max() + 0.5
      axis = np.linspace(-half, half, self.SURFACE)
      points = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
      # A packed D judges tuples: each grid point sits in every slot in turn beside samples of G.
      d = np.mean([_sigmoid(probe.d_logits(state, self.to_train_units(_tuples(points, x_g, self.pack, slot))))
                   for slot in range(self.pack)], axis=0)
      return d.reshape(self.SURFACE, self.SURFACE), half
    mean, sigma = float(self.mixture.means[0, 0]), self.mixture.sigma
    x = np.linspace(mean - 8 * sigma, mean + 8 * sigma, 10 * self.SURFACE)[:, None]
    p_data = theory.mixture_pdf(self.mixture, x)
    q, _ = theory.kde_on_grid(self.grid, x_g, self.mixture.sigma)
    p_g = theory.kde_lookup(self.grid, q, x)
    d = np.mean([_sigmoid(probe.d_logits(state, self.to_train_units(_tuples(x, x_g, self.pack, slot))))
                 for slot in range(self.pack)], axis=0)
    z = np.zeros((25, self.theory_z.shape[1]), np.float32)  # quantiles of z's first coordinate
    z[:, 0] = np.quantile(self.theory_z[:, 0], np.linspace(0.02, 0.98, 25))
    gz = self.to_data_units(probe.samples(state, z, ema=False))[:, 0]
    curves = {"x": x[:, 0], "p_data": p_data, "p_g": p_g, "d": d, "d_star": optimal_discriminator(p_data, p_g)}
    return curves, (z[:, 0], gz)

  def draw(self, x, path: str, step: int, record=None, surface=None):
    record = record if record is not None else self.metrics(x)
    title = (f"step {step}: {record['modes']}/{len(self.mixture.means)} modes, "
             f"{100 * record['high_quality']:.1f}% high quality")
    if "jsd" in record:
      title += f", JSD {record['jsd']:.3f}"
    if surface is not None and self.mixture.dim == 1:
      pictures.figure1_png(*surface, path, title=title, latents=self.latents_name)
    else:
      pictures.scatter_png(x, self.mixture.means, path, real=self.dataset.reference_sample(len(x)), title=title,
                           surface=surface)
    return None

  def finish(self, directory: str):
    """WORKDIR/theory.png from metrics.jsonl's evaluations; for 1-D data, samples/figure1.gif of the frames."""
    records = [r for r in workdir.read_records(os.path.join(directory, "metrics.jsonl")) if "value" in r]
    if records:
      pictures.theory_png([r["step"] for r in records], [r["value"] for r in records],
                          [r["value_at_optimum"] for r in records], [r["jsd"] for r in records],
                          os.path.join(directory, "theory.png"))
    samples = os.path.join(directory, "samples")  # absent for a --seeds run frozen before its first evaluation
    frames = sorted(f for f in os.listdir(samples) if f.startswith("step_")) if os.path.isdir(samples) else []
    if self.mixture.dim == 1 and frames:
      pictures.animation([os.path.join(directory, "samples", f) for f in frames],
                         os.path.join(directory, "samples", "figure1.gif"))

  def picture(self, x, path: str, title: str = ""):
    pictures.scatter_png(x, self.mixture.means, path, title=title)

  def rank(self, record):
    """More modes first, then a lower reverse KL (the 'modes' metric's ranking)."""
    return metrics_lib.rank(record, self.NAMES)

  def final_metrics(self, record) -> dict:
    return {k: record[k] for k in self.FINAL_KEYS if k in record}

  def write_reals(self, directory: str):
    del directory


class ImageTask:
  """Images in [-1, 1]: `--eval_metrics` (the registry's, gan_jax.metrics) against the training
  images, on the features of `feature` = (feature_fn, its identity): the digit CNN or pytorch-fid's
  Inception (`metrics/features.py`)."""
  kind = "image"
  GRID = 64  # samples in a picture

  def __init__(self, cfg, dataset=None, feature=None, nets=None):
    """Without a dataset the task only draws pictures (sample.py)."""
    self.dataset, self.names, self.feature, self.nets = dataset, cfg.eval_metric_names, feature, nets
    self.eval_samples = cfg.eval_samples if self.names else self.GRID
    self._num_reals = min(cfg.eval_samples, dataset.num_examples) if dataset is not None else 0
    self._kid_subset_size, self._seed = cfg.kid_subset_size, cfg.seed
    self.show_channels = cfg.dataset_spec.show_channels
    self._real, self._real_cache = None, {}  # the training images' features; what metrics keep of the real data
    wants_held_out = any(metrics_lib.HELD_OUT in metrics_lib.METRICS.get(n).needs for n in self.names)
    self._held_out_cfg, self._held_out = (cfg if wants_held_out and dataset is not None else None), None

  def to_data_units(self, x):
    return x

  def real_features(self):
    """(logits, features) of the real training images (from the reference cache), read at the first
    evaluation, not before the first training step."""
    if self._real is None:
      from gan_jax.metrics import features
      fn, network = self.feature
      self._real = features.reference_features(self.dataset, self._num_reals, fn, network)
    return self._real

  def held_out(self):
    """The held-out split, read at the first evaluation of a metric that needs it (else None)."""
    if self._held_out is None and self._held_out_cfg is not None:
      from gan_jax import data as data_lib
      self._held_out = data_lib.make_held_out_dataset(self._held_out_cfg)
    return self._held_out

  def metrics(self, x, state=None) -> dict:
    if not self.names:
      return {}
    inputs = MetricInputs(x, feature_fn=self.feature and self.feature[0], real=self.feature and self.real_features,
                          dataset=self.dataset, held_out=self.held_out(), nets=self.nets, state=state,
                          kid_subset_size=self._kid_subset_size, seed=self._seed, real_cache=self._real_cache)
    return metrics_lib.compute(self.names, inputs)

  def theory(self, probe, state):
    del probe, state
    return {}, None

  def draw(self, x, path: str, step: int = 0, record=None, surface=None):
    """The grid of samples; for data whose channels are digits (Stacked MNIST), also PATH_channels.png."""
    del step, record, surface
    grid = pictures.image_grid(x[:self.GRID], cols=8)
    pictures.save_png(grid, path)
    if self.show_channels:
      pictures.save_png(pictures.channels_grid(x), path[:-len(".png")] + "_channels.png")
    return grid

  def picture(self, x, path: str, title: str = ""):
    del title
    pictures.save_png(pictures.image_grid(np.asarray(x)), path)

  def rank(self, record):
    """The ranking metric's tuple (lower FID, else lower KID, ...), or None."""
    return metrics_lib.rank(record, self.names)

  def final_metrics(self, record) -> dict:
    return dict(record)

  def finish(self, directory: str):
    del directory

  def write_reals(self, directory: str):
    reals = self.dataset.get_batch(0, self.GRID)["x"]
    pictures.save_png(pictures.image_grid(reals, cols=8), os.path.join(directory, "reals.png"))


def _sigmoid(logits):
  return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


def _tuples(points, fakes, pack: int, slot: int):
  """[len(points) * pack, D]: each point in position `slot` of its pack, the others from `fakes`."""
  if pack == 1:
    return points
  rows = np.asarray(fakes)[np.arange(len(points) * pack) % len(fakes)].reshape(len(points), pack, -1).copy()
  rows[:, slot] = points
  return rows.reshape(len(points) * pack, -1)


def make_task(cfg, dataset=None, feature=None, nets=None):
  """The task of `cfg.dataset`: toy mixtures, or images (with `feature`, the image metrics' network;
  without `dataset`: pictures only)."""
  return ToyTask(cfg, dataset) if cfg.is_toy else ImageTask(cfg, dataset, feature, nets)

