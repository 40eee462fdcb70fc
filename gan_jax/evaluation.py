"""Evaluate a saved run: the metrics GAN papers report, and the DCGAN paper's pictures.

Used by experiments/evaluate.py. Everything here reads a workdir's checkpoint; nothing trains G.
The table holds every registered metric (gan_jax.metrics.METRICS) that applies to the run: its data
kind, its feature network, what it needs (a held-out split, labels) and its fewest samples.

FID and KID are biased by the sample counts, so every comparison states its counts and each generated
column has a real baseline at the same count against the same reference (`image_columns`), e.g. for
mnist5k's 4,000 training and 1,000 held-out digits and --num_samples=2500:
  generated 2,500 vs train 4,000 | generated 1,000 vs train 4,000 | held-out 1,000 vs train 4,000 (baseline)
  | generated 1,000 vs held-out 1,000 | train 1,000 vs held-out 1,000 (baseline).
Each generated cell is the mean +- std over `draws` sets of latents (a train baseline: over as many
disjoint subsets of the training images; for a conditional G, which draws its classes in turn, subsets
with G's class counts: a 1,000-image FID on the digit CNN's features moves by ~3 with the classes' shares,
benchmarks/results/main_job.md). KID's subsets are at most half the smallest set.
"""
import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib
from gan_jax import metrics as metrics_lib
from gan_jax import generate, memory, pictures, restore, tasks, validation
from gan_jax.errors import DataError
from gan_jax.generate import Generator, generate_samples, latents
from gan_jax.metrics import FEATURES, HELD_OUT, LABELS, STATE, copying, digits, features
from gan_jax.metrics.inputs import MetricInputs
from gan_jax.nets import draw_latents


def evaluation_metrics(kind: str, network, held_out: bool, labelled: bool, num_samples: int, cfg, extra=()):
  """The registry's metrics for evaluate.py's table: those that apply to the run's data (or the
  dataset's own, DatasetSpec.evaluate_with) and are on by default, plus `extra` (e.g. 'parzen'); a
  note is printed for each one the sample count rules out."""
  names, own = [], cfg.dataset_spec.evaluate_with
  for spec in metrics_lib.METRICS:
    usable = (kind in spec.data and spec.network in (None, network) and (held_out or HELD_OUT not in spec.needs)
              and (labelled or LABELS not in spec.needs) and spec.applies_to(cfg.dataset)
              and (not spec.requires or getattr(cfg, spec.requires))
              and (not own or spec.name in own or spec.name in extra))
    if not usable or not (spec.evaluate or spec.name in extra):
      continue
    if num_samples < spec.fewest_samples(cfg):
      print(f"{spec.name} not computed: it needs at least {spec.fewest_samples(cfg)} samples (--num_samples)")
      continue
    names.append(spec.name)
  return names


def _held_out(cfg):
  """The held-out split of cfg.dataset (gan_jax.data.DATASETS), or None when it has none or it is absent."""
  try:
    return data_lib.make_held_out_dataset(cfg)
  except DataError as e:
    print(f"no held-out column: {e}")
    return None


DRAWS = 3  # sets of latents, for the spread of every generated column
REFERENCE_FLOOR = 10_000  # real images a split contributes to the table: all of it up to this, or --num_samples
NEIGHBOURS = 16  # samples in neighbours.png


@dataclasses.dataclass
class Column:
  """One column of the table: a sample set compared with a reference set, once per draw (`inputs`)."""
  label: str
  inputs: list  # MetricInputs per draw


def table_counts(num_samples: int, train_examples: int, held_examples: Optional[int]) -> dict:
  """The table's sample counts: 'train' and 'held_out' reference images (a split whole, up to
  max(num_samples, REFERENCE_FLOOR)); 'equal', the count at which generated and real sets are compared
  with each other (num_samples, or the held-out split's size when smaller)."""
  cap = max(num_samples, REFERENCE_FLOOR)
  counts = {"generated": num_samples, "train": min(train_examples, cap)}
  if held_examples is not None:
    counts["held_out"] = min(held_examples, cap)
    counts["equal"] = min(num_samples, counts["held_out"])
  return counts


def kid_subset(requested: int, counts: dict) -> int:
  """KID's subset size: --kid_subset_size, or half the table's smallest set when that is smaller (100
  subsets of m drawn from m images would all be the same set)."""
  return max(2, min(requested, min(counts.values()) // 2))


class RealSet:
  """A real split's first `count` stream images, their labels and (logits, features) (None without a network)."""

  def __init__(self, dataset, count: int, feature_fn, reference):
    self.dataset, self.feature_fn = dataset, feature_fn
    batch = dataset.get_batch(0, count)
    self.images, self.labels = batch["x"], batch.get("label")
    self.feats = reference(dataset, count)

  def with_class_counts(self, draw: int, class_counts):
    """(images, feats) of class_counts[c] held images of each class c: block `draw` of each class's rows in
    stream order (disjoint across draws while a class has enough rows; wrapping around after)."""
    rows = np.concatenate([np.take(np.flatnonzero(self.labels == c), np.arange(draw * k, (draw + 1) * k), mode="wrap")
                           for c, k in enumerate(class_counts) if k])
    return self.images[rows], self.feats and tuple(f[rows] for f in self.feats)

  def subset(self, draw: int, n: int):
    """(images, feats) of stream rows [draw*n, (draw+1)*n): a slice when this set holds them, else read."""
    if (draw + 1) * n <= len(self.images):
      rows = slice(draw * n, (draw + 1) * n)
      return self.images[rows], self.feats and tuple(f[rows] for f in self.feats)
    x = self.dataset.get_batch(draw, n)["x"]
    return x, _features(x, self.feature_fn)


def image_columns(fakes, train: RealSet, held: Optional[RealSet], counts, seed, fake_classes=None, **common) -> list:
  """The table's columns. fakes: per draw (images, feats). Generated sets and the real baselines are
  compared with the same reference at the same count (counts['equal']). fake_classes: the class counts of
  the first counts['equal'] fakes of a conditional G (None: G draws its own classes); the training
  baseline against the held-out split then has the same class counts, not a stretch of the stream's."""
  def inputs(sets, ref: RealSet):
    return [MetricInputs(x, fake=f, real=ref.feats, seed=seed + d, **common) for d, (x, f) in enumerate(sets)]

  n_gen, n_train = counts["generated"], counts["train"]
  columns = [Column(f"generated {n_gen:,} vs train {n_train:,}", inputs(fakes, train))]
  if held is None:
    return columns
  n, n_held = counts["equal"], counts["held_out"]
  matched = "" if fake_classes is None else ", G's class counts"
  cut = [(x[:n], f and tuple(a[:n] for a in f)) for x, f in fakes]
  held_draws = len(fakes) if n < n_held else 1  # the whole held-out split: one set, no spread
  if n < n_gen:
    columns.append(Column(f"generated {n:,} vs train {n_train:,}", inputs(cut, train)))
  return columns + [
      Column(f"held-out {n:,} vs train {n_train:,} (real baseline)",
             inputs([held.subset(d, n) for d in range(held_draws)], train)),
      Column(f"generated {n:,} vs held-out {n_held:,}", inputs(cut, held)),
      Column(f"train {n:,} vs held-out {n_held:,} (real baseline{matched})",
             inputs([train.subset(d, n) if fake_classes is None else train.with_class_counts(d, fake_classes)
                     for d in range(len(fakes))], held))]


def _cell(values):
  """[mean, std over the draws (None for one)] of a cell's values, or None when it has none."""
  values = [float(v) for v in values if v is not None]
  if not values:
    return None
  if len(set(values)) == 1:  # equal draws (or one): the value itself, not its round-off
    return [values[0], 0.0 if len(values) > 1 else None]
  return [float(np.mean(values)), float(np.std(values, ddof=1))]


def metric_rows(names, cfg, columns) -> dict:
  """{key: [cell per column]} of the metrics `names` (a cell: [mean, std over the draws] or None).

  A metric that compares nothing (copy, parzen) fills the first column only; one that reads the
  networks, not the samples (d_probe), is computed on the first draw only; a column whose sets are
  fewer than the metric needs stays empty.
  """
  rows = {}
  for name in names:
    spec = metrics_lib.METRICS.get(name)
    cells = {}
    for i, column in enumerate(columns if spec.compares else columns[:1]):
      draws = column.inputs[:1] if STATE in spec.needs else column.inputs
      records = [metrics_lib.compute([name], inputs) for inputs in draws if inputs.count >= spec.fewest_samples(cfg)]
      for key in (records[0] if records else {}):
        if not isinstance(records[0][key], list):  # counts per class or mode are records, not table cells
          cells.setdefault(key, [None] * len(columns))[i] = _cell([r[key] for r in records])
    rows.update(cells)
  return rows


def _features(x, feature_fn):
  return feature_fn and tuple(np.asarray(a) for a in feature_fn(x))


def _image_table(cfg, nets, state, dataset, fakes, seed, out_dir, extra=()):
  """Image metrics of each draw of samples against train and held-out images at stated counts, beside the
  real baselines at the same counts; neighbours.png. The feature network is loaded only for metrics that read it."""
  network = cfg.feature_network(dataset.data_shape[-1])
  held_ds = _held_out(cfg)
  counts = table_counts(len(fakes[0]), dataset.num_examples, held_ds and held_ds.num_examples)
  cfg = dataclasses.replace(cfg, kid_subset_size=kid_subset(cfg.kid_subset_size, counts))
  names = evaluation_metrics("image", network, held_ds is not None, dataset.num_classes > 0, min(counts.values()),
                             cfg, extra)
  feature_fn, reference = None, lambda ds, n: None  # noqa: E731
  if any(FEATURES in metrics_lib.METRICS.get(n).needs for n in names):
    feature_fn, identity = features.feature_network(network, cfg.inception_weights)
    reference = lambda ds, n: features.reference_features(ds, n, feature_fn, identity)  # noqa: E731
  train = RealSet(dataset, counts["train"], feature_fn, reference)
  held = held_ds and RealSet(held_ds, counts["held_out"], feature_fn, reference)
  fakes = [(x, _features(x, feature_fn)) for x in fakes]
  whole = {key: s.images for key, s in (("train_images", train), ("held_out_images", held))  # MetricInputs'
           if s is not None and len(s.images) == s.dataset.num_examples}  # train_images() / held_out_images()
  fake_classes = None
  if held is not None and nets.num_classes:  # a conditional G draws its classes in turn
    fake_classes = np.bincount(generate.cycled_labels(counts["equal"], nets.num_classes), minlength=nets.num_classes)
  columns = image_columns(fakes, train, held, counts, seed, fake_classes, dataset=dataset, held_out=held_ds, nets=nets,
                          state=state, kid_subset_size=cfg.kid_subset_size, real_cache=whole)
  neighbours_png(fakes[0], train, os.path.join(out_dir, "neighbours.png"))
  return {"counts": {**counts, "kid_subset": cfg.kid_subset_size}, "columns": [c.label for c in columns],
          "rows": metric_rows(names, cfg, columns)}


def neighbours_png(fake, train: RealSet, path: str, count: int = NEIGHBOURS):
  """Goodfellow et al. 2014, Figure 2: each sample beside its nearest training image in pixel space and in
  the feature network's space (when there is one); two such groups to a row, a blank tile between them."""
  x, feats = fake[0][:count], fake[1]
  groups = [x, train.images[copying.nearest(x, train.images)[1]]]
  if feats is not None:
    groups.append(train.images[copying.nearest(feats[1][:count], train.feats[1])[1]])
  blank = np.ones_like(x[0])
  tiles = []
  for i in range(0, len(x) - 1, 2):
    tiles += [g[i] for g in groups] + [blank] + [g[i + 1] for g in groups]
  pictures.save_png(pictures.image_grid(np.stack(tiles), cols=2 * len(groups) + 1), path)


def evaluate_run(workdir, step=None, best=False, num_samples=2500, seed=0, with_parzen=False, out_dir=None,
                 eval_features="auto", inception_weights="", kid_subset_size=1000, draws=DRAWS):
  """Evaluates a run on `draws` sets of latents (seeds seed, seed + 1, ...); writes pictures under out_dir;
  returns {'step', 'draws', 'counts', 'columns': [label], 'rows': {key: [[mean, std] or None per column]}}."""
  cfg, nets, state, step, _ = restore.load_for_sampling(workdir, step, best)
  cfg = validation.validate(dataclasses.replace(
      cfg, eval_metrics="", eval_features=eval_features, inception_weights=inception_weights,
      kid_subset_size=kid_subset_size), workdir=False)  # the tool's flags, checked as run.py checks them
  memory.refuse_if_too_large("num_samples", num_samples,
                             draws * memory.sample_bytes(num_samples, nets.latent_dim, nets.data_shape),
                             f"{draws} draws of {num_samples:,} samples and their features")
  out_dir = out_dir or os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  dataset = data_lib.make_dataset(cfg)
  task = tasks.make_task(cfg, dataset)
  fakes = [task.to_data_units(generate_samples(nets, state, num_samples, seed + d)) for d in range(draws)]
  head = {"step": step, "draws": draws, "seeds": [seed + d for d in range(draws)]}
  if task.kind == "toy":
    names = evaluation_metrics("toy", None, False, True, num_samples, cfg)
    column = Column(f"generated {num_samples:,}", [
        MetricInputs(x, mixture=task.mixture, dataset=task.dataset, nets=nets, state=state, seed=seed + d)
        for d, x in enumerate(fakes)])
    return {**head, "counts": {"generated": num_samples}, "columns": [column.label],
            "rows": metric_rows(names, cfg, [column])}
  table = _image_table(cfg, nets, state, dataset, fakes, seed, out_dir, ("parzen",) if with_parzen else ())
  _latent_pictures(nets, state, seed, out_dir, with_class_means=cfg.feature_network(dataset.data_shape[-1]) == "digits")
  return {**head, **table}


def interpolation_grid(nets, state, rows: int = 8, steps: int = 10, seed: int = 0):
  """Images along straight lines between random latent pairs: [rows*steps, ...] (DCGAN paper, fig. 4).

  A conditional G keeps one class along each line (row r: class r % C), so the walk shows z alone.
  """
  key_a, key_b = jax.random.split(jax.random.PRNGKey(seed))
  za = draw_latents(nets.latent_distribution, key_a, (rows, 1, nets.latent_dim))
  zb = draw_latents(nets.latent_distribution, key_b, (rows, 1, nets.latent_dim))
  t = jnp.linspace(0, 1, steps)[None, :, None]
  z = (za * (1 - t) + zb * t).reshape(rows * steps, nets.latent_dim)
  labels = np.repeat(np.arange(rows) % nets.num_classes, steps) if nets.num_classes else None
  return Generator(nets, chunk=1000)(state, z, labels)


def class_grid(nets, state, rows: int = 8, seed: int = 0):
  """A conditional G's classes under one z: row i is G(z_i, c) for c = 0 .. C-1: [rows*C, ...].

  The label sets the class; what stays along a row (slant, stroke, width) is what z holds.
  """
  classes = nets.num_classes
  z = np.repeat(np.asarray(latents(seed, rows, nets)), classes, axis=0)
  return Generator(nets, chunk=1000)(state, z, np.tile(np.arange(classes), rows))


def class_mean_latents(nets, state, num_samples: int = 2000, seed: int = 0):
  """Mean z of the samples the digit CNN assigns to each class: [10, latent] (latent arithmetic)."""
  z = latents(seed, num_samples, nets)
  probs, _ = digits.classify(Generator(nets, chunk=1000)(state, z))
  labels = probs.argmax(1)
  return np.stack([np.asarray(z)[labels == c].mean(0) if np.any(labels == c) else np.zeros(nets.latent_dim)
                   for c in range(probs.shape[1])])


def _latent_pictures(nets, state, seed, out_dir, with_class_means: bool):
  """interpolations.png (DCGAN paper, fig. 4); for a conditional G classes.png (`class_grid`), else
  for digits class_means.png (latent arithmetic)."""
  pictures.save_png(pictures.image_grid(interpolation_grid(nets, state, seed=seed), cols=10),
                    os.path.join(out_dir, "interpolations.png"))
  if nets.num_classes:
    pictures.save_png(pictures.image_grid(class_grid(nets, state, seed=seed), cols=nets.num_classes),
                      os.path.join(out_dir, "classes.png"))
  elif with_class_means:
    means = class_mean_latents(nets, state, seed=seed)
    # Row c: G(mean z of class c); then arithmetic: mean_c - mean_0 + mean_1 for each c.
    arithmetic = np.concatenate([means, means - means[0] + means[1]])
    pictures.save_png(pictures.image_grid(Generator(nets, chunk=1000)(state, arithmetic), cols=10),
                      os.path.join(out_dir, "class_means.png"))


def format_table(result) -> str:
  """evaluate.py's table: a line naming the draws and KID's subsets, then one row per metric key, each
  cell the mean over the draws +- their standard deviation."""
  seeds = ", ".join(str(v) for v in result["seeds"])
  kid = result["counts"].get("kid_subset")
  lines = [f"Step {result['step']}: {result['draws']} draw(s) of latents (seeds {seeds}); each cell the mean +- std "
           "over the draws" + (f"; KID over 100 subsets of {kid}" if kid else "") + ".",
           "| metric | " + " | ".join(result["columns"]) + " |", "|---" * (len(result["columns"]) + 1) + "|"]
  for name, cells in result["rows"].items():
    lines.append(f"| {name} | " + " | ".join(_format_cell(c) for c in cells) + " |")
  return "\n".join(lines)


def _format_cell(cell) -> str:
  if cell is None:
    return ""
  mean, std = cell
  return f"{mean:.4g}" if std is None else f"{mean:.4g} +- {std:.2g}"
