"""The training loop: wires data, state, steps, evaluation, writers and checkpoints.

flags -> Config -> (dataset, task, state) -> jitted train_fn -> metrics / samples / checkpoints.
"""
import contextlib
import json
import os
import signal

import jax
import numpy as np
from absl import logging

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax import generate, sharding, tasks, writers
from gan_jax.data.feed import feed_batch, make_feed
from gan_jax.errors import ConfigError, NonFiniteError
from gan_jax.nets import build_nets
from gan_jax.sharding import DATA_AXIS
from gan_jax.state import count_params, create_state, make_optimizers
from gan_jax.steps import GUARDED, make_train_fn, steps_per_call

__all__ = ["train_and_evaluate", "Evaluator", "NonFiniteError"]


class Evaluator:
  """Draws G_ema(z) for a fixed set of latents and writes the task's metrics and picture."""

  def __init__(self, cfg, nets, task, workdir, writer):
    self.task, self.workdir, self.writer = task, workdir, writer
    self.generator = generate.Generator(nets, chunk=500)
    # Fixed latents, independent of the training keys: the same picture grid every eval.
    self.z = np.asarray(jax.random.normal(
        jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 2**31 - 1), (task.eval_samples, nets.latent_dim)))

  def samples(self, state):
    """G_ema(z) for the fixed latents, in data units."""
    return self.task.to_data_units(self.generator(state, self.z))

  def __call__(self, state, step: int, train_metrics: dict) -> dict:
    x = self.samples(state)
    record = {k: float(v) for k, v in train_metrics.items()}
    record.update(self.task.metrics(x))
    if self.writer.enabled:
      image = self.task.draw(x, os.path.join(self.workdir, "samples", f"step_{step:07d}.png"), step, record)
      if image is not None:
        self.writer.write_image(step, "samples", image)
    self.writer.write(step, record)
    return record


def check_resumable(cfg, saved: dict):
  """Raises ConfigError naming every shape-defining flag that differs from the checkpoint's."""
  current = config_lib.to_dict(cfg)
  differing = [f for f in config_lib.SHAPE_FIELDS if f in saved and saved[f] != current[f]]
  if differing:
    detail = ", ".join(f"--{f}={_flag_str(current[f])} (checkpoint: {_flag_str(saved[f])})"
                       for f in differing)
    raise ConfigError(
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


def _check_channels(cfg, dataset):
  if cfg.eval_metric_names and dataset.data_shape[-1] != 1:
    raise ConfigError(
        "eval_metrics", cfg.eval_metrics, f"the shipped feature network is a digit classifier for 1-channel "
        f"images, and {cfg.dataset} has {dataset.data_shape[-1]} channels; pass --eval_metrics= (none) or "
        "call gan_jax.metrics.ImageMetrics with your own feature function")


class Run:
  """One run's fixed parts: config, data, task, networks, optimisers, mesh, checkpoints."""

  def __init__(self, cfg):
    config_lib.validate(cfg)
    self.cfg = cfg
    self.dataset = data_lib.make_dataset(cfg)  # Fails on bad data before anything is written.
    _, self.saved_meta = ckpt_lib.read_meta(os.path.join(cfg.workdir, "checkpoints"))
    if self.saved_meta:
      check_resumable(cfg, self.saved_meta["config"])  # Before anything is written or touched.
    _check_channels(cfg, self.dataset)
    self.mesh = sharding.make_mesh(cfg.num_devices)
    sharding.check_batch_divides(cfg.batch_size, self.mesh)
    self.nets = build_nets(cfg, self.dataset.data_shape, DATA_AXIS, self.dataset.num_classes)
    self.g_tx, self.d_tx = make_optimizers(cfg)
    self.is_chief = jax.process_index() == 0
    self.spc = steps_per_call(cfg, jax.default_backend())
    self.checkpointer = ckpt_lib.Checkpointer(cfg.workdir, cfg.keep_checkpoints)

  def init_state(self):
    return create_state(self.cfg, self.nets, self.g_tx, self.d_tx)

  def restore_or_init(self):
    """(state, best score, restored?) from the newest readable checkpoint, or a fresh state.

    A fresh state is built by one jitted function, born replicated on the mesh (one compile,
    cached across runs, instead of hundreds of eager initialiser ops).
    """
    abstract = sharding.replicated_abstract(jax.eval_shape(self.init_state), self.mesh)
    restored = self.checkpointer.restore_latest(abstract) if self.saved_meta else None
    if restored:
      state, meta, _ = restored
      logging.info("resuming from %s/checkpoints/%d", self.cfg.workdir, int(sharding.to_host(state.step)))
      return state, meta.get("best_score"), True
    init = jax.jit(self.init_state, out_shardings=sharding.replicated_sharding(self.mesh))
    return init(), None, False

  def meta(self, step, best, extra=None):
    """What a checkpoint records beside the state."""
    cfg, dataset = self.cfg, self.dataset
    return {"config": config_lib.to_dict(cfg), "step": step, "data_shape": list(dataset.data_shape),
            "num_classes": dataset.num_classes, "data_batches_consumed": step * cfg.d_steps,
            "best_score": best, **(extra or {})}


def _write_run_files(run: Run, start: int, restored: bool):
  """config.json; on resume, metrics records past the restored step dropped."""
  workdir = run.cfg.workdir
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config_lib.to_dict(run.cfg), f, indent=1)
  if restored:
    _truncate_records(workdir, start)


def train_and_evaluate(cfg: config_lib.Config) -> dict:
  """Trains to `cfg.train_steps`, resuming from WORKDIR/checkpoints; returns the final evaluation."""
  run = Run(cfg)
  state, best, restored = run.restore_or_init()
  start = int(sharding.to_host(state.step))
  if run.is_chief:
    _write_run_files(run, start, restored)
  logging.info("G: %d params, D: %d params, %d %s devices, global batch %d, %d steps per call",
               count_params(state.g_params), count_params(state.d_params), run.mesh.size, jax.default_backend(),
               cfg.batch_size, run.spc)
  writer = writers.MetricWriter(cfg.workdir, enabled=run.is_chief)
  task = tasks.make_task(cfg, run.dataset)
  evaluator = Evaluator(cfg, run.nets, task, cfg.workdir, writer)
  if run.is_chief and start == 0:
    task.write_reals(cfg.workdir)
  try:
    outcome = _train_loop(run, evaluator, state, best, start)
  finally:
    run.checkpointer.close()
    writer.close()
  if outcome.preempted:
    return outcome.record
  return _write_final(run, evaluator, task, outcome.state, outcome.record)


class _Outcome:
  def __init__(self, state, record, preempted):
    self.state, self.record, self.preempted = state, record, preempted


def _nonfinite_error(run: Run, calls, bad_step: int) -> NonFiniteError:
  """The error for a first non-finite step: which quantities, which step, what is kept."""
  metrics = next(m for first, n, m in calls if first < bad_step <= first + n)  # that step's metrics
  bad = _nonfinite(sharding.to_host(metrics))
  latest = run.checkpointer.latest_step()
  kept = (f"the newest checkpoint (step {latest}) holds the last finite state" if latest is not None
          else "no checkpoint had been written yet")
  return NonFiniteError(
      f"non-finite {', '.join(bad)} at step {bad_step}; training stopped and nothing was saved "
      f"from this step; {kept}. Lower --lr_g/--lr_d or change --loss, then rerun (it resumes).")


def next_boundary(cfg, step: int) -> int:
  """The first step after `step` where the loop looks at the run: a log, eval or checkpoint step, or the end."""
  every = (cfg.log_every, cfg.eval_every, cfg.checkpoint_every)
  return min([(step // e + 1) * e for e in every] + [cfg.train_steps])


def call_lengths(cfg, spc: int, step: int, count: int):
  """(first step, steps) of the next `count` calls from `step`: spc steps, cut at every boundary.

  A pure function of the step, so a resumed run calls exactly as the uninterrupted one did.
  """
  calls = []
  while len(calls) < count and step < cfg.train_steps:
    n = min(spc, next_boundary(cfg, step) - step)
    calls.append((step, n))
    step += n
  return calls


def _train_loop(run: Run, evaluator: Evaluator, state, best, start: int) -> _Outcome:
  """Steps from `start` to train_steps without waiting on the host between boundaries.

  Calls are dispatched back to back; their metrics and the NaN guard's verdict are read only at
  log / eval / checkpoint steps (or on a signal), where the loop syncs, checks, evaluates and saves.
  """
  cfg = run.cfg
  feed = make_feed(run.dataset, run.mesh, cfg.d_steps, cfg.batch_size)
  fns = {}
  bad_step = sharding.replicate(np.zeros((), np.int32), run.mesh)
  step, record, calls = start, {}, []
  progress = writers.Progress(step, cfg.train_steps)
  try:
    with preemption_signals() as caught:
      while step < cfg.train_steps:
        (first, n), *upcoming = call_lengths(cfg, run.spc, step, 3)
        if n not in fns:
          fns[n] = make_train_fn(cfg, run.nets, run.g_tx, run.d_tx, run.mesh, n, feed_batch(feed.kind))
        state, bad_step, metrics = fns[n](state, bad_step, feed.data, feed.inputs(first, n, upcoming))
        calls.append((first, n, metrics))
        step += n
        if step < next_boundary(cfg, first) and not (caught and jax.process_count() == 1):
          continue
        if int(sharding.to_host(bad_step)) and cfg.nan_policy == "stop":
          raise _nonfinite_error(run, calls, int(sharding.to_host(bad_step)))
        metrics, calls = sharding.to_host(metrics), []
        if run.is_chief and (step % cfg.log_every == 0 or step == cfg.train_steps):
          progress.log(step, metrics)
        best, record = _evaluate_and_save(run, evaluator, state, step, best, metrics, record)
        if sharding.any_process(bool(caught)):
          return _preempted(run, state, step, best, record, caught)
  finally:
    feed.close()
  return _Outcome(state, record, False)


def _evaluate_and_save(run: Run, evaluator: Evaluator, state, step: int, best, metrics, record):
  """At an eval step: evaluate, keep the best checkpoint; at a checkpoint step: save. (best, record)."""
  cfg, checkpointer = run.cfg, run.checkpointer
  if step % cfg.eval_every == 0 or step == cfg.train_steps:
    record = evaluator(state, step, metrics)
    score = evaluator.task.rank(record)
    if score is not None and (best is None or tuple(score) > tuple(best)):
      best = list(score)
      checkpointer.save(step, state, run.meta(step, best, {"record": record}), best=True)
  if step % cfg.checkpoint_every == 0 or step == cfg.train_steps:
    checkpointer.save(step, state, run.meta(step, best))
  return best, record


def _preempted(run: Run, state, step: int, best, record, caught) -> _Outcome:
  run.checkpointer.save(step, state, run.meta(step, best))
  run.checkpointer.wait()
  signame = caught[0] if caught else "a signal on another process"
  print(f"{signame}: saved checkpoint at step {step} to {run.checkpointer.directory}/{step}; "
        "rerun the same command to resume", flush=True)
  return _Outcome(state, record, True)


def _write_final(run: Run, evaluator: Evaluator, task, state, record):
  """WORKDIR/eval/final_samples.npy and final_metrics.json (the task's final metrics of the last record)."""
  samples = evaluator.samples(state)  # A collective: every process takes part.
  if not run.is_chief:
    return record
  out = os.path.join(run.cfg.workdir, "eval")
  os.makedirs(out, exist_ok=True)
  np.save(os.path.join(out, "final_samples.npy"), samples)
  final = task.final_metrics(record)
  with open(os.path.join(out, "final_metrics.json"), "w") as f:
    json.dump(final, f, indent=1)
  return final
