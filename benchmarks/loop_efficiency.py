"""How much of the bare jitted step's speed the training loop keeps, on the backend at hand.

  python benchmarks/loop_efficiency.py [--configs=dcgan_small,dcgan] [--steps=N] [--json=FILE]

For each configuration: (1) the bare rate: the framework's jitted, sharded train function on device-resident data
(what `train.py` dispatches), steps per second after warm-up, the faster of waiting for every call
and dispatching 50 calls ahead;
(2) the loop's rate: `experiments/run.py` with the same flags, steady state, read from the
timestamps of its progress lines after the first (which holds start-up and compilation), with
evaluation and checkpoints only at the end; efficiency = (2) / (1), measured in the same run.
Configurations: dcgan_small (dcgan.flags --width=8 --batch_size=16), dcgan (dcgan.flags: width 32
since the main-job recipe search, G 48 and D 16 wide since 2026-12-06; results/loop_efficiency.md was
measured at width 64), and on a
GPU/TPU dcgan64_folder (a folder of 64x64 RGB PNGs, batch 128).
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from gan_jax import xla_cpu

xla_cpu.configure()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "dcgan_small": ["--flagfile=dcgan.flags", "--width=8", "--batch_size=16"],
    "dcgan": ["--flagfile=dcgan.flags"],
    "dcgan64_folder": ["--flagfile=dcgan.flags", "--resolution=64", "--batch_size=128", "--dataset=folder:{folder}"],
}
DEFAULT = {"cpu": "dcgan_small,dcgan", "accelerator": "dcgan,dcgan64_folder"}
STEPS = {"dcgan_small": (2000, 200), "dcgan": (300, 50), "dcgan64_folder": (3000, 500)}  # CPU (steps, log)
ACCELERATOR_STEPS = (4000, 500)


def write_folder(root, n=512, size=64):
  """n random RGB PNGs of size x size (a stand-in for a face or scene folder)."""
  from PIL import Image
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(n):
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(os.path.join(root, f"{i}.png"))
  return root


def config_from_args(args):
  """The Config run.py builds from these flags (no JAX computation)."""
  sys.path.insert(0, os.path.join(REPO, "experiments"))
  import run as run_py  # experiments/run.py
  from absl import flags
  if "workdir" not in flags.FLAGS:
    run_py.define_flags()
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["run.py", *run_py.resolve_flagfiles(args), "--workdir=-"])
  return run_py.config_from_flags()


def bare_rate(cfg, seconds: float = 20.0):
  """Steps per second of the jitted train function alone, on the loop's own data path."""
  import jax
  from gan_jax import sharding
  from gan_jax.data import make_dataset
  from gan_jax.data.feed import make_feed
  from gan_jax.nets import build_nets
  from gan_jax.state import init_state, make_optimizers
  from gan_jax.train_fn import steps_per_call, train_fn_from_config
  dataset = make_dataset(cfg)
  mesh = sharding.make_mesh(cfg.num_devices)
  nets = build_nets(cfg, dataset.data_shape, sharding.DATA_AXIS, dataset.num_classes)
  g_tx, d_tx = make_optimizers(cfg)
  spc = steps_per_call(cfg, jax.default_backend())
  feed = make_feed(dataset, mesh, cfg.d_steps, cfg.batch_size)
  fn = train_fn_from_config(cfg, nets, g_tx, d_tx, mesh, spc, feed.batch)
  state = jax.jit(lambda: init_state(cfg, nets, g_tx, d_tx), out_shardings=sharding.replicated_sharding(mesh))()
  bad = sharding.replicate(np.zeros((), np.int32), mesh)
  inputs = feed.inputs(0, spc)
  state, bad, _ = fn(state, bad, feed.data, inputs)  # compile
  jax.block_until_ready(state)
  rates = {}
  for sync_every in (1, 50):  # waiting for each call, and dispatching 50 calls ahead
    calls, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds / 2 or calls < 3:
      state, bad, _ = fn(state, bad, feed.data, inputs)
      calls += 1
      if calls % sync_every == 0:
        jax.block_until_ready(state)
    jax.block_until_ready(state)
    rates[sync_every] = calls * spc / (time.perf_counter() - t)
  return max(rates.values()), rates


STAMP = re.compile(r"^I(\d{4}) (\d\d:\d\d:\d\d\.\d+) .*step (\d+)/(\d+)")


def loop_rate(args, steps: int, log_every: int, workdir: str):
  """Steady-state steps/s of run.py: from the second progress line to the last."""
  cmd = [sys.executable, os.path.join(REPO, "experiments", "run.py"), *args, f"--workdir={workdir}",
         f"--train_steps={steps}", f"--log_every={log_every}", f"--eval_every={steps}",
         f"--checkpoint_every={steps}", "--eval_metrics=", "--compilation_cache="]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
  if out.returncode:
    raise RuntimeError(out.stderr[-3000:])
  marks = []
  for line in out.stderr.splitlines():
    m = STAMP.match(line)
    if m:
      t = datetime.datetime.strptime(m.group(2), "%H:%M:%S.%f")
      marks.append((int(m.group(3)), t))
  (s0, t0), (s1, t1) = marks[1], marks[-1]
  return (s1 - s0) / (t1 - t0).total_seconds(), len(marks)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--configs", default="")
  p.add_argument("--steps", type=int, default=0, help="run.py steps (default: per configuration)")
  p.add_argument("--json", default=None)
  args = p.parse_args()
  import jax
  platform = jax.default_backend()
  names = [n for n in (args.configs or DEFAULT["cpu" if platform == "cpu" else "accelerator"]).split(",") if n]
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for name in names:
      flag_args = [a.format(folder=write_folder(os.path.join(tmp, "pngs"))) if "{folder}" in a else a
                   for a in CONFIGS[name]]
      steps, log_every = ACCELERATOR_STEPS if platform != "cpu" else STEPS[name]
      steps = args.steps or steps
      cfg = config_from_args(flag_args)
      bare, bare_rates = bare_rate(cfg)
      loop, lines = loop_rate(flag_args, steps, log_every, os.path.join(tmp, name))
      rows.append({"config": name, "flags": " ".join(flag_args), "bare_steps_per_s": bare,
                   "bare_by_sync": {f"sync every {k} calls": v for k, v in bare_rates.items()},
                   "loop_steps_per_s": loop, "efficiency": loop / bare, "steps": steps, "log_every": log_every})
  print(f"device: {jax.devices()[0].device_kind} ({platform}), jax {jax.__version__}")
  print("| config | flags | bare jitted step, steps/s | run.py steady state, steps/s | efficiency |")
  print("|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['config']} | `{r['flags']}` | {r['bare_steps_per_s']:.1f} | {r['loop_steps_per_s']:.1f} | "
          f"{r['efficiency']:.3f} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"device": jax.devices()[0].device_kind, "platform": platform, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
