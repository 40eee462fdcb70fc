"""The training loop: wires data, state, steps, evaluation, writers and checkpoints.

flags -> Config -> launch.Run (checks, data, nets, compiled first call) -> lock -> restore or init
-> asynchronous loop (metrics / samples / checkpoints at boundaries) -> final outputs.
"""
import contextlib
import json
import os

import jax
import numpy as np
from absl import logging

from gan_jax import config as config_lib
from gan_jax import generate, launch, runtime, sharding, tasks, workdir, writers
from gan_jax.errors import ConfigError, GanJaxError, NonFiniteError
from gan_jax.nets import draw_latents
from gan_jax.state import count_params
from gan_jax.train_fn import GUARDED

__all__ = ["train_and_evaluate", "Evaluator", "NonFiniteError", "call_lengths", "next_boundary"]


class Evaluator:
  """Draws G_ema(z) for a fixed set of latents and writes the task's metrics and picture."""

  def __init__(self, cfg, nets, task, workdir_path, writer):
    """nets: built without a device axis (G_ema's standing statistics run batch norm in train mode)."""
    self.task, self.workdir, self.writer, self.nets = task, workdir_path, writer, nets
    self.statistics, self.batch_size, self.seed = cfg.ema_statistics, cfg.batch_size, cfg.seed
    self.generator = generate.Generator(nets, chunk=500)
    self.probe = generate.Probe(nets)
    # Fixed latents, independent of the training keys: the same picture grid every eval.
    self.z = np.asarray(draw_latents(nets.latent_distribution, jax.random.fold_in(jax.random.PRNGKey(cfg.seed),
                                                                                 2**31 - 1),
                                     (task.eval_samples, nets.latent_dim)))

  def samples(self, state):
    """G_ema(z) for the fixed latents, in data units, with the batch-norm statistics of --ema_statistics."""
    sampling = generate.sampling_state(self.nets, state, self.statistics, self.batch_size, self.seed)
    return self.task.to_data_units(self.generator(sampling, self.z))

  def __call__(self, state, step: int, train_metrics: dict) -> dict:
    x = self.samples(state)
    record = {k: float(v) for k, v in train_metrics.items()}
    record.update(self.task.metrics(x, state))
    theory, surface = self.task.theory(self.probe, state)
    record.update(theory)
    if self.writer.enabled:
      image = self.task.draw(x, os.path.join(self.workdir, "samples", f"step_{step:07d}.png"), step, record,
                             surface)
      if image is not None:
        self.writer.write_image(step, "samples", image)
    self.writer.write(step, record)
    return record


@contextlib.contextmanager
def preemption_signals(signals: runtime.Signals | None):
  """While training, SIGTERM / SIGINT only add to the list the loop reads at its next step boundary.

  `signals`: the entry point's handler, installed since start-up (None: one is installed here). A
  signal it caught before the loop began (one whose KeyboardInterrupt Python dropped) stops the
  run before its first step, as an interrupted start-up.
  """
  with contextlib.ExitStack() as stack:
    if signals is None:
      signals = stack.enter_context(runtime.handling_signals(runtime.Signals()))
    if signals.caught:
      raise KeyboardInterrupt
    signals.raising = False
    try:
      yield signals.caught
    finally:
      signals.raising = True


def _nonfinite(metrics):
  return [k for k in GUARDED if k in metrics and not np.isfinite(metrics[k])]


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


class _Outcome:
  def __init__(self, state, record, preempted):
    self.state, self.record, self.preempted = state, record, preempted


def train_and_evaluate(cfg: config_lib.Config, signals: runtime.Signals | None = None) -> dict:
  """Trains to `cfg.train_steps`, resuming from WORKDIR/checkpoints; returns the final evaluation.

  Every check (flags, data, resume rules, memory) runs before anything is written; a run on a fresh
  workdir that fails before its first step leaves no workdir behind. `signals`: the entry point's
  SIGINT / SIGTERM handler (see `preemption_signals`).
  """
  if cfg.seeds or cfg.sweep:
    from gan_jax import replicas  # N runs stacked: the same checks, lock and failure handling
    run, body = replicas.ReplicaRun(cfg), replicas.train_stacked
  else:
    run, body = launch.Run(cfg), _train
  first = call_lengths(cfg, run.spc, 0, 1)
  if first:
    run.check_fits(first[0][1])
  fresh = not (os.path.isdir(cfg.workdir) and os.listdir(cfg.workdir))
  progress = {"stepped": False}
  try:
    with launch.removed_on_failure(cfg.workdir, lambda: run.is_chief and fresh and not progress["stepped"]), \
         run.locked():
      return body(run, progress, signals)
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    raise ConfigError("batch_size", cfg.batch_size, "the devices ran out of memory ("
                      f"{str(e).splitlines()[0][:160]}); lower --batch_size or --steps_per_call") from None
  finally:
    run.feed.close()


def _train(run: launch.Run, progress: dict, signals) -> dict:
  cfg = run.cfg
  state, best = run.restore_or_init()
  start = int(sharding.to_host(state.step))
  if run.is_chief:
    run.write_run_files(start)
  logging.info("G: %d params, D: %d params, %d %s devices, global batch %d, %d steps per call",
               count_params(state.g_params), count_params(state.d_params), run.mesh.size, jax.default_backend(),
               cfg.batch_size, run.spc)
  writer = writers.MetricWriter(cfg.workdir, enabled=run.is_chief)
  task = tasks.make_task(cfg, run.dataset, run.feature, run.nets)
  evaluator = Evaluator(cfg, run.sampling_nets(), task, cfg.workdir, writer)
  try:
    if start >= cfg.train_steps:
      logging.warning("the checkpoint is at step %d, at or past --train_steps=%d: nothing to train; "
                      "keeping or recomputing the final evaluation", start, cfg.train_steps)
      return final_outputs(cfg, run.is_chief, evaluator, task, state, None, start)
    if run.is_chief and start == 0:
      task.write_reals(cfg.workdir)
    outcome = _train_loop(run, evaluator, state, best, start, progress, signals)
  except BaseException:
    close_after_failure(run.checkpointer.close, writer.close)
    raise
  run.checkpointer.close()
  writer.close()
  if outcome.preempted:
    return outcome.record
  return final_outputs(cfg, run.is_chief, evaluator, task, outcome.state, outcome.record, cfg.train_steps)


def close_after_failure(*closers):
  """Calls each closer (the checkpointers' and writers' close: they wait for the saves in flight) after
  the loop failed: a second failure (a full disk fails them all) is logged, so the user's one error
  line is the first failure's."""
  for close in closers:
    try:
      close()
    except GanJaxError as e:
      logging.warning("after the failure below, also: %s", e)


def _nonfinite_error(run, calls, bad_step: int) -> NonFiniteError:
  """The error for a first non-finite step: which quantities, which step, what is kept."""
  metrics = next(m for first, n, m in calls if first < bad_step <= first + n)  # that step's metrics
  bad = _nonfinite(sharding.to_host(metrics))
  latest = run.checkpointer.latest_step()
  kept = (f"the newest checkpoint (step {latest}) holds the last finite state" if latest is not None
          else "no checkpoint had been written yet")
  return NonFiniteError(
      f"non-finite {', '.join(bad)} at step {bad_step}; training stopped and nothing was saved "
      f"from this step; {kept}. Lower --lr_g/--lr_d or change --loss, then rerun (it resumes).")


def _train_loop(run, evaluator: Evaluator, state, best, start: int, progress: dict, signals) -> _Outcome:
  """Steps from `start` to train_steps without waiting on the host between boundaries.

  Calls are dispatched back to back; their metrics and the NaN guard's verdict are read only at
  log / eval / checkpoint steps (or on a signal), where the loop syncs, checks, evaluates and saves.
  """
  cfg = run.cfg
  bad_step = sharding.replicate(np.zeros((), np.int32), run.mesh)
  step, record = start, {}
  clock = writers.Progress(step, cfg.train_steps)
  with preemption_signals(signals) as caught:
    while step < cfg.train_steps:
      with between_boundaries():
        state, bad_step, calls, step = dispatch_to_boundary(run, state, bad_step, step, caught)
      metrics = calls[-1][2]
      if int(sharding.to_host(bad_step)) and cfg.nan_policy == "stop":
        raise _nonfinite_error(run, calls, int(sharding.to_host(bad_step)))
      progress["stepped"] = True
      metrics = sharding.to_host(metrics)
      if run.is_chief and (step % cfg.log_every == 0 or step == cfg.train_steps):
        clock.log(step, metrics)
      best, record = _evaluate_and_save(run, evaluator, state, step, best, metrics, record)
      if sharding.any_process(bool(caught)):
        return _preempted(run, state, step, best, record, caught)
  return _Outcome(state, record, False)


# How the loop guards the devices' queue between boundaries: implicit device-to-host transfers are
# logged (on an accelerator each would stall the queue; tests/test_loop.py makes any host read fail).
DISPATCH_GUARD = "log"


def between_boundaries():
  """The context the loop dispatches in, from one boundary to the next: no host reads of device arrays."""
  return jax.transfer_guard_device_to_host(DISPATCH_GUARD)


def dispatch_to_boundary(run, state, bad_step, step: int, caught):
  """Dispatches calls back to back from `step` to the next boundary (or a signal on one process), never
  reading the devices: (state, bad_step, [(first step, steps, metrics)] of the calls, the boundary)."""
  cfg, feed, calls = run.cfg, run.feed, []
  while True:
    (first, n), *upcoming = call_lengths(cfg, run.spc, step, 3)
    state, bad_step, metrics = run.train_fn(n)(state, bad_step, feed.data, feed.inputs(first, n, upcoming))
    calls.append((first, n, metrics))
    step += n
    if step >= next_boundary(cfg, first) or (caught and jax.process_count() == 1):
      return state, bad_step, calls, step


def _evaluate_and_save(run, evaluator: Evaluator, state, step: int, best, metrics, record):
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


def _preempted(run, state, step: int, best, record, caught) -> _Outcome:
  run.checkpointer.save(step, state, run.meta(step, best))
  run.checkpointer.wait()
  signame = caught[0] if caught else "a signal on another process"
  print(f"{signame}: saved checkpoint at step {step} to {run.checkpointer.directory}/{step}; "
        "rerun the same command to resume", flush=True)
  return _Outcome(state, record, True)


def final_outputs(cfg, is_chief: bool, evaluator: Evaluator, task, state, record, step: int) -> dict:
  """WORKDIR/eval/final_samples.npy and final_metrics.json ('step' and the task's final metrics).

  `record` is the last evaluation's; None on a rerun of a finished run, which keeps the final
  outputs of that step if they are whole, and recomputes them from the restored state otherwise.
  """
  out = os.path.join(cfg.workdir, "eval")
  path = os.path.join(out, "final_metrics.json")
  if record is None:
    kept = _read_final(path)
    if kept.get("step") == step and os.path.exists(os.path.join(out, "final_samples.npy")):
      return kept
  samples = evaluator.samples(state)  # A collective: every process takes part.
  if record is None:
    last = [r for r in workdir.read_records(os.path.join(cfg.workdir, "metrics.jsonl")) if r.get("step") == step]
    record = {**(last[-1] if last else {}), **task.metrics(samples, state)}
  final = {"step": step, **task.final_metrics({k: v for k, v in record.items() if k != "step"})}
  if is_chief:
    workdir.save_npy(os.path.join(out, "final_samples.npy"), samples)
    workdir.write_json(path, final)
    task.finish(cfg.workdir)
  return final


def _read_final(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}
