"""Which trick cures mode collapse? Every variant on the ring and the grid, 5 seeds, one table.

  python benchmarks/mode_coverage.py [--datasets=ring,grid] [--variants=vanilla,best,...]
      [--seeds=0,1,2,3,4] [--train_steps=N] [--root=/tmp/mode_coverage] [--processes]
      [--output=benchmarks/results/mode_coverage.md]

PacGAN's protocol (Lin et al. 2018): after training, 2,500 samples of (the EMA of) G; a sample is of
high quality within 3 sigma of its nearest mode; a mode is covered when a high-quality sample falls
on it; reverse KL between the modes' histogram and the uniform distribution. Each row's seeds train
as one program, `experiments/run.py --flagfile=<ring.flags | grid_best.flags> <variant's flags>
--seeds=0,1,2,3,4` (gan_jax/replicas.py; its s/run is the program's wall time over the seeds), in a
workdir of its own under --root; --processes runs each seed as its own `--seed=S` process instead.
A row (or run) whose final metrics exist is not run again, so an interrupted sweep resumes and a table
can be grown a few rows at a time. The table (mean +- standard error over
the seeds) is written to --output with the command and the machine.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do (their run.py subprocesses inherit XLA_FLAGS).

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_FLAGFILES = {"ring": "ring.flags", "grid": "grid_best.flags"}
# The vanilla GAN of Goodfellow et al. 2014 with the base flagfile's networks, batch, Adam and steps:
# no packing, no EMA, constant learning rate, data in its own units.
VANILLA = ("--pack=1", "--ema_decay=0", "--lr_schedule=constant", "--data_scale=1")
# name -> (what it is, flags over the base flagfile).
VARIANTS = {
    "vanilla": ("non-saturating GAN, no tricks", VANILLA),
    "best": ("the base flagfile: PacGAN2 + EMA 0.999 + cosine decay (+ data x 1/4 on the grid)", ()),
    "label_smoothing": ("one-sided label smoothing, real target 0.9", VANILLA + ("--label_smoothing=0.1",)),
    "d_steps_2": ("k = 2 D steps per G step", VANILLA + ("--d_steps=2",)),
    "ttur": ("two time-scale: lr_d 4e-4, lr_g 1e-4", VANILLA + ("--lr_d=4e-4", "--lr_g=1e-4")),
    "pack_2": ("PacGAN2", VANILLA + ("--pack=2",)),
    "pack_4": ("PacGAN4", VANILLA + ("--pack=4",)),
    "ema": ("EMA of G, decay 0.999", VANILLA + ("--ema_decay=0.999",)),
    "vbn": ("virtual batch norm in G", VANILLA + ("--virtual_batch_norm=64",)),
    "feature_matching": ("feature-matching G loss", VANILLA + ("--feature_matching",)),
    "minibatch_discrimination": ("minibatch discrimination in D",
                                 VANILLA + ("--minibatch_discrimination=50",)),
    "historical_averaging": ("historical averaging, weight 0.01", VANILLA + ("--historical_averaging=0.01",)),
    "cond_concat": ("G and D conditioned on the mode index (concatenation)", VANILLA + ("--conditioning=concat",)),
    "cond_acgan": ("AC-GAN auxiliary classifier", VANILLA + ("--conditioning=acgan",)),
    "cond_projection": ("projection discriminator", VANILLA + ("--conditioning=projection",)),
    "wgan_clip": ("WGAN, weight clipping 0.01, k = 5, lr 5e-5", VANILLA + (
        "--loss=wgan", "--weight_clip=0.01", "--d_steps=5", "--lr_d=5e-5", "--lr_g=5e-5")),
    "wgan_gp": ("WGAN-GP, lambda 10, k = 5, Adam 1e-4 (0, 0.9)", VANILLA + (
        "--loss=wgan", "--gp_weight=10", "--d_steps=5", "--lr_d=1e-4", "--lr_g=1e-4", "--beta1=0",
        "--beta2=0.9")),
    "hinge": ("hinge loss", VANILLA + ("--loss=hinge",)),
    "lsgan": ("least squares", VANILLA + ("--loss=lsgan",)),
    "hinge_sn": ("hinge + spectral norm in D", VANILLA + ("--loss=hinge", "--spectral_norm")),
    "r1": ("R1 penalty, gamma 0.1", VANILLA + ("--r1_weight=0.1",)),
}
# PacGAN4 on the grid, Lin et al. 2018, Table 1 (5 seeds, 2,500 samples).
PACGAN4_GRID = (24.8, 0.936, 0.04)


def row_dir(args, dataset, variant):
  """The directory of a row's runs; a --train_steps override gets directories of its own."""
  name = variant + (f"_{args.train_steps}steps" if args.train_steps else "")
  return os.path.join(args.root, dataset, name)


def run_dir(args, dataset, variant, seed):
  """WORKDIR of one run."""
  return os.path.join(row_dir(args, dataset, variant), f"seed{seed}")


def final_metrics_path(args, dataset, variant, seed):
  """Written by train.py at the end of a run: its presence marks the run done."""
  return os.path.join(run_dir(args, dataset, variant, seed), "eval", "final_metrics.json")


def run_program(dataset, variant, seeds, args):
  """Trains one row's seeds as one --seeds program unless done (or --table_only); returns each run's
  final metrics + the program's seconds per run ([] for an unfinished program under --table_only)."""
  workdir = os.path.join(row_dir(args, dataset, variant), "program_" + "_".join(map(str, seeds)))
  timing = os.path.join(workdir, "wall_seconds.json")
  finals = [os.path.join(workdir, f"seed_{s}", "eval", "final_metrics.json") for s in seeds]
  if not all(os.path.exists(f) for f in finals):
    if args.table_only:
      return []
    train(dataset, variant, f"--seeds={','.join(map(str, seeds))}", workdir, timing, len(seeds), args)
  return [_final(path, timing) for path in finals]


def train(dataset, variant, seed_flag: str, workdir: str, timing: str, runs: int, args):
  """`run.py --flagfile=<dataset's> <variant's flags> seed_flag --workdir=workdir`; its wall seconds per
  run (over `runs`) into `timing`."""
  cmd = [sys.executable, os.path.join(REPO, "experiments", "run.py"), f"--flagfile={BASE_FLAGFILES[dataset]}",
         *VARIANTS[variant][1], seed_flag, f"--workdir={workdir}"]
  if args.train_steps:
    cmd.append(f"--train_steps={args.train_steps}")
  print(" ".join(cmd[1:]), flush=True)
  t = time.time()
  subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
  with open(timing, "w") as f:
    json.dump({"seconds": (time.time() - t) / runs}, f)


def _final(done, timing):
  with open(done) as f:
    out = json.load(f)
  for key, value in out.pop("nonfinite", {}).items():  # strict JSON writes inf as null and names it here
    out[key] = float(value)
  if os.path.exists(timing):
    with open(timing) as f:
      out.update(json.load(f))
  return out


def run_one(dataset, variant, seed, args):
  """Trains one (dataset, variant, seed) unless done; returns its final metrics + seconds."""
  workdir = run_dir(args, dataset, variant, seed)
  done = final_metrics_path(args, dataset, variant, seed)
  timing = os.path.join(workdir, "wall_seconds.json")
  if not os.path.exists(done):
    train(dataset, variant, f"--seed={seed}", workdir, timing, 1, args)
  return _final(done, timing)


def row_results(dataset, variant, seeds, args):
  """The final metrics of a row's finished (or now trained) runs: one --seeds program, or --processes."""
  if not args.processes:
    return run_program(dataset, variant, seeds, args)
  return [run_one(dataset, variant, seed, args) for seed in seeds
          if not args.table_only or os.path.exists(final_metrics_path(args, dataset, variant, seed))]


def mean_se(values):
  v = np.asarray(values, np.float64)
  se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
  return v.mean(), se


def table(dataset, rows, num_modes, train_steps):
  steps = f"{train_steps} steps" if train_steps else f"the steps of {BASE_FLAGFILES[dataset]}"
  lines = [f"### {dataset} ({num_modes} modes, {steps})", "",
           "| variant | what | seeds | modes | high quality % | reverse KL | s/run |",
           "|---|---|---|---|---|---|---|"]
  for variant, results in rows:
    m, hq, kl = (mean_se([r[k] for r in results]) for k in ("modes", "high_quality", "reverse_kl"))
    secs = np.median([r.get("seconds", np.nan) for r in results])
    lines.append(f"| {variant} | {VARIANTS[variant][0]} | {len(results)} | {m[0]:.1f} +- {m[1]:.1f} "
                 f"| {100 * hq[0]:.1f} +- {100 * hq[1]:.1f} | {kl[0]:.3f} +- {kl[1]:.3f} | {secs:.0f} |")
  if dataset == "grid":
    lines.append(f"| PacGAN4 (Lin et al. 2018, Table 1) | anchor | 5 | {PACGAN4_GRID[0]} "
                 f"| {100 * PACGAN4_GRID[1]:.1f} | {PACGAN4_GRID[2]} | |")
  return "\n".join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--datasets", default="ring,grid")
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--seeds", default="0,1,2,3,4")
  p.add_argument("--train_steps", type=int, default=0, help="override the flagfile's steps (0: keep)")
  p.add_argument("--root", default="/tmp/mode_coverage", help="workdirs of the runs")
  p.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "mode_coverage.md"))
  p.add_argument("--table_only", action="store_true", help="only tabulate the runs already done")
  p.add_argument("--processes", action="store_true", help="one process per seed instead of one --seeds program")
  args = p.parse_args()
  variants = [v.strip() for v in args.variants.split(",") if v.strip()]
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
  seeds = [int(s) for s in args.seeds.split(",")]
  sections = []
  for dataset in args.datasets.split(","):
    rows = [(v, r) for v in variants if (r := row_results(dataset, v, seeds, args))]
    if rows:
      num_modes = len(rows[0][1][0]["mode_counts"])
      sections.append(table(dataset, rows, num_modes, args.train_steps))
  command = "python benchmarks/mode_coverage.py " + " ".join(sys.argv[1:])
  text = "\n\n".join([
      "# Mode coverage: every variant on the ring and the grid",
      f"Command: `{command}`  \nMachine: {platform.machine()}, {os.cpu_count()} CPU cores, "
      f"{platform.system()}; date {time.strftime('%Y-%m-%d')}. Mean +- standard error over the seeds; "
      "2,500 samples of G (its EMA where on), PacGAN's 3-sigma protocol.", *sections])
  print(text)
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w") as f:
    f.write(text + "\n")


if __name__ == "__main__":
  main()
