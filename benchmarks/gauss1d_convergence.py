"""Making the 1-D game of Goodfellow et al. 2014's Figure 1 converge: every try, 5 seeds each.

  python benchmarks/gauss1d_convergence.py [--tries=NAME,...] [--seeds=5] [--root=/tmp/gauss1d]
      [--output=benchmarks/results/gauss1d_convergence.md]

Each try is `experiments/run.py --flagfile=gauss1d.flags <its flags> --seed=S`; a run whose
eval/final_metrics.json exists is not run again (the table grows a few tries at a time). Read from the
final evaluation: jsd (JSD(p_data || p_g) of G_ema, a kernel estimate on 20,000 samples) and d_deviation
(max |D(x) - 1/2| on mu +- 3 sigma). The goal (issue 26): jsd <= 0.01 and d_deviation <= 0.05 on seeds
0-4, each run <= 5 minutes on a 2-core CPU. The paper's setting is kept: z ~ U[-1, 1], an MLP G.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do (their run.py subprocesses inherit XLA_FLAGS).

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIFORM = ("--latent_distribution=uniform",)
TRIES = {  # name -> (flags, what it tests)
    "main": ((), "gauss1d.flags before this issue (z ~ N(0, 1))"),
    "uniform": (UNIFORM, "z ~ U[-1, 1] as in the paper, nothing else changed"),
    "k5": (UNIFORM + ("--d_steps=5",), "k = 5 D steps per G step (Algorithm 1's k), D nearer D*"),
    "k5_long": (UNIFORM + ("--d_steps=5", "--train_steps=12000"), "k = 5, 3x the iterations"),
    "k5_lr1e3": (UNIFORM + ("--d_steps=5", "--lr_d=1e-3", "--lr_g=1e-3", "--train_steps=12000"),
                 "k = 5, learning rates 1e-3 with the cosine decay to 0"),
    "unroll5": (UNIFORM + ("--unroll_steps=5", "--train_steps=12000"), "G unrolled through 5 D updates"),
}


def run_try(name: str, seed: int, root: str) -> dict:
  flags, _ = TRIES[name]
  workdir = os.path.join(root, name, f"seed{seed}")
  final, timing = os.path.join(workdir, "eval", "final_metrics.json"), os.path.join(workdir, "wall.json")
  if not os.path.exists(final):
    args = ["--flagfile=gauss1d.flags", *flags, f"--seed={seed}", f"--workdir={workdir}", "--compilation_cache="]
    print(" ".join(["run.py", *args]), flush=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "run.py"), *args], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode:
      raise RuntimeError(f"{name} seed {seed}: {done.stderr.strip().splitlines()[-1]}")
    with open(timing, "w") as f:
      json.dump({"wall_s": time.perf_counter() - start}, f)
  with open(final) as f, open(timing) as g:
    return {**json.load(f), **json.load(g)}


def table_row(name: str, results: list) -> str:
  jsd = [r["jsd"] for r in results]
  dev = [r.get("d_deviation", float("nan")) for r in results]
  met = sum(j <= 0.01 and d <= 0.05 for j, d in zip(jsd, dev))
  walls = [r["wall_s"] for r in results]
  flags, what = TRIES[name]
  return (f"| {name} | `{' '.join(flags) or '(none)'}` | {what} | {', '.join(f'{j:.4f}' for j in jsd)} | "
          f"{', '.join(f'{d:.3f}' for d in dev)} | {met}/{len(results)} | {min(walls):.0f}-{max(walls):.0f} |")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--tries", default=",".join(TRIES))
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--root", default="/tmp/gauss1d")
  parser.add_argument("--output", default="benchmarks/results/gauss1d_convergence.md")
  args = parser.parse_args()
  names = args.tries.split(",")
  unknown = [n for n in names if n not in TRIES]
  if unknown:
    sys.exit(f"error: --tries: unknown {unknown}; known: {', '.join(TRIES)}")
  rows = [table_row(n, [run_try(n, s, args.root) for s in range(args.seeds)]) for n in names]
  with open(args.output, "w") as f:
    f.write("# Figure 1's game to convergence: every try\n\n"
            f"`python benchmarks/gauss1d_convergence.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} CPUs, one run at a time). Goal: jsd <= 0.01 and d_deviation <= 0.05 on every "
            "seed, <= 5 minutes per run.\n\n| try | flags (over gauss1d.flags) | what | final jsd, seeds 0.. | "
            "d_deviation | goal met | wall s |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
  print(open(args.output).read())


if __name__ == "__main__":
  main()
