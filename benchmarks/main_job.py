"""The main job's recipe search: candidate dcgan.flags recipes run for real, judged as README judges them.

  python benchmarks/main_job.py --candidates=NAME[,NAME...] [--seeds=0,1,2] [--budget_s=600]
                                [--out=benchmarks/results/main_job.md]

Each candidate is `experiments/run.py --flagfile=dcgan.flags` plus its flags (CANDIDATES), run
once per seed in a fresh workdir with nothing else running; the row holds the final digit-CNN FID
against the training digits (2,500 samples) and the classes' reverse KL from
eval/final_metrics.json, the steps reached, and the wall time of the whole command (start-up,
compilation, evaluations and checkpoints included; the compilation cache is off, as on a first
run). A run past --budget_s is marked over budget. Rows are appended to the table (the losers
stay), under a header naming the machine and the command.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CANDIDATES = {
    # The recipe before the search: width 64, 2,000 steps, EMA 0.995.
    "baseline_w64_2k": ["--width=64", "--train_steps=2000", "--ema_decay=0.995", "--eval_every=500",
                        "--checkpoint_every=500", "--log_every=100"],
    # A quarter of the convolution work per step buys four times the steps; a longer EMA.
    "w32_8k_ema999": ["--width=32", "--train_steps=8000", "--ema_decay=0.999", "--eval_every=2000",
                      "--checkpoint_every=2000", "--log_every=500"],
    "w32_8k_ema999_cosine": ["--width=32", "--train_steps=8000", "--ema_decay=0.999", "--lr_schedule=cosine",
                             "--eval_every=2000", "--checkpoint_every=2000", "--log_every=500"],
    "w32_8k_ema999_ttur": ["--width=32", "--train_steps=8000", "--ema_decay=0.999", "--lr_d=4e-4", "--lr_g=1e-4",
                           "--eval_every=2000", "--checkpoint_every=2000", "--log_every=500"],
    "w32_8500_ttur": ["--width=32", "--train_steps=8500", "--ema_decay=0.999", "--lr_d=4e-4", "--lr_g=1e-4",
                      "--eval_every=2500", "--checkpoint_every=2500", "--log_every=500"],
    "w32_8500_ema9995": ["--width=32", "--train_steps=8500", "--ema_decay=0.9995", "--eval_every=2500",
                         "--checkpoint_every=2500", "--log_every=500"],
    "w48_5k_ema999": ["--width=48", "--train_steps=5000", "--ema_decay=0.999", "--eval_every=1000",
                      "--checkpoint_every=1000", "--log_every=500"],
}


def run_candidate(name: str, seed: int, budget_s: float, keep: str = "") -> dict:
  """One run in a fresh workdir (kept under `keep`/NAME_seedS if given, else deleted)."""
  flags = CANDIDATES[name]
  with tempfile.TemporaryDirectory() as tmp:
    work = os.path.join(keep, f"{name}_seed{seed}") if keep else os.path.join(tmp, "w")
    command = [sys.executable, os.path.join(REPO, "experiments", "run.py"), "--flagfile=dcgan.flags", *flags,
               f"--seed={seed}", f"--workdir={work}", "--compilation_cache="]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
      return {"name": name, "seed": seed, "error": result.stderr.strip().splitlines()[-1][:200], "wall": wall}
    with open(os.path.join(work, "eval", "final_metrics.json")) as f:
      final = json.load(f)
  return {"name": name, "seed": seed, "fid": final["fid"], "class_reverse_kl": final["class_reverse_kl"],
          "steps": final["step"], "wall": wall, "over": wall > budget_s}


def row(r: dict) -> str:
  flags = " ".join(CANDIDATES[r["name"]]) or "(none)"
  if "error" in r:
    return f"| {r['name']} | {r['seed']} | failed: {r['error']} | | | {r['wall']:.0f} | {flags} |"
  mark = " (over budget)" if r["over"] else ""
  return (f"| {r['name']} | {r['seed']} | {r['fid']:.2f} | {r['class_reverse_kl']:.4f} | {r['steps']} | "
          f"{r['wall']:.0f}{mark} | {flags} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--candidates", required=True)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--budget_s", type=float, default=600.0)
  parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "main_job.md"))
  parser.add_argument("--keep", default="", help="Keep each run's workdir under this folder (default: deleted).")
  args = parser.parse_args()
  names = args.candidates.split(",")
  unknown = [n for n in names if n not in CANDIDATES]
  if unknown:
    sys.exit(f"error: --candidates: unknown {unknown}; known: {', '.join(CANDIDATES)}")
  header = (f"\n## {datetime.date.today()}: {platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}), "
            f"budget {args.budget_s:.0f} s\n\n`python benchmarks/main_job.py --candidates={args.candidates} "
            f"--seeds={args.seeds}`\n\n| candidate | seed | FID (digit CNN) | classes reverse KL | steps | wall s | "
            "flags beyond dcgan.flags |\n|---|---|---|---|---|---|---|\n")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "a") as f:
    f.write(header)
  for name in names:
    for seed in (int(s) for s in args.seeds.split(",")):
      r = run_candidate(name, seed, args.budget_s, args.keep)
      print(row(r), flush=True)
      with open(args.out, "a") as f:
        f.write(row(r) + "\n")


if __name__ == "__main__":
  main()
