"""Evaluate a saved run: the metrics GAN papers report, and the DCGAN paper's checks.

Used by experiments/evaluate.py. Everything here reads a workdir's checkpoint; nothing trains G.
"""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import metrics as metrics_lib
from gan_jax import pictures, restore, tasks
from gan_jax.data import make_dataset
from gan_jax.generate import Generator, generate_samples, latents
from gan_jax.metrics import digits, features, parzen


def image_table(fake, train, held_out=None, names=("fid", "kid", "is", "pr", "dc", "classes"),
                feature_fn=None, kid_subset_size: int = 1000, seed: int = 0):
  """{metric: (generated vs train, generated vs held-out, held-out vs train)}.

  train, held_out: (logits, features) of real images (`metrics.features.reference_features`). The last
  column is the real-data baseline: what real unseen images score against the training set. Without
  held-out data the last two are None.
  """
  feature_fn = feature_fn or digits.logits_and_features
  kw = dict(kid_subset_size=kid_subset_size, seed=seed)
  versus_train = metrics_lib.ImageMetrics(None, names, feature_fn, real=train, **kw)
  fake_features = feature_fn(fake)
  fake_row, held_row, base_row = versus_train.compare(*fake_features), {}, {}
  if held_out is not None:
    held_row = metrics_lib.ImageMetrics(None, names, feature_fn, real=held_out, **kw).compare(*fake_features)
    base_row = versus_train.compare(*held_out)
  return {k: (v, held_row.get(k), base_row.get(k)) for k, v in fake_row.items() if not isinstance(v, list)}


def parzen_table(fake, held_out_x):
  """Parzen log-likelihood in [0, 1] pixel space: sigma on the first half of held_out, LL on the rest."""
  to01 = lambda a: (np.asarray(a, np.float64).reshape(len(a), -1) + 1) / 2  # noqa: E731
  half = len(held_out_x) // 2
  mean, se, sigma = parzen.parzen_estimate(to01(fake), to01(held_out_x[:half]), to01(held_out_x[half:]),
                                           sigmas=np.logspace(-1, 0, 10))
  return {"parzen_ll": mean, "parzen_se": se, "parzen_sigma": sigma}


def discriminator_features(nets, state, images, batch: int = 500):
  """D's last feature map, flattened: [N, F] (the DCGAN paper reuses D's features for classification).

  A conditional D is told class 0 for every image, so no label reaches the features: those of a
  projection or AC-GAN D do not depend on it; a concat D's are its features as if every image were a 0.
  """
  variables = {"params": state.d_params, **state.d_collections}

  def features(x):
    labels = jnp.zeros((x.shape[0],), jnp.int32) if nets.num_classes else None
    return nets.discriminator.apply(variables, x, labels, train=False, features=True)[1]

  fn = jax.jit(features)
  return np.concatenate([np.asarray(fn(jnp.asarray(images[i:i + batch]))).reshape(
      len(images[i:i + batch]), -1) for i in range(0, len(images), batch)])


def linear_probe(train_f, train_y, test_f, test_y, num_labels=None, seed: int = 0):
  """Held-out accuracy of a logistic regression on D's features, trained on `num_labels` labels."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler
  idx = np.arange(len(train_f))
  if num_labels is not None:
    idx = np.random.default_rng(seed).choice(len(train_f), num_labels, replace=False)
  scaler = StandardScaler().fit(train_f[idx])
  clf = LogisticRegression(max_iter=2000).fit(scaler.transform(train_f[idx]), train_y[idx])
  return float(np.mean(clf.predict(scaler.transform(test_f)) == test_y))


def interpolation_grid(nets, state, rows: int = 8, steps: int = 10, seed: int = 0):
  """Images along straight lines between random latent pairs: [rows*steps, ...] (DCGAN paper, fig. 4).

  A conditional G keeps one class along each line (row r: class r % C), so the walk shows z alone.
  """
  key_a, key_b = jax.random.split(jax.random.PRNGKey(seed))
  za = jax.random.normal(key_a, (rows, 1, nets.latent_dim))
  zb = jax.random.normal(key_b, (rows, 1, nets.latent_dim))
  t = jnp.linspace(0, 1, steps)[None, :, None]
  z = (za * (1 - t) + zb * t).reshape(rows * steps, nets.latent_dim)
  labels = np.repeat(np.arange(rows) % nets.num_classes, steps) if nets.num_classes else None
  return Generator(nets, chunk=1000)(state, z, labels)


def class_grid(nets, state, rows: int = 8, seed: int = 0):
  """A conditional G's classes under one z: row i is G(z_i, c) for c = 0 .. C-1: [rows*C, ...].

  The label sets the class; what stays along a row (slant, stroke, width) is what z holds.
  """
  classes = nets.num_classes
  z = np.repeat(np.asarray(latents(seed, rows, nets.latent_dim)), classes, axis=0)
  return Generator(nets, chunk=1000)(state, z, np.tile(np.arange(classes), rows))


def class_mean_latents(nets, state, num_samples: int = 2000, seed: int = 0):
  """Mean z of the samples the digit CNN assigns to each class: [10, latent] (latent arithmetic)."""
  z = latents(seed, num_samples, nets.latent_dim)
  probs, _ = digits.classify(Generator(nets, chunk=1000)(state, z))
  labels = probs.argmax(1)
  return np.stack([np.asarray(z)[labels == c].mean(0) if np.any(labels == c) else np.zeros(nets.latent_dim)
                   for c in range(probs.shape[1])])


def evaluate_run(workdir, step=None, best=False, num_samples=2500, seed=0, with_parzen=False, out_dir=None,
                 eval_features="auto", inception_weights="", kid_subset_size=1000):
  """Evaluates a run; writes pictures under out_dir; returns {'step', 'rows': {name: (value, baseline)}}."""
  cfg, nets, state, step, _ = restore.load_run(workdir, step, best)
  cfg = dataclasses.replace(cfg, eval_metrics="", eval_features=eval_features, inception_weights=inception_weights,
                            kid_subset_size=kid_subset_size)
  out_dir = out_dir or os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  dataset = make_dataset(cfg)
  task = tasks.make_task(cfg, dataset)
  fake = task.to_data_units(generate_samples(nets, state, num_samples, seed))
  evaluate = {"toy": _toy_rows, "image": _image_rows}[task.kind]
  return {"step": step, "rows": evaluate(cfg, nets, state, task, dataset, fake, seed, with_parzen, out_dir)}


def _toy_rows(cfg, nets, state, task, dataset, fake, seed, with_parzen, out_dir):
  del cfg, nets, state, dataset, seed, with_parzen, out_dir
  return {k: (v, None, None) for k, v in task.metrics(fake).items() if k != "mode_counts"}


def _image_rows(cfg, nets, state, task, dataset, fake, seed, with_parzen, out_dir):
  """Image metrics against train and held-out images, Parzen, D-feature probe, latent pictures."""
  del task
  network = cfg.feature_network(dataset.data_shape[-1])
  feature_fn, identity = features.feature_network(network, cfg.inception_weights)
  names = ["fid", "kid", "is", "pr", "dc"] + (["classes"] if network == "digits" else [])
  if len(fake) < cfg.kid_subset_size:
    names.remove("kid")
    print(f"kid_x1000 not computed: it needs --num_samples >= --kid_subset_size={cfg.kid_subset_size}")
  train_ref = features.reference_features(dataset, min(len(fake), dataset.num_examples), feature_fn, identity)
  held_out = held_ref = None
  if cfg.dataset.split(":")[0] == "mnist5k":
    held_ds = make_dataset(dataclasses.replace(cfg, dataset="mnist5k:test"))
    held_out = held_ds.get_batch(0, held_ds.num_examples)
    held_ref = features.reference_features(held_ds, held_ds.num_examples, feature_fn, identity)
    if held_ds.num_examples < cfg.kid_subset_size and "kid" in names:
      names.remove("kid")
  rows = image_table(fake, train_ref, held_ref, tuple(names), feature_fn, cfg.kid_subset_size, seed)
  if with_parzen and held_out is not None:
    rows.update({k: (v, None, None) for k, v in parzen_table(fake, held_out["x"]).items()})
  if cfg.model == "dcgan" and held_out is not None:
    every = dataset.get_batch(0, dataset.num_examples)  # all training labels
    tf = discriminator_features(nets, state, every["x"])
    hf = discriminator_features(nets, state, held_out["x"])
    for n in (100, None):
      acc = linear_probe(tf, every["label"], hf, held_out["label"], n)
      rows[f"d_features_linear_acc_{n or len(tf)}_labels"] = (acc, None, None)
  _latent_pictures(nets, state, seed, out_dir, with_class_means=network == "digits")
  return rows


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
