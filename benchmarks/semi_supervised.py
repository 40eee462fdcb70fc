"""Semi-supervised MNIST with a GAN (Salimans et al. 2016, Table 1) on the embedded digits, one table.

  python benchmarks/semi_supervised.py [--rows=NAME,...|--rows=] [--seeds=N] [--root=/tmp/semi_supervised]
      [--output=benchmarks/results/semi_supervised.md]

Each row is `experiments/run.py --flagfile=semi_supervised.flags <its flags> --seed=S` for seeds 0 .. N-1
(the row's own count unless --seeds), in ROOT/DIGEST/ROW/seedS. A finished run's figures are
kept in benchmarks/results/semi_supervised_runs.jsonl under a key naming the row, the seed and a digest of
the flagfile's flags (comments aside), and a kept run is not run again, so the table grows a few rows a
session, outlives its run directories, and holds every kept run of the flagfile as it stands.

Rows: `gan<N>`, the K+1-class D with N labels (N/10 per class) beside the GAN game on all 4,000 training
digits; `classifier<N>`, the same D, optimiser, steps and seeds with --unlabeled_weight=0 (a plain
classifier of the same N labels, with the same noise layers, weight normalisation and shifts) and its rate
decayed to 0 by a cosine (--lr_schedule=cosine); `classifier_all_labels`, that classifier on all 4,000
labels (the full-label ceiling); `dcgan_gan100`, `dcgan_classifier100`, `dcgan_classifier_all_labels`: the
same three with our DCGAN D (DCGAN_FLAGS, 2,000 iterations); `dcgan_gan100_cosine_8e-4` (DCGAN_RECIPE, what
experiments/semi_supervised_dcgan.flags runs), `dcgan_classifier100_8e-4` and `dcgan_classifier_all_labels_8e-4`:
those three with both rates at 8e-4, cosine-decayed. SUPERSEDED rows, the same classifiers at the
GAN's constant rate (`supervised<N>`, `all_labels`: two of 14 runs fitted their labels to a loss of ~1e-6
and then diverged to chance), and the tries `gan100_11k`, `dcgan_gan100_cosine`, `dcgan_gan100_cosine_4e-4`
are printed as kept but not run unless named. The number is the final checkpoint's errors on the 1,000
held-out digits (never trained on; no checkpoint is chosen by them). The published row is Salimans et al.'s
(errors of 10,000 test digits, with all 60,000 training digits unlabelled). Runs go one at a time (each uses
both cores), so the wall times are those of quiet runs; a kept run's note says otherwise.
"""
import argparse
import collections
import hashlib
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
FLAGFILE = os.path.join(REPO, "experiments", "semi_supervised.flags")
RUNS = os.path.join(REPO, "benchmarks", "results", "semi_supervised_runs.jsonl")
FIGURES = ("held_out_errors", "held_out_accuracy", "step", "wall_s")
LABELS = (20, 50, 100, 200)  # Salimans et al.'s Table 1 columns
Row = collections.namedtuple("Row", "what labels flags seeds")
# The baseline: D alone on its labels, its rate cosine-decayed (the GAN's constant rate let it diverge).
PLAIN, PLAIN_FLAGS = ("the same D as a plain classifier (--unlabeled_weight=0), cosine-decayed rate",
                      ("--unlabeled_weight=0", "--lr_schedule=cosine"))
# Our DCGAN D (width 32) as the K+1-class classifier, G by feature matching, 2,000 steps (~505 s on one CPU of
# the Xeon VM at batch 100; 3,500 gained ~1 point on two seeds, semi_supervised.md). DCGAN's own Adam (2e-4,
# epsilon outside the root); the flagfile's instance-noise schedule and D's EMA scaled to the run's length (held
# to 600, 0 at 1,200; an EMA of ~100 iterations: the flagfile's 0.999 trailed a 2,000-iteration D by 12 points).
DCGAN_FLAGS = ("--model=dcgan", "--width=32", "--lr_g=2e-4", "--lr_d=2e-4", "--adam_eps_root_g=0",
               "--adam_eps_root_d=0", "--instance_noise_hold=600", "--instance_noise_steps=1200", "--d_ema_decay=0.99",
               "--train_steps=2000", "--eval_every=500", "--checkpoint_every=500", "--latent_distribution=normal",
               "--steps_per_call=auto")
DCGAN_PLAIN = "our DCGAN D (width 32) as a plain classifier (--unlabeled_weight=0), cosine-decayed rate"
ROWS = {
    **{f"gan{n}": Row("semi-supervised GAN (K+1-class D, feature matching)", n, (f"--labeled_examples={n}",),
                      5 if n == 100 else 3) for n in LABELS},
    **{f"supervised{n}": Row("the same D as a plain classifier (--unlabeled_weight=0), constant rate", n,
                             (f"--labeled_examples={n}", "--unlabeled_weight=0"), 5 if n == 100 else 3) for n in LABELS},
    **{f"classifier{n}": Row(PLAIN, n, (f"--labeled_examples={n}", *PLAIN_FLAGS), 5 if n == 100 else 3)
       for n in LABELS},
    # The 10-minute budget: the flagfile's recipe in 11,000 iterations, its instance noise held to 4,000 and 0 at
    # 7,000 (the flagfile's 17,000 / 5,000 / 10,000 took 854 s on a quiet run of the 2-core Xeon VM).
    "gan100_11k": Row("semi-supervised GAN, 11,000 iterations (instance noise held to 4,000, 0 at 7,000)", 100,
                      ("--labeled_examples=100", "--train_steps=11000", "--instance_noise_hold=4000",
                       "--instance_noise_steps=7000"), 5),
    "dcgan_gan100": Row("our DCGAN D (width 32) as the K+1-class D, feature matching", 100,
                        ("--labeled_examples=100", *DCGAN_FLAGS), 3),
    "dcgan_gan100_cosine": Row("our DCGAN D (width 32) as the K+1-class D, feature matching, its rates cosine-decayed",
                               100, ("--labeled_examples=100", *DCGAN_FLAGS, "--lr_schedule=cosine"), 5),
    "dcgan_gan100_cosine_4e-4": Row("our DCGAN D (width 32) as the K+1-class D, feature matching, its rates 4e-4 "
                                    "cosine-decayed", 100, ("--labeled_examples=100", *DCGAN_FLAGS,
                                                            "--lr_schedule=cosine", "--lr_g=4e-4", "--lr_d=4e-4"), 5),
    "dcgan_gan100_cosine_8e-4": Row("our DCGAN D (width 32) as the K+1-class D, feature matching, its rates 8e-4 "
                                    "cosine-decayed", 100, ("--labeled_examples=100", *DCGAN_FLAGS,
                                                            "--lr_schedule=cosine", "--lr_g=8e-4", "--lr_d=8e-4"), 5),
    "dcgan_classifier100": Row(DCGAN_PLAIN, 100, ("--labeled_examples=100", *DCGAN_FLAGS, *PLAIN_FLAGS), 3),
    "dcgan_classifier_all_labels": Row(DCGAN_PLAIN + ", every label (the ceiling)", 4000,
                                       ("--labeled_examples=4000", *DCGAN_FLAGS, *PLAIN_FLAGS), 3),
    "dcgan_classifier100_8e-4": Row(DCGAN_PLAIN + ", rate 8e-4", 100,
                                    ("--labeled_examples=100", *DCGAN_FLAGS, *PLAIN_FLAGS, "--lr_g=8e-4", "--lr_d=8e-4"),
                                    5),
    "dcgan_classifier_all_labels_8e-4": Row(DCGAN_PLAIN + ", rate 8e-4, every label (the ceiling)", 4000,
                                            ("--labeled_examples=4000", *DCGAN_FLAGS, *PLAIN_FLAGS, "--lr_g=8e-4",
                                             "--lr_d=8e-4"), 3),
    "all_labels": Row("the same D as a plain classifier, every label (the ceiling), constant rate", 4000,
                      ("--labeled_examples=4000", "--unlabeled_weight=0"), 3),
    "classifier_all_labels": Row(PLAIN + ", every label (the ceiling)", 4000,
                                 ("--labeled_examples=4000", *PLAIN_FLAGS), 3),
}
# The row experiments/semi_supervised_dcgan.flags runs (tests/test_benchmarks.py holds the two to the same flags).
DCGAN_RECIPE = "dcgan_gan100_cosine_8e-4"
# Printed from their kept runs, not grown unless named: the constant-rate classifiers the cosine-decayed ones
# replaced, and session 30's tries that did not become rows of their own.
SUPERSEDED = (*(f"supervised{n}" for n in LABELS), "all_labels", "gan100_11k", "dcgan_gan100_cosine",
              "dcgan_gan100_cosine_4e-4")
# Salimans et al. 2016, Table 1 ("Our model"): errors of the 10,000 MNIST test digits, mean +- std over 10 seeds.
PUBLISHED = {20: (1677, 452), 50: (221, 136), 100: (93, 6.5), 200: (90, 4.2)}


def flags_digest(path: str) -> str:
  """12 hex digits of sha256 over the flagfile's flag lines (comments and blank lines aside)."""
  with open(path) as f:
    flags = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
  return hashlib.sha256("\n".join(flags).encode()).hexdigest()[:12]


def run_one(name: str, seed: int, root: str, only_kept: bool = False):
  """One run's kept figures (FIGURES, date, machine), training it under `root` first if RUNS lacks it (with
  `only_kept`, the kept figures or None)."""
  digest = flags_digest(FLAGFILE)
  key = f"{name}/{digest}/seed{seed}"
  kept = kept_runs(RUNS).get(key)
  if kept or only_kept:
    return kept
  row = ROWS[name]  # The workdir names the digest too: a run of an older flagfile is not taken for this one's.
  result = run_once(["--flagfile=experiments/semi_supervised.flags", *row.flags, f"--seed={seed}"],
                    os.path.join(root, digest, name, f"seed{seed}"), f"{name} seed {seed}")
  return keep_run(RUNS, key, {k: result[k] for k in FIGURES})


def _stat(values, digits: int) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.{digits}f} +- {values.std(ddof=1) if len(values) > 1 else 0:.{digits}f}"


def table_row(name: str, results) -> str:
  row = ROWS[name]
  errors = [r["held_out_errors"] for r in results]
  accuracy = [100 * r["held_out_accuracy"] for r in results]
  walls = ", ".join(f"{r['wall_s']:.0f}" + (f" ({r['note']})" if r.get("note") else "") for r in results)
  return (f"| {row.what} | {row.labels} | {len(results)} | {_stat(errors, 1)} | {_stat(accuracy, 2)} | "
          f"{', '.join(map(str, errors))} | {walls} | ours |")


def write_table(path: str, lines, command: str):
  published = [f"| Salimans et al. 2016 (10,000 test digits, 60,000 unlabelled) | {n} | 10 | {m} +- {s} (of 10,000) "
               f"| {100 - m / 100:.2f} | | | published: Table 1 |" for n, (m, s) in PUBLISHED.items()]
  header = (f"## {time.strftime('%Y-%m-%d')}: {platform.node()} ({os.cpu_count()} CPUs)\n\n`{command}`\n\n"
            "| D | labels | runs | held-out errors (of 1,000) | accuracy % | errors per seed | wall s per run | "
            "source |\n|---|---|---|---|---|---|---|---|\n")
  with open(path, "w") as out:
    out.write(header + "\n".join([*lines, *published]) + "\n")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", default=",".join(n for n in ROWS if n not in SUPERSEDED))
  parser.add_argument("--seeds", type=int, default=0, help="runs per row (0: the row's own count)")
  parser.add_argument("--root", default="/tmp/semi_supervised")
  parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "semi_supervised.md"))
  args = parser.parse_args()
  names = [n for n in args.rows.split(",") if n]  # --rows= : no runs, the table of what is finished
  unknown = [n for n in names if n not in ROWS]
  if unknown:
    sys.exit(f"error: --rows: unknown {unknown}; known: {', '.join(ROWS)}")
  for name in names:
    for seed in range(args.seeds or ROWS[name].seeds):
      run_one(name, seed, args.root)
  by_row = {n: [r for s in range(10) if (r := run_one(n, s, args.root, only_kept=True))] for n in ROWS}
  command = "python benchmarks/semi_supervised.py " + " ".join(sys.argv[1:])
  write_table(args.output, [table_row(n, rs) for n, rs in by_row.items() if rs], command)
  print(open(args.output).read())


if __name__ == "__main__":
  main()
