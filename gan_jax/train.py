"""The training loop: wires data, state, steps, evaluation, writers and checkpoints.

flags -> Config -> (dataset, state) -> jitted train_fn -> metrics / samples / checkpoints.
"""
import contextlib
import json
import os
import signal
import time

import jax
import numpy as np
from absl import logging

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax import metrics as metrics_lib
from gan_jax import sampling, sharding, writers
from gan_jax.metrics import modes
from gan_jax.nets import build_nets
from gan_jax.state import count_params, create_state, make_optimizers
from gan_jax.steps import DATA_AXIS, GUARDED, cycled_labels, make_generate_fn, make_train_fn


class NonFiniteError(RuntimeError):
  """A loss or gradient became NaN or infinite."""


class Evaluator:
  """Draws G(z) for a fixed set of latents and writes metrics and pictures."""

  def __init__(self, cfg, nets, dataset, workdir, writer):
    self.cfg, self.dataset, self.workdir, self.writer = cfg, dataset, workdir, writer
    self.generate = make_generate_fn(nets)
    self.num_classes = nets.num_classes
    names = cfg.eval_metric_names
    n = cfg.eval_samples if (cfg.is_toy or names) else 64
    # Fixed latents, independent of the training keys: the same picture grid every eval.
    self.z = np.asarray(jax.random.normal(
        jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 2**31 - 1), (n, nets.latent_dim)))
    self.image_metrics = None
    if names:
      from gan_jax.metrics import digits
      reals = dataset.get_batch(0, min(cfg.eval_samples, dataset.num_examples))["x"]
      self.image_metrics = metrics_lib.ImageMetrics(reals, names, digits.classify)

  def samples(self, state, chunk: int = 500):
    """G_ema(z) for the fixed latents, in data units (toy data scale undone)."""
    labels = cycled_labels(len(self.z), self.num_classes) if self.num_classes else None
    x = np.concatenate([sharding.to_host(self.generate(
        state.ema_g_params, state.g_collections, self.z[i:i + chunk],
        None if labels is None else labels[i:i + chunk])) for i in range(0, len(self.z), chunk)])
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
        sampling.scatter_png(x, mix.means, path, real=self.dataset.reference_sample(len(x)),
                             title=f"step {step}: {toy['modes']}/{len(mix.means)} modes, "
                                   f"{100 * toy['high_quality']:.1f}% high quality")
    else:
      if self.image_metrics is not None:
        record.update(self.image_metrics(x))
      grid = sampling.image_grid(x[:64], cols=8)
    if not self.cfg.is_toy and self.writer.enabled:
      sampling.save_png(grid, path)
      self.writer.write_image(step, "samples", grid)
    self.writer.write(step, record)
    return record


def best_score(cfg, record: dict):
  """Larger is better; None when no metric ranks checkpoints. Toy: (modes, -reverse KL); images: -FID."""
  if cfg.is_toy and "modes" in record:
    return (record["modes"], -record["reverse_kl"])
  for name in ("fid", "kid"):
    if name in record:
      return (-record[name],)
  return None


def check_resumable(cfg, saved: dict):
  """Raises ConfigError naming every shape-defining flag that differs from the checkpoint's."""
  current = config_lib.to_dict(cfg)
  differing = [f for f in config_lib.SHAPE_FIELDS if f in saved and saved[f] != current[f]]
  if differing:
    detail = ", ".join(f"--{f}={_flag_str(current[f])} (checkpoint: {_flag_str(saved[f])})"
                       for f in differing)
    raise config_lib.ConfigError(
        differing[0], _flag_str(current[differing[0]]),
        f"the checkpoint in {cfg.workdir}/checkpoints was trained with other settings: {detail}. "
        "Use the checkpoint's flags (its config.json) or a new --workdir")


def _flag_str(value):
  return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


@contextlib.contextmanager
def preemption_signals():
  """SIGTERM / SIGINT set a flag the loop reads at the next step boundary."""
  caught = []
  handler = lambda signum, frame: caught.append(signal.Signals(signum).name)  # noqa: E731
  previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield caught
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


def _nonfinite(metrics):
  return [k for k in GUARDED if k in metrics and not np.isfinite(metrics[k])]


def _truncate_records(workdir: str, step: int):
  """Drops metrics.jsonl records written after `step` by a run that died before checkpointing them."""
  path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(path):
    with open(path) as f:
      lines = [l for l in f if l.strip() and json.loads(l)["step"] <= step]
    with open(path, "w") as f:
      f.writelines(lines)


def train_and_evaluate(cfg: config_lib.Config) -> dict:
  """Trains to `cfg.train_steps`, resuming from WORKDIR/checkpoints; returns the final evaluation."""
  config_lib.validate(cfg)
  dataset = data_lib.make_dataset(cfg)  # Fails on bad data before anything is written.
  _, saved_meta = ckpt_lib.read_meta(os.path.join(cfg.workdir, "checkpoints"))
  if saved_meta:
    check_resumable(cfg, saved_meta["config"])  # Before anything is written or touched.
  if cfg.eval_metric_names and dataset.data_shape[-1] != 1:
    raise config_lib.ConfigError(
        "eval_metrics", cfg.eval_metrics, f"the shipped feature network is a digit classifier for 1-channel "
        f"images, and {cfg.dataset} has {dataset.data_shape[-1]} channels; pass --eval_metrics= (none) or "
        "call gan_jax.metrics.ImageMetrics with your own feature function")
  mesh = sharding.make_mesh(cfg.num_devices)
  sharding.check_batch_divides(cfg.batch_size, mesh)
  nets = build_nets(cfg, dataset.data_shape, DATA_AXIS, dataset.num_classes)
  g_tx, d_tx = make_optimizers(cfg)
  init = lambda: create_state(cfg, nets, g_tx, d_tx)  # noqa: E731
  is_chief = jax.process_index() == 0
  workdir = cfg.workdir
  checkpointer = ckpt_lib.Checkpointer(workdir, cfg.keep_checkpoints)
  abstract = sharding.replicated_abstract(jax.eval_shape(init), mesh)
  restored = checkpointer.restore_latest(abstract) if saved_meta else None
  if restored:
    state, meta, _ = restored
    logging.info("resuming from %s/checkpoints/%d", workdir, int(sharding.to_host(state.step)))
    best = meta.get("best_score")
  else:
    state, best = sharding.replicate(init(), mesh), None
  start = int(sharding.to_host(state.step))
  if is_chief:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(config_lib.to_dict(cfg), f, indent=1)
    if restored:
      _truncate_records(workdir, start)
  logging.info("G: %d params, D: %d params, %d devices, global batch %d",
               count_params(state.g_params), count_params(state.d_params), mesh.size, cfg.batch_size)

  writer = writers.MetricWriter(workdir, enabled=is_chief)
  evaluator = Evaluator(cfg, nets, dataset, workdir, writer)
  if is_chief and not cfg.is_toy and start == 0:
    reals = dataset.get_batch(0, 64)["x"]
    sampling.save_png(sampling.image_grid(reals, cols=8), os.path.join(workdir, "reals.png"))

  def meta(step, extra=None):
    return {"config": config_lib.to_dict(cfg), "step": step, "data_shape": list(dataset.data_shape),
            "num_classes": dataset.num_classes, "data_batches_consumed": step * cfg.d_steps,
            "best_score": best, **(extra or {})}

  rows = sharding.process_rows(cfg.batch_size)
  prefetch = data_lib.Prefetcher(lambda first, n: data_lib.stacked_batches(
      dataset, first, n, cfg.d_steps, cfg.batch_size, rows))
  train_fns = {}
  step, record = start, {}
  t_last, step_last = time.time(), step
  try:
    with preemption_signals() as caught:
      while step < cfg.train_steps:
        n = min(cfg.steps_per_call, cfg.train_steps - step)
        if n not in train_fns:
          train_fns[n] = make_train_fn(cfg, nets, g_tx, d_tx, mesh, n)
        nxt = min(cfg.steps_per_call, cfg.train_steps - step - n)
        batches = sharding.shard_batches(prefetch.get(step, n, nxt), mesh)
        new_state, metrics = train_fns[n](state, batches)
        metrics = sharding.to_host(metrics)
        reported_step = step + int(metrics.pop("step_in_call"))
        bad = _nonfinite(metrics)
        if bad and cfg.nan_policy == "stop":
          latest = checkpointer.latest_step()
          kept = (f"the newest checkpoint (step {latest}) holds the last finite state" if latest is not None
                  else "no checkpoint had been written yet")
          raise NonFiniteError(
              f"non-finite {', '.join(bad)} at step {reported_step}; training stopped and nothing was saved "
              f"from this step; {kept}. Lower --lr_g/--lr_d or change --loss, then rerun (it resumes).")
        state, step = new_state, step + n
        if is_chief and (step % cfg.log_every < n or step == cfg.train_steps):
          now = time.time()
          writers.log_progress(step, cfg.train_steps, metrics, (step - step_last) / (now - t_last))
          t_last, step_last = now, step
        if step % cfg.eval_every == 0 or step == cfg.train_steps:
          record = evaluator(state, step, metrics)
          score = best_score(cfg, record)
          if score is not None and (best is None or tuple(score) > tuple(best)):
            best = list(score)
            checkpointer.save(step, state, meta(step, {"record": record}), best=True)
        if step % cfg.checkpoint_every == 0 or step == cfg.train_steps:
          checkpointer.save(step, state, meta(step))
        if sharding.any_process(bool(caught)):
          checkpointer.save(step, state, meta(step))
          checkpointer.wait()
          signame = caught[0] if caught else "a signal on another process"
          print(f"{signame}: saved checkpoint at step {step} to {checkpointer.directory}/{step}; "
                "rerun the same command to resume", flush=True)
          return record
  finally:
    prefetch.close()
    checkpointer.close()
    writer.close()
  return _write_final(cfg, evaluator, state, record)


def _write_final(cfg, evaluator, state, record):
  """WORKDIR/eval/final_samples.npy and final_metrics.json (toy metrics or the last record)."""
  samples = evaluator.samples(state)  # A collective: every process takes part.
  if jax.process_index() != 0:
    return record
  out = os.path.join(cfg.workdir, "eval")
  os.makedirs(out, exist_ok=True)
  np.save(os.path.join(out, "final_samples.npy"), samples)
  keys = ("modes", "high_quality", "reverse_kl", "mode_counts") if cfg.is_toy else tuple(record)
  final = {k: record[k] for k in keys if k in record}
  with open(os.path.join(out, "final_metrics.json"), "w") as f:
    json.dump(final, f, indent=1)
  return final
