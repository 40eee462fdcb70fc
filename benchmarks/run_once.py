"""One `experiments/run.py` training run for a benchmark table, run at most once: its result is kept.

`run_once(flags, workdir)` runs `run.py <flags> --workdir=WORKDIR --compilation_cache=` unless
WORKDIR/eval/final_metrics.json exists, times it into WORKDIR/wall.json, and returns the final metrics
with `wall_s` (nan for a run finished before timing was kept). The tables that use it grow a few rows a
session: a killed table resumes at its first unfinished run. Imports no JAX (the run is a subprocess
that inherits the caller's XLA_FLAGS, so callers configure JAX as the entry points do first).

Run directories do not survive a machine change; a table whose rows must outlive them keeps each finished
run's figures in a committed JSON-lines file (`kept_runs` / `keep_run`), one line per run key.
"""
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(flags, workdir: str, label: str) -> dict:
  """Final metrics (and wall_s) of `run.py flags` in `workdir`; `label` names the run in an error."""
  final, timing = os.path.join(workdir, "eval", "final_metrics.json"), os.path.join(workdir, "wall.json")
  if not os.path.exists(final):
    args = [*flags, f"--workdir={workdir}", "--compilation_cache="]
    print(" ".join(["run.py", *args]), flush=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "run.py"), *args], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode:
      raise RuntimeError(f"{label}: {done.stderr.strip().splitlines()[-1]}")
    with open(timing, "w") as f:
      json.dump({"wall_s": time.perf_counter() - start}, f)
  with open(final) as f:
    result = json.load(f)
  wall = json.load(open(timing)) if os.path.exists(timing) else {"wall_s": float("nan")}
  return {**result, **wall}


def kept_runs(path: str) -> dict:
  """{key: record} from the JSON-lines file at `path` (empty if there is none); a later line wins."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {r["key"]: r for r in map(json.loads, filter(str.strip, f))}


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo's first 'model name'; the platform's processor string elsewhere):
  the VMs a table is grown on change between sessions, and so do their speeds."""
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor() or "unknown CPU"


def keep_run(path: str, key: str, figures: dict) -> dict:
  """Appends {key, figures..., date, machine} to `path` unless `key` is there already; the kept record."""
  kept = kept_runs(path)
  if key not in kept:
    kept[key] = {"key": key, **figures, "date": time.strftime("%Y-%m-%d"),
                 "machine": f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs"}
    with open(path, "a") as f:
      f.write(json.dumps(kept[key]) + "\n")
  return kept[key]
