"""Stacked MNIST, the literature's mode-collapse benchmark on images (PacGAN Tables 2 and 3), one table.

  python benchmarks/stacked_mnist.py [--rows=NAME,...] [--seeds=N] [--papers_lengths]
      [--root=/tmp/stacked_mnist] [--output=benchmarks/results/stacked_mnist.md]

Each row is `experiments/run.py --flagfile=<its flagfile> <its flags> --seed=S` for seeds 0 .. N-1 (the
row's own count unless --seeds), in a workdir of its own under --root; a run whose eval/final_metrics.json
exists is not run again, so the table grows a few rows at a time. Each finished run's figures are kept in
RUNS (benchmarks/results/stacked_mnist_runs.jsonl, committed: run directories do not outlive a machine), and
the table is written from every run kept there, whichever machine ran it (a wall time is a quiet run's unless
its record's note says what ran beside it). On this CPU every row trains for its
`steps`, the iterations that fit the per-run budget (BUDGET_MINUTES, measured: the rows' rates in
benchmarks/results/stacked_mnist.md); --papers_lengths trains the papers' lengths instead (100,000 and
500,000 iterations: a GPU's job). The final G_ema draws the row's evaluation samples (26,000; 25,600 in the
Unrolled GAN setting), each channel read by the shipped digit CNN (gan_jax/metrics/stacked.py). The
'floor' row is the metric on 26,000 real triples of the 1,000 held-out digits, at the same N with the
same classifier: what a perfect G would score. Published rows are copied from the papers and marked.
Runs go one at a time (each uses both cores), so the wall times are those of quiet runs.
"""
import argparse
import collections
import os
import platform
import sys
import time

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do (their run.py subprocesses inherit XLA_FLAGS).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_once import keep_run, kept_runs, run_once  # noqa: E402
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(REPO, "benchmarks", "results", "stacked_mnist_runs.jsonl")
FIGURES = ("stacked_modes", "stacked_modes_any", "stacked_kl", "step", "wall_s")
BUDGET_MINUTES = 15
Row = collections.namedtuple("Row", "setting what flagfile flags steps papers_steps seeds")
VEEGAN, QUARTER = "VEEGAN setting (PacGAN Table 2)", "Unrolled GAN setting, D = 1/4 G (PacGAN Table 3)"
ROWS = {
    "dcgan_veegan": Row(VEEGAN, "DCGAN (PacGAN's nets)", "stacked_mnist_veegan.flags", (), 2000, 100_000, 3),
    "pacdcgan2_veegan": Row(VEEGAN, "PacDCGAN2", "stacked_mnist_veegan.flags", ("--pack=2",), 2000, 100_000, 3),
    "ours": Row(VEEGAN, "our recipe (stacked_mnist.flags)", "stacked_mnist.flags", (), None, None, 5),
    "dcgan_quarter": Row(QUARTER, "DCGAN (the paper's small nets)", "stacked_mnist_unrolled.flags", (), 20000,
                         500_000, 3),
    "pacdcgan2_quarter": Row(QUARTER, "PacDCGAN2", "stacked_mnist_unrolled.flags", ("--pack=2",), 20000, 500_000, 3),
    "ours_quarter": Row(QUARTER, "our recipe's tricks on the small nets", "stacked_mnist_unrolled.flags",
                        ("--pack=2", "--ema_decay=0.999", "--lr_schedule=cosine", "--lr_g=2e-4"), 20000, 500_000, 5),
    # Issue 26's rows: unrolling costs 2x (K = 5) and 3.3x (K = 10) per iteration on these nets (25.5, 12.8
    # and 7.7 it/s at K = 0, 5, 10), so the same budget trains fewer iterations.
    "unrolled5_quarter": Row(QUARTER, "Unrolled GAN, 5 unrolling steps", "stacked_mnist_unrolled.flags",
                             ("--unroll_steps=5",), 8000, 500_000, 3),
    "unrolled10_quarter": Row(QUARTER, "Unrolled GAN, 10 unrolling steps", "stacked_mnist_unrolled.flags",
                              ("--unroll_steps=10",), 6000, 500_000, 3),
}
# (setting, what, modes, +-, KL, +-, source): published, 100,000 (VEEGAN) / 500,000 (D = 1/4 G) iterations.
PUBLISHED = [
    (VEEGAN, "DCGAN", 78.9, 6.46, 4.50, 0.127, "PacGAN Table 2, 10 runs"),
    (VEEGAN, "PacDCGAN2", 1000.0, 0.00, 0.06, 0.003, "PacGAN Table 2, 10 runs"),
    (QUARTER, "DCGAN", 78.5, None, 5.21, None, "PacGAN Table 3 (the Unrolled GAN paper's)"),
    (QUARTER, "Unrolled GAN, 5 unrolling steps", 236.4, None, None, None, "the Unrolled GAN paper, as issue 26 "
     "cites it (its KL not cited)"),
    (QUARTER, "Unrolled GAN, 10 unrolling steps", 327.2, None, 4.66, None, "PacGAN Table 3 (the Unrolled GAN paper's)"),
    (QUARTER, "PacDCGAN4", 667.4, None, 1.81, None, "PacGAN Table 3, 50 runs"),
]


def run_one(name: str, seed: int, root: str, papers: bool) -> dict:
  """One run's kept figures (FIGURES, date, machine), training it under `root` first if RUNS lacks it."""
  row = ROWS[name]
  steps = row.papers_steps if papers else row.steps
  key = f"{name}/{steps or 'flagfile'}/seed{seed}"
  kept = kept_runs(RUNS).get(key)
  if kept:
    return kept
  flags = [f"--flagfile={row.flagfile}", *row.flags, f"--seed={seed}"]
  if steps:
    every = max(steps // 4, 1)
    flags += [f"--train_steps={steps}", f"--eval_every={every}", f"--checkpoint_every={every}"]
  workdir = os.path.join(root, f"{name}_{steps or 'flagfile'}steps", f"seed{seed}")
  result = run_once(flags, workdir, f"{name} seed {seed}")
  return keep_run(RUNS, key, {k: result[k] for k in FIGURES})


def floor(samples: int = 26_000) -> dict:
  """The metric on `samples` real triples of the held-out digits (the digit CNN never saw them)."""
  from gan_jax.data.stacked import StackedDigits
  from gan_jax.metrics import stacked
  batch = StackedDigits("test", 28, seed=0).get_batch(0, samples)
  return stacked.mode_metrics(stacked.channel_digits(batch["x"]))


def _stat(values, digits: int) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.{digits}f} +- {values.std(ddof=1) if len(values) > 1 else 0:.{digits}f}"


def table_row(name: str, results) -> str:
  row = ROWS[name]
  walls = ", ".join(f"{r['wall_s']:.0f}" + (f" ({r['note']})" if r.get("note") else "") for r in results)
  return (f"| {row.setting} | {row.what} | {len(results)} | {_stat([r['stacked_modes'] for r in results], 1)} | "
          f"{_stat([r['stacked_modes_any'] for r in results], 1)} | {_stat([r['stacked_kl'] for r in results], 3)} | "
          f"{results[0]['step']} | {walls} | ours |")


def kept_rows() -> list:
  """[(row name, [kept runs of one length, by seed])] in ROWS' order, a row per length it was run at."""
  groups = collections.defaultdict(list)
  for key, record in sorted(kept_runs(RUNS).items(), key=lambda kv: int(kv[0].rsplit("seed", 1)[1])):
    name, steps, _ = key.split("/")
    groups[(name, steps)].append(record)
  return [(name, runs) for name in ROWS for (n, _), runs in groups.items() if n == name]


def write_table(path: str, lines, command: str):
  published = [f"| {s} | {w} | | | {m} +- {dm if dm is not None else '?'} | "
               f"{f'{k} +- ' + (str(dk) if dk is not None else '?') if k is not None else '?'} | papers' | | "
               f"published: {src} |" for s, w, m, dm, k, dk, src in PUBLISHED]
  f = floor()
  header = (f"## {time.strftime('%Y-%m-%d')}: {platform.node()} ({os.cpu_count()} CPUs)\n\n`{command}`\n\n"
            "| setting | GAN | runs | modes (>= 1/4 share) | modes (>= 1 sample) | KL(p \\|\\| uniform) | steps | "
            "wall s per run | source |\n|---|---|---|---|---|---|---|---|---|\n")
  floor_line = (f"| both | real triples of the held-out digits (the floor, N = 26,000) | 1 | {f['stacked_modes']} | "
                f"{f['stacked_modes_any']} | {f['stacked_kl']:.3f} | | | ours |")
  with open(path, "w") as out:
    out.write(header + "\n".join([*lines, floor_line, *published]) + "\n")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--seeds", type=int, default=0, help="runs per row (0: the row's own count)")
  parser.add_argument("--papers_lengths", action="store_true")
  parser.add_argument("--root", default="/tmp/stacked_mnist")
  parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "stacked_mnist_table.md"))
  args = parser.parse_args()
  names = args.rows.split(",")
  unknown = [n for n in names if n not in ROWS]
  if unknown:
    sys.exit(f"error: --rows: unknown {unknown}; known: {', '.join(ROWS)}")
  for name in names:
    for seed in range(args.seeds or ROWS[name].seeds):
      run_one(name, seed, args.root, args.papers_lengths)
  command = "python benchmarks/stacked_mnist.py " + " ".join(sys.argv[1:])
  write_table(args.output, [table_row(n, runs) for n, runs in kept_rows()], command)
  print(open(args.output).read())


if __name__ == "__main__":
  main()
