"""N runs in one program (--seeds) against N separate runs: the step's speed and the whole job's wall time.

  python benchmarks/replicas.py [--parts=steps,processes,equality,roofline] [--configs=ring,dcgan_tiny] [--seeds=5]
      [--calls=30] [--root=/tmp/replicas] [--output=benchmarks/results/replicas.md]

Part `steps`: training steps per second through gan-jax's own compiled call (launch.Run for one run,
replicas.ReplicaRun for N, the feeds included), best of 3 rounds of --calls calls after two warm-up
calls, JAX configured as the entry points configure it. For the program it reports steps/s of the
program (each step advances all N runs) and the time per step per run against one run's.
Configurations: `ring` (ring.flags' networks, batch 256, pack 2, 500 steps per call), `dcgan_tiny`
(dcgan.flags' nets at width 8, 28 px, batch 16, one step per call as on XLA:CPU) and, for a GPU,
`dcgan` (dcgan.flags itself; the issue asks 8 seeds in at most 2x one run's time: --configs=dcgan
--seeds=8).
Part `processes`: ring.flags as N `experiments/run.py --seed=K` processes one after another, against
one `--seeds=0,...,N-1` program per replica mode, each from a cold start (no compilation cache), wall
seconds of the whole command.
Part `equality`: the largest absolute difference between run 1 of a `--seeds=0,1` program and the
single run of `--seed=1`, over every array of the state, after 50 and 2,000 steps, per replica mode, on
ring.flags and the tiny DCGAN (dcgan.flags' nets at width 8, unconditional, 28 px).
Part `roofline`: how busy one run keeps the CPU. XLA's cost analysis of one compiled step (one run, and
the N-run program in each replica mode) times the measured steps/s gives the step's FLOP/s, beside the
FLOP/s of a float32 matmul as large as the machine can be kept busy with (n = 2048, best of 10) and of
one matmul of the ring's own layer shape (256 x 256 by 256 x 256): the headroom a stacked program could
fill.
"""
import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do (their run.py subprocesses inherit XLA_FLAGS).

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax import launch, replicas, sharding  # noqa: E402
from gan_jax.config import Config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "ring": dict(dataset="ring", model="mlp", latent_dim=2, batch_size=256, pack=2, ema_decay=0.999,
                 lr_schedule="cosine", train_steps=10000, steps_per_call="500"),
    "dcgan_tiny": dict(dataset="mnist5k", model="dcgan", resolution=28, width=8, latent_dim=16, batch_size=16,
                       train_steps=10000),
    "dcgan": dict(dataset="mnist5k", model="dcgan", resolution=28, width=64, latent_dim=100, batch_size=64,
                  train_steps=10000),
}


def new_run(cfg: Config):
  """The training program of `cfg`: replicas.ReplicaRun under --seeds, else launch.Run."""
  return replicas.ReplicaRun(cfg) if cfg.seeds else launch.Run(cfg)


def steps_per_second(run, calls: int) -> float:
  """Best of 3 rounds: program steps per second of `calls` compiled calls (after 2 warm-up calls); closes run's feed."""
  state = run.fresh_state()
  bad = sharding.replicate(run.bad_steps() if run.cfg.seeds else np.zeros((), np.int32), run.mesh)
  fn, spc, step, best = run.train_fn(run.spc), run.spc, 0, 0.0
  for rounds in range(4):
    start = time.perf_counter()
    for _ in range(calls if rounds else 2):
      state, bad, metrics = fn(state, bad, run.feed.data, run.feed.inputs(step, spc))
      step += spc
    jax.block_until_ready((state, metrics))
    if rounds:
      best = max(best, calls * spc / (time.perf_counter() - start))
  run.feed.close()
  return best


def step_rows(names, seeds: int, calls: int):
  rows = []
  for name in names:
    cfg = Config(workdir="-", num_devices=1, **CONFIGS[name])
    one = steps_per_second(new_run(cfg), calls)
    rows.append(f"| {name} | 1 run | | {one:.1f} | 1.00 |")
    print(rows[-1], flush=True)
    for mode in ("vmap", "loop"):
      many = steps_per_second(new_run(dataclasses.replace(cfg, seeds=tuple(range(seeds)), replica_mode=mode)), calls)
      rows.append(f"| {name} | {seeds} runs | {mode} | {many:.1f} | {one / (many * seeds):.2f} |")
      print(rows[-1], flush=True)
  return ("| config | runs | mode | program steps/s | time per step per run / one run's |\n|---|---|---|---|---|\n"
          + "\n".join(rows))


def matmul_flops_per_second(n: int, k: int, repeats: int = 10) -> float:
  """Best-of-`repeats` FLOP/s of a jitted float32 (n x k) @ (k x k) product, 2 n k^2 FLOPs."""
  a, b = jax.random.normal(jax.random.key(0), (n, k)), jax.random.normal(jax.random.key(1), (k, k))
  product = jax.jit(lambda x, y: x @ y)
  product(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    product(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n * k * k / best


def step_flops(run) -> float:
  """FLOPs of one training step of `run` (one run, or the whole program under --seeds), by XLA's cost analysis."""
  cost = run.train_fn(1).cost_analysis()
  return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def roofline_rows(names, seeds: int, calls: int):
  peak, layer = matmul_flops_per_second(2048, 2048), matmul_flops_per_second(256, 256, repeats=200)
  rows = [f"| float32 matmul 2048 x 2048 | | | {peak / 1e9:.0f} | 1.00 |",
          f"| float32 matmul 256 x 256 | | | {layer / 1e9:.0f} | {layer / peak:.2f} |"]
  for name in names:
    cfg = Config(workdir="-", num_devices=1, **CONFIGS[name])
    for runs, mode in ((1, ""), (seeds, "vmap"), (seeds, "loop")):
      each = dataclasses.replace(cfg, seeds=tuple(range(runs)), replica_mode=mode) if mode else cfg
      run = new_run(each)
      flops = step_flops(run) * steps_per_second(run, calls)
      rows.append(f"| {name} | {runs} | {mode} | {flops / 1e9:.0f} | {flops / peak:.2f} |")
      print(rows[-1], flush=True)
  return ("| what | runs | mode | GFLOP/s | of the large matmul's |\n|---|---|---|---|---|\n" + "\n".join(rows))


def wall(args) -> float:
  """Wall seconds of `run.py args` (ring.flags unless args name a flagfile), cold: no compilation cache."""
  flagfile = [] if any(a.startswith("--flagfile=") for a in args) else ["--flagfile=ring.flags"]
  start = time.perf_counter()
  subprocess.run([sys.executable, os.path.join(REPO, "experiments", "run.py"), *flagfile, *args,
                  "--compilation_cache="], cwd=REPO, check=True, capture_output=True)
  return time.perf_counter() - start


def process_rows(seeds: int, root: str):
  sequential = sum(wall([f"--seed={s}", f"--workdir={root}/process_seed{s}", "--restart"]) for s in range(seeds))
  rows = [f"| {seeds} processes, one after another | {sequential:.0f} | 1.00 |"]
  print(rows[-1], flush=True)
  for mode in ("vmap", "loop"):
    program = wall([f"--seeds={','.join(map(str, range(seeds)))}", f"--replica_mode={mode}",
                    f"--workdir={root}/program_{mode}", "--restart"])
    rows.append(f"| one --seeds program, {mode} | {program:.0f} | {sequential / program:.2f} |")
    print(rows[-1], flush=True)
  return "| ring.flags, 5 runs | wall s | speed-up |\n|---|---|---|\n" + "\n".join(rows)


EQUALITY = {"ring.flags": ["--flagfile=ring.flags", "--steps_per_call=50"],
            "tiny DCGAN": ["--flagfile=dcgan.flags", "--width=8", "--resolution=28", "--conditioning=none",
                           "--eval_metrics=", "--batch_size=16"]}


def max_difference(a: str, b: str) -> float:
  from gan_jax import restore
  x, y = restore.load_run(a)[2], restore.load_run(b)[2]
  return max(float(np.max(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64))))
             for p, q in zip(jax.tree.leaves(x), jax.tree.leaves(y)) if np.size(p))


def equality_rows(root: str):
  rows = []
  for name, flags in EQUALITY.items():
    for steps in (50, 2000):
      common = [*flags, f"--train_steps={steps}", f"--eval_every={steps}", f"--checkpoint_every={steps}", "--restart"]
      single = f"{root}/eq_{name[:4]}_{steps}_single"
      wall([*common, "--seed=1", f"--workdir={single}"])
      cells = []
      for mode in ("loop", "vmap"):
        program = f"{root}/eq_{name[:4]}_{steps}_{mode}"
        wall([*common, "--seeds=0,1", f"--replica_mode={mode}", f"--workdir={program}"])
        cells.append(max_difference(f"{program}/seed_1", single))
      rows.append(f"| {name} | {steps} | {cells[0]:.3g} | {cells[1]:.3g} |")
      print(rows[-1], flush=True)
  return ("| config | steps | loop: max abs difference | vmap: max abs difference |\n|---|---|---|---|\n"
          + "\n".join(rows))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--parts", default="steps,processes")
  parser.add_argument("--configs", default="ring,dcgan_tiny")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--calls", type=int, default=30)
  parser.add_argument("--root", default="/tmp/replicas")
  parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "replicas.md"))
  args = parser.parse_args()
  parts = args.parts.split(",")
  sections = []
  if "steps" in parts:
    sections.append(step_rows(args.configs.split(","), args.seeds, args.calls))
  if "processes" in parts:
    sections.append(process_rows(args.seeds, args.root))
  if "equality" in parts:
    sections.append(equality_rows(args.root))
  if "roofline" in parts:
    sections.append(roofline_rows(args.configs.split(","), args.seeds, args.calls))
  text = (f"## {time.strftime('%Y-%m-%d')}: {platform.node()}, {jax.devices()[0].device_kind} ({os.cpu_count()} "
          f"CPUs)\n\n`python benchmarks/replicas.py {' '.join(sys.argv[1:])}`\n\n" + "\n\n".join(sections) + "\n")
  with open(args.output, "a") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
