"""The training loop: wires data, state, steps, evaluation and writers together.

flags -> Config -> (dataset, state) -> jitted train_fn -> metrics / samples.
"""
import json
import os
import time

import jax
import numpy as np
from absl import logging

from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax import sampling, sharding, writers
from gan_jax.metrics import modes
from gan_jax.nets import build_nets
from gan_jax.state import count_params, create_state, make_optimizers
from gan_jax.steps import DATA_AXIS, make_generate_fn, make_train_fn


class Evaluator:
  """Draws G(z) for a fixed set of latents and writes metrics and pictures."""

  def __init__(self, cfg, nets, dataset, workdir, writer):
    self.cfg, self.dataset, self.workdir, self.writer = cfg, dataset, workdir, writer
    self.generate = make_generate_fn(nets)
    n = cfg.eval_samples if cfg.is_toy else 64
    # Fixed latents, independent of the training keys: the same picture grid every eval.
    self.z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 2**31 - 1),
                               (n, nets.latent_dim))

  def samples(self, state):
    """G_ema(z) for the fixed latents, in data units (toy data scale undone)."""
    x = np.asarray(self.generate(state.ema_g_params, state.g_collections, self.z))
    return x / self.cfg.data_scale if self.cfg.is_toy else x

  def __call__(self, state, step: int, train_metrics: dict) -> dict:
    x = self.samples(state)
    record = {k: float(v) for k, v in train_metrics.items()}
    path = os.path.join(self.workdir, "samples", f"step_{step:07d}.png")
    if self.cfg.is_toy:
      mix = self.dataset.mixture
      toy = modes.mode_metrics(x, mix.means, mix.sigma)
      record.update(toy)
      if self.writer.enabled:
        real = self.dataset.reference_sample(len(x))
        sampling.scatter_png(x, mix.means, path, real=real,
                             title=f"step {step}: {toy['modes']}/{len(mix.means)} modes, "
                                   f"{100 * toy['high_quality']:.1f}% high quality")
    elif self.writer.enabled:
      grid = sampling.image_grid(x, cols=8)
      sampling.save_png(grid, path)
      self.writer.write_image(step, "samples", grid)
    self.writer.write(step, record)
    return record


def train_and_evaluate(cfg: config_lib.Config) -> dict:
  """Trains to `cfg.train_steps`; returns the final evaluation record."""
  config_lib.validate(cfg)
  dataset = data_lib.make_dataset(cfg)  # Fails on bad data before anything is written.
  mesh = sharding.make_mesh(cfg.num_devices)
  sharding.check_batch_divides(cfg.batch_size, mesh)
  nets = build_nets(cfg, dataset.data_shape, DATA_AXIS)
  g_tx, d_tx = make_optimizers(cfg)
  state = sharding.replicate(create_state(cfg, nets, g_tx, d_tx), mesh)
  is_chief = jax.process_index() == 0
  workdir = cfg.workdir
  if is_chief:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(config_lib.to_dict(cfg), f, indent=1)
  logging.info("G: %d params, D: %d params, %d devices, global batch %d",
               count_params(state.g_params), count_params(state.d_params), mesh.size, cfg.batch_size)

  writer = writers.MetricWriter(workdir, enabled=is_chief)
  evaluator = Evaluator(cfg, nets, dataset, workdir, writer)
  if is_chief and not cfg.is_toy:
    reals = dataset.get_batch(0, 64)["x"]
    sampling.save_png(sampling.image_grid(reals, cols=8), os.path.join(workdir, "reals.png"))

  rows = sharding.process_rows(cfg.batch_size)
  prefetch = data_lib.Prefetcher(lambda first, n: data_lib.stacked_batches(
      dataset, first, n, cfg.d_steps, cfg.batch_size, rows))
  train_fns = {}
  step = int(state.step)
  record, metrics = {}, {}
  t_last, step_last = time.time(), step
  try:
    while step < cfg.train_steps:
      n = min(cfg.steps_per_call, cfg.train_steps - step)
      if n not in train_fns:
        train_fns[n] = make_train_fn(cfg, nets, g_tx, d_tx, mesh, n)
      nxt = min(cfg.steps_per_call, cfg.train_steps - step - n)
      batches = sharding.shard_batches(prefetch.get(step, n, nxt), mesh)
      state, metrics = train_fns[n](state, batches)
      step += n
      if step % cfg.log_every < n or step == cfg.train_steps:
        metrics = jax.device_get(metrics)
        now = time.time()
        writers.log_progress(step, cfg.train_steps, metrics, (step - step_last) / (now - t_last))
        t_last, step_last = now, step
      if step % cfg.eval_every == 0 or step == cfg.train_steps:
        record = evaluator(state, step, jax.device_get(metrics))
  finally:
    prefetch.close()
  final = _write_final(cfg, evaluator, state, record)
  writer.close()
  return final


def _write_final(cfg, evaluator, state, record):
  """WORKDIR/eval/final_samples.npy and final_metrics.json (toy metrics or the last record)."""
  if jax.process_index() != 0:
    return record
  out = os.path.join(cfg.workdir, "eval")
  os.makedirs(out, exist_ok=True)
  np.save(os.path.join(out, "final_samples.npy"), evaluator.samples(state))
  keys = ("modes", "high_quality", "reverse_kl", "mode_counts") if cfg.is_toy else tuple(record)
  final = {k: record[k] for k in keys if k in record}
  with open(os.path.join(out, "final_metrics.json"), "w") as f:
    json.dump(final, f, indent=1)
  return final
