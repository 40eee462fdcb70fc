"""N runs in one program (`--seeds=0,1,2`): independent GANs stacked on a leading replica axis.
`--sweep=FIELD=v1,v2,...` makes the runs every value for every seed (`program_runs` names them
seed_K or <field>_<value>_seed_K; below, WORKDIR/seed_K stands for either).

Run K of the program is the run of `--seed=K`: the same initial state (built by the single run's own
init, then stacked), data order (seed K's dataset), latents and keys (each run's `state.rng`). The
stacked state [R, ...] is stepped by one compiled call, inside the same data-parallel `shard_map` as
a single run (the batch still split over the devices), either under `jax.vmap` or by a static loop
over the runs inside the jit (`--replica_mode`; auto: REPLICA_MODE, measured by benchmarks/replicas.py).

Outputs: the stacked state is the program's one checkpoint (WORKDIR/checkpoints, atomic: a kill
between per-run writes cannot break resume); each run writes WORKDIR/seed_K/ as a single run would
(config.json, metrics.jsonl, samples/, eval/final_metrics.json, and checkpoints/ + checkpoints_best/
exported for evaluate.py and sample.py); WORKDIR/runs.md and runs.json hold every metric's
mean +- std over the runs at each evaluation, rebuilt from the runs' metrics.jsonl.
NaN guard: under --nan_policy=stop a run whose step goes non-finite is frozen at its last finite state
(its bad step kept in the checkpoint's metadata, so a resume keeps it frozen) and reported by name;
the others go on, and the program stops when every run is frozen.
"""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax import launch, sharding, tasks, train, workdir, writers
from gan_jax.data.feed import make_feed
from gan_jax.errors import NonFiniteError
from gan_jax.sharding import DATA_AXIS, P
from gan_jax.state import init_images, make_optimizers, state_from_config
from gan_jax.steps import make_context
from gan_jax.train_fn import per_device_fn

REPLICA_BATCH_SPEC = P(None, None, None, DATA_AXIS)  # [R, steps, k, B, ...]: rows split over DATA_AXIS
# --replica_mode=auto, measured (benchmarks/results/replicas.md, 2-core CPU): on XLA:CPU vmap makes the
# per-run convolution kernels grouped convolutions (the tiny DCGAN 1.77x slower per run than one run)
# and gains nothing on the MLP (the cores are already busy), so the CPU loops (the single runs' own
# steps: bit for bit on the MLPs, 3e-8 apart after 2,000 DCGAN steps); accelerators vmap (one batched
# kernel per layer: what fills a GPU's idle SMs).
REPLICA_MODE = {"cpu": "loop", "default": "vmap"}


def program_runs(cfg):
  """[(name, config)] of the program's runs: each the single run's config (its --seed and swept value,
  its workdir WORKDIR/<name>), named seed_K, or <field>_<value>_seed_K under --sweep; every value for
  every seed, values outermost."""
  seeds = cfg.seeds or (cfg.seed,)
  field, values = config_lib.parse_sweep(cfg.sweep) if cfg.sweep else (None, (None,))
  runs = []
  for value in values:
    for seed in seeds:
      name = f"seed_{seed}" if field is None else f"{field}_{value:g}_seed_{seed}"
      swept = {field: value} if field else {}
      runs.append((name, dataclasses.replace(cfg, seed=seed, seeds=(), sweep="", workdir=os.path.join(
          cfg.workdir, name), **swept)))
  return runs


def groups(cfg) -> dict:
  """{label: [run names]}: the runs that a row of runs.md averages (one group per swept value)."""
  runs = program_runs(cfg)
  if not cfg.sweep:
    return {"all runs": [name for name, _ in runs]}
  field = config_lib.parse_sweep(cfg.sweep)[0]
  out = {}
  for name, c in runs:
    out.setdefault(f"{field}={getattr(c, field):g}", []).append(name)
  return out


def stack(trees):
  """[tree_0, ..., tree_{R-1}] -> one tree with a leading axis R."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree, r: int):
  """Run r's slice of a stacked tree."""
  return jax.tree.map(lambda a: a[r], tree)


def replica_mode(requested: str, platform: str) -> str:
  """'vmap' or 'loop' (a static loop over the runs inside the jit): --replica_mode, or when 'auto' the
  measured choice for this platform (REPLICA_MODE)."""
  if requested != "auto":
    return requested
  return REPLICA_MODE.get(platform, REPLICA_MODE["default"])


def make_replica_train_fn(contexts, mesh, steps_per_call: int, mode: str, batch_of=None, freeze: bool = True,
                          swept=None):
  """`train_fn.make_train_fn` over R stacked runs: (state [R, ...], bad_step int32 [R], data, inputs
  leaves [R, steps, k, B, ...]) -> (state, bad_step, metrics [R]). data (the resident dataset) is
  shared by the runs. contexts: each run's StepContext. 'loop' unrolls the one-run body R times in
  the jit, each with its run's context (the single runs' own steps); 'vmap' maps one body
  over the runs: with a sweep, `swept` = (values [R], value -> StepContext) makes the context of a
  traced value, otherwise the runs share contexts[0]."""
  bodies = [per_device_fn(ctx, steps_per_call, batch_of, freeze) for ctx in contexts]
  if mode == "loop":
    def body(state, bad_step, data, inputs):
      outs = [run(unstack(state, r), bad_step[r], data, unstack(inputs, r)) for r, run in enumerate(bodies)]
      return tuple(stack(parts) for parts in zip(*outs))
  elif swept is None:
    body = jax.vmap(bodies[0], in_axes=(0, 0, None, 0))
  else:
    values, context_of = swept

    def one(state, bad_step, data, inputs, value):
      return per_device_fn(context_of(value), steps_per_call, batch_of, freeze)(state, bad_step, data, inputs)

    def body(state, bad_step, data, inputs):
      return jax.vmap(one, in_axes=(0, 0, None, 0, 0))(state, bad_step, data, inputs, jnp.asarray(values))
  sharded = jax.shard_map(body, mesh=mesh, in_specs=(P(), P(), P(), REPLICA_BATCH_SPEC),
                          out_specs=(P(), P(), P()), check_vma=False)
  return jax.jit(sharded, donate_argnums=0)


class Swept:
  """A penalty weight traced through a vmapped --sweep: a number in the arithmetic, and on (truthy) in
  every run, as config.parse_sweep admits no 0 for it (0 would remove the term from the step)."""

  def __init__(self, value):
    self.value = value

  def __bool__(self):
    return True

  def __mul__(self, other):
    return self.value * other

  __rmul__ = __mul__


class ReplicaFeed:
  """The runs' feeds, one per seed, as one: inputs stacked on a leading replica axis; a resident
  dataset is on the devices once, shared by all runs."""

  def __init__(self, feeds, mesh):
    self.feeds, self.mesh = feeds, mesh
    self.kind, self.data, self.batch = feeds[0].kind, feeds[0].data, feeds[0].batch

  def inputs(self, first_step: int, num_steps: int, upcoming=()):
    local = [f.local_inputs(first_step, num_steps, upcoming) for f in self.feeds]
    spec = jax.sharding.NamedSharding(self.mesh, REPLICA_BATCH_SPEC)
    return jax.tree.map(lambda *a: jax.make_array_from_process_local_data(spec, np.stack(a)), *local)

  def abstract_inputs(self, num_steps: int):
    spec = jax.sharding.NamedSharding(self.mesh, REPLICA_BATCH_SPEC)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((len(self.feeds), *a.shape), a.dtype, sharding=spec),
                        self.feeds[0].abstract_inputs(num_steps))

  def host_bytes(self, num_steps: int) -> int:
    return sum(f.host_bytes(num_steps) for f in self.feeds)

  def close(self):
    for f in self.feeds:
      f.close()


class ReplicaRun(launch.Run):
  """launch.Run for a --seeds / --sweep program: the same checks in the same order, on the stacked state."""

  def __init__(self, cfg):
    config_lib.validate(cfg)
    self.names, self.run_cfgs = zip(*program_runs(cfg))
    for c in self.run_cfgs:  # a swept value the field does not take is refused as that flag
      config_lib.validate(c)
    super().__init__(cfg)  # validates cfg, reads the first seed's data, builds nets, mesh, first feed
    self.datasets = [data_lib.make_dataset(c) for c in self.run_cfgs]
    feeds = [make_feed(d, self.mesh, cfg.d_steps, cfg.batch_size, data=self.feed.data) for d in self.datasets]
    self.feed.close()
    self.feed = ReplicaFeed(feeds, self.mesh)
    self.mode = replica_mode(cfg.replica_mode, jax.default_backend())
    self.frozen = dict(self.saved_meta.get("frozen", {})) if self.saved_meta else {}

  def _single_init(self, key, d_init_images=None):
    return state_from_config(self.cfg, key, self.nets, self.g_tx, self.d_tx, d_init_images)

  def init_state(self):
    """The stacked state (for shapes): run K's state is `state_from_config(cfg, PRNGKey(its seed))`."""
    return stack([self._single_init(jax.random.PRNGKey(c.seed)) for c in self.run_cfgs])

  def fresh_state(self):
    """Each run's state by the single run's jitted init (bit for bit that run's), then stacked."""
    init = jax.jit(self._single_init)
    states = [init(jax.random.PRNGKey(c.seed), init_images(c, d)) for c, d in zip(self.run_cfgs, self.datasets)]
    return sharding.replicate(jax.jit(stack)(states), self.mesh)

  def bad_steps(self):
    """int32 [R]: each run's first non-finite step (0: none), restored from the checkpoint's metadata."""
    return np.array([self.frozen.get(name, 0) for name in self.names], np.int32)

  def train_fn(self, num_steps: int):
    if num_steps not in self.fns:
      cfg = self.cfg
      fn = make_replica_train_fn([self._context(c) for c in self.run_cfgs], self.mesh, num_steps, self.mode,
                                 self.feed.batch, freeze=cfg.nan_policy == "stop", swept=self._swept())
      bad = jax.ShapeDtypeStruct((len(self.names),), np.int32, sharding=sharding.replicated_sharding(self.mesh))
      self.fns[num_steps] = fn.lower(self.abstract_state, bad, self.feed.data,
                                     self.feed.abstract_inputs(num_steps)).compile()
    return self.fns[num_steps]

  def _context(self, cfg):
    return make_context(cfg, self.nets, *make_optimizers(cfg), DATA_AXIS, self.mesh.size)

  def _swept(self):
    """(values [R], value -> StepContext) of a --sweep, for vmap: the context of a traced value."""
    if not self.cfg.sweep:
      return None
    field = config_lib.parse_sweep(self.cfg.sweep)[0]
    wrap = Swept if field in config_lib.SWEEP_OFF_AT_ZERO else (lambda v: v)
    values = np.array([getattr(c, field) for c in self.run_cfgs], np.float32)
    return values, lambda value: self._context(dataclasses.replace(self.cfg, **{field: wrap(value)}))

  def meta(self, step, best, extra=None):
    return super().meta(step, best, {"frozen": self.frozen, **(extra or {})})

  def run_meta(self, r: int, step: int, best, extra=None):
    """Run r's metadata, as its single run's checkpoint would hold it."""
    return {**launch.Run.meta(self, step, best, extra), "config": config_lib.to_dict(self.run_cfgs[r]),
            "data": self.datasets[r].fingerprint()}


class Member:
  """One run of the program: its config, writer, task, evaluator and exported checkpoints."""

  def __init__(self, run: ReplicaRun, r: int, sampling_nets):
    self.index, self.cfg = r, run.run_cfgs[r]
    self.name = run.names[r]
    self.writer = writers.MetricWriter(self.cfg.workdir, enabled=run.is_chief)
    self.task = tasks.make_task(self.cfg, run.datasets[r], run.feature, run.nets)
    self.evaluator = train.Evaluator(self.cfg, sampling_nets, self.task, self.cfg.workdir, self.writer)
    self.checkpointer = ckpt_lib.Checkpointer(self.cfg.workdir, 1, self.cfg.checkpoint_timeout)
    self.record = {}
    self.dataset = run.datasets[r]

  def write_run_files(self, start: int):
    workdir.write_json(os.path.join(self.cfg.workdir, "config.json"), config_lib.to_dict(self.cfg))
    launch.write_labeled_examples(self.cfg.workdir, self.dataset)
    workdir.keep_records_up_to(os.path.join(self.cfg.workdir, "metrics.jsonl"), start)

  def closers(self):
    return (self.checkpointer.close, self.writer.close)


def train_stacked(run: ReplicaRun, progress: dict, signals) -> dict:
  """train._train for the stacked runs: restore or init, loop, each run's final outputs, runs.md."""
  cfg = run.cfg
  state, best = run.restore_or_init()
  best = best or [None] * len(run.names)
  start = int(np.max(sharding.to_host(state.step)))  # a frozen run's counter stopped at its freeze
  sampling_nets = run.sampling_nets()
  members = [Member(run, r, sampling_nets) for r in range(len(run.names))]
  if run.is_chief:
    run.write_run_files(start)
    for m in members:
      m.write_run_files(start)
  logging.info("%d runs stacked (%s; %s), %d %s devices, global batch %d each", len(members),
               ", ".join(run.names), run.mode, run.mesh.size, jax.default_backend(), cfg.batch_size)
  try:
    preempted = False
    if start < cfg.train_steps:
      if run.is_chief and start == 0:
        for m in members:
          m.task.write_reals(m.cfg.workdir)
      state, best, preempted = _loop(run, members, state, best, start, progress, signals)
    summary = {} if preempted else _finish(run, members, state, best)
  except BaseException:
    train.close_after_failure(run.checkpointer.close, *[c for m in members for c in m.closers()])
    raise
  for close in (run.checkpointer.close, *[c for m in members for c in m.closers()]):
    close()
  return summary


def _loop(run, members, state, best, start: int, progress: dict, signals):
  """train._train_loop for the stacked runs: (state, best, preempted)."""
  cfg = run.cfg
  bad_step = sharding.replicate(run.bad_steps(), run.mesh)
  step, clock = start, writers.Progress(start, cfg.train_steps)
  with train.preemption_signals(signals) as caught:
    while step < cfg.train_steps:
      with train.between_boundaries():
        state, bad_step, calls, step = train.dispatch_to_boundary(run, state, bad_step, step, caught)
      _note_nonfinite(run, sharding.to_host(bad_step))
      progress["stepped"] = True
      metrics = sharding.to_host(calls[-1][2])
      if run.is_chief and (step % cfg.log_every == 0 or step == cfg.train_steps):
        clock.log(step, _mean_over(metrics, _active(run)))
      best = _evaluate_and_save(run, members, state, step, best, metrics)
      if sharding.any_process(bool(caught)):
        run.checkpointer.save(step, state, run.meta(step, best))
        run.checkpointer.wait()
        print(f"{caught[0] if caught else 'a signal on another process'}: saved checkpoint at step {step} to "
              f"{run.checkpointer.directory}/{step}; rerun the same command to resume", flush=True)
        return state, best, True
  return state, best, False


def _active(run) -> list:
  """Indices of the runs still training (not frozen by the NaN guard)."""
  return [r for r, name in enumerate(run.names) if name not in run.frozen or run.cfg.nan_policy != "stop"]


def _mean_over(metrics, rows) -> dict:
  return {k: float(np.mean(np.asarray(v)[rows])) for k, v in metrics.items()} if rows else {}


def _note_nonfinite(run, bad_steps):
  """Records and reports each run's first non-finite step (once); under --nan_policy=stop that run is
  frozen, and when every run is, the program stops with one error naming them."""
  cfg = run.cfg
  for name, bad in zip(run.names, bad_steps):
    if bad and name not in run.frozen:
      run.frozen[name] = int(bad)
      then = ("frozen at its last finite state; the other runs go on" if cfg.nan_policy == "stop" else
              "--nan_policy=ignore: it goes on")
      logging.warning("run %s: non-finite loss or gradient at step %d; %s", name, bad, then)
  if cfg.nan_policy == "stop" and len(run.frozen) == len(run.names):
    latest = run.checkpointer.latest_step()
    kept = (f"the newest checkpoint (step {latest}) holds the last finite states" if latest is not None
            else "no checkpoint had been written yet")
    where = ", ".join(f"{name} at step {b}" for name, b in run.frozen.items())
    raise NonFiniteError(f"every run went non-finite ({where}); training stopped and nothing was saved from "
                         f"these steps; {kept}. Lower --lr_g/--lr_d or change --loss, then rerun (it resumes).")


def _evaluate_and_save(run, members, state, step: int, best, metrics):
  """train._evaluate_and_save per run: each active run evaluated and its best exported; the stacked
  state saved at checkpoint steps. Returns the runs' best scores."""
  cfg = run.cfg
  if step % cfg.eval_every == 0 or step == cfg.train_steps:
    for r in _active(run):
      m, state_r = members[r], unstack(state, r)
      m.record = m.evaluator(state_r, step, unstack(metrics, r))
      score = m.task.rank(m.record)
      if score is not None and (best[r] is None or tuple(score) > tuple(best[r])):
        best[r] = list(score)
        m.checkpointer.save(step, state_r, run.run_meta(r, step, best[r], {"record": m.record}), best=True)
    if run.is_chief:
      write_summary(cfg)
  if step % cfg.checkpoint_every == 0 or step == cfg.train_steps:
    run.checkpointer.save(step, state, run.meta(step, best))
  return best


def _finish(run, members, state, best) -> dict:
  """Each run's final outputs and exported checkpoint (a frozen run's at its own last step), runs.md."""
  finals = {}
  for m in members:
    state_r = unstack(state, m.index)
    step = int(sharding.to_host(state_r.step))
    record = m.record if step == run.cfg.train_steps and m.record else None
    final = train.final_outputs(m.cfg, run.is_chief, m.evaluator, m.task, state_r, record, step)
    m.checkpointer.save(step, state_r, run.run_meta(m.index, step, best[m.index]))
    finals[m.name] = {**final, "finished": m.name not in run.frozen or run.cfg.nan_policy != "stop"}
  if run.is_chief:
    write_summary(run.cfg, finals)
  return finals


def summarize(records_by_run: dict) -> list:
  """[{step, runs, metrics: {name: (mean, std)}}] per evaluation step, over the runs that reached it:
  every numeric scalar of their records; std is the sample standard deviation (ddof 1; 0 for one run)."""
  steps = sorted({r["step"] for records in records_by_run.values() for r in records})
  rows = []
  for step in steps:
    at = [r for records in records_by_run.values() for r in records if r["step"] == step]
    names = sorted({k for r in at for k, v in r.items() if k != "step" and _is_number(v)})
    stats = {}
    for name in names:
      values = np.array([r[name] for r in at if _is_number(r.get(name))], np.float64)
      stats[name] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
    rows.append({"step": step, "runs": len(at), "metrics": stats})
  return rows


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def write_summary(cfg, finals=None):
  """WORKDIR/runs.json and runs.md: `summarize` of the runs' metrics.jsonl per group (per swept value),
  and at the end each run's final metrics and whether it finished. Rebuilt whole from the runs' files,
  so a resume rewrites it."""
  tables, lines = {}, []
  for label, names in groups(cfg).items():
    records = {n: workdir.read_records(os.path.join(cfg.workdir, n, "metrics.jsonl")) for n in names}
    tables[label] = rows = summarize(records)
    lines += [f"## {label}: {len(names)} runs ({', '.join(names)}), mean +- std (ddof 1) at each evaluation", "",
              *_markdown(rows), ""]
  workdir.write_json(os.path.join(cfg.workdir, "runs.json"), {"groups": groups(cfg), "evaluations": tables,
                                                              "final": finals})
  if finals:
    lines += ["## Final metrics per run", "", "| run | finished | step | metrics |", "|---|---|---|---|"]
    for name, final in finals.items():
      shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if _is_number(v) and k != "step")
      lines.append(f"| {name} | {'yes' if final['finished'] else 'no (frozen: non-finite)'} | {final['step']} | "
                   f"{shown} |")
  workdir.write_atomic(os.path.join(cfg.workdir, "runs.md"), lambda f: f.write("\n".join(lines) + "\n"))


def _markdown(rows) -> list:
  names = sorted({n for row in rows for n in row["metrics"]})
  lines = ["| step | runs | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
  for row in rows:
    cells = [f"{row['metrics'][n][0]:.4g} +- {row['metrics'][n][1]:.2g}" if n in row["metrics"] else "" for n in names]
    lines.append(f"| {row['step']} | {row['runs']} | " + " | ".join(cells) + " |")
  return lines
