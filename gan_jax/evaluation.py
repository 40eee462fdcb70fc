"""Evaluate a saved run: the metrics GAN papers report, and the DCGAN paper's pictures.

Used by experiments/evaluate.py. Everything here reads a workdir's checkpoint; nothing trains G.
The table holds every registered metric (gan_jax.metrics.METRICS) that applies to the run: its data
kind, its feature network, what it needs (a held-out split, labels) and its fewest samples. A
metric that compares samples with real images fills three columns: generated vs train, generated vs
held-out, and the real baseline, held-out vs train (what unseen real images score).
"""
import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib
from gan_jax import metrics as metrics_lib
from gan_jax import generate, memory, pictures, restore, tasks, validation
from gan_jax.errors import DataError
from gan_jax.generate import Generator, generate_samples, latents
from gan_jax.metrics import FEATURES, HELD_OUT, LABELS, REAL, digits, features
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
  held = data_lib.held_out_dataset(cfg.dataset)
  if held is None:
    return None
  try:
    return data_lib.make_dataset(dataclasses.replace(cfg, dataset=held))
  except DataError as e:
    print(f"no held-out column: {e}")
    return None


def metric_rows(names, cfg, vs_train: MetricInputs, vs_held=None, baseline=None) -> dict:
  """{key: (generated vs train, generated vs held-out, held-out vs train)} of the metrics `names`; a
  column whose samples are fewer than the metric needs stays empty."""
  rows = {}
  for name in names:
    spec = metrics_lib.METRICS.get(name)
    compute = lambda inputs: (metrics_lib.compute([name], inputs)  # noqa: E731
                              if inputs.count >= spec.fewest_samples(cfg) else {})
    columns = [compute(vs_train)]
    if spec.compares and vs_held is not None:  # a metric that reads no real split is the same against both
      columns += [compute(vs_held) if REAL in spec.needs else columns[0], compute(baseline)]
    for key, value in columns[0].items():
      if not isinstance(value, list):  # counts per class or mode are records, not table cells
        rows[key] = tuple(c.get(key) for c in columns) + (None,) * (3 - len(columns))
  return rows


def _toy_rows(cfg, nets, state, task, fake):
  names = evaluation_metrics("toy", None, False, True, len(fake), cfg)
  inputs = MetricInputs(fake, mixture=task.mixture, dataset=task.dataset, nets=nets, state=state, seed=cfg.seed)
  return metric_rows(names, cfg, inputs)


def _image_rows(cfg, nets, state, dataset, fake, seed, extra=()):
  """Image metrics against train and held-out images, the real baseline, D's probe, and the rest. The
  feature network is loaded, and real features computed, only for metrics that read them."""
  network = cfg.feature_network(dataset.data_shape[-1])
  held = _held_out(cfg)
  names = evaluation_metrics("image", network, held is not None, dataset.num_classes > 0, len(fake), cfg, extra)
  if held is not None and held.num_examples < cfg.kid_subset_size and "kid" in names:
    names.remove("kid")  # the held-out columns would need as many held-out images
  feature_fn, reference = None, lambda ds, n: None  # noqa: E731
  if any(FEATURES in metrics_lib.METRICS.get(n).needs for n in names):
    feature_fn, identity = features.feature_network(network, cfg.inception_weights)
    reference = functools.lru_cache(lambda ds, n: features.reference_features(ds, n, feature_fn, identity))
  common = dict(dataset=dataset, held_out=held, nets=nets, state=state, kid_subset_size=cfg.kid_subset_size, seed=seed)
  train_ref = lambda: reference(dataset, min(len(fake), dataset.num_examples))  # noqa: E731
  vs_train = MetricInputs(fake, feature_fn=feature_fn, real=train_ref, **common)
  if held is None:
    return metric_rows(names, cfg, vs_train)
  held_ref = lambda: reference(held, held.num_examples)  # noqa: E731
  vs_held = MetricInputs(fake, feature_fn=feature_fn, fake=lambda: vs_train.fake, real=held_ref, **common)
  held_x = held.get_batch(0, held.num_examples)["x"]
  baseline = MetricInputs(held_x, feature_fn=feature_fn, fake=held_ref if feature_fn else None, real=train_ref,
                          **common)
  return metric_rows(names, cfg, vs_train, vs_held, baseline)


def evaluate_run(workdir, step=None, best=False, num_samples=2500, seed=0, with_parzen=False, out_dir=None,
                 eval_features="auto", inception_weights="", kid_subset_size=1000):
  """Evaluates a run; writes pictures under out_dir; returns {'step', 'rows': {name: (value, vs held-out, baseline)}}."""
  cfg, nets, state, step, _ = restore.load_run(workdir, step, best)
  state = generate.sampling_state(nets, state, cfg.ema_statistics, cfg.batch_size, cfg.seed)
  cfg = validation.validate(dataclasses.replace(
      cfg, eval_metrics="", eval_features=eval_features, inception_weights=inception_weights,
      kid_subset_size=kid_subset_size), workdir=False)  # the tool's flags, checked as run.py checks them
  memory.refuse_if_too_large("num_samples", num_samples, memory.sample_bytes(num_samples, nets.latent_dim, nets.data_shape),
                             f"{num_samples:,} samples and their features")
  out_dir = out_dir or os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  dataset = data_lib.make_dataset(cfg)
  task = tasks.make_task(cfg, dataset)
  fake = task.to_data_units(generate_samples(nets, state, num_samples, seed))
  if task.kind == "toy":
    return {"step": step, "rows": _toy_rows(cfg, nets, state, task, fake)}
  rows = _image_rows(cfg, nets, state, dataset, fake, seed, ("parzen",) if with_parzen else ())
  _latent_pictures(nets, state, seed, out_dir, with_class_means=cfg.feature_network(dataset.data_shape[-1]) == "digits")
  return {"step": step, "rows": rows}


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
  lines = [f"| metric (step {result['step']}) | generated vs train | generated vs held-out | "
           "held-out vs train (real baseline) |", "|---|---|---|---|"]
  fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
  for name, values in result["rows"].items():
    lines.append(f"| {name} | " + " | ".join(fmt(v) for v in values) + " |")
  return "\n".join(lines)
