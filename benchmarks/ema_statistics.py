"""Which batch-norm statistics should G_ema sample with? The main job each way, by held-out FID.

  python benchmarks/ema_statistics.py [--seeds=0,1,2] [--root=/tmp/ema_statistics] [--samples=1000]
      [--out=benchmarks/results/ema_statistics.md]

G_ema is an average of G's weights, but its batch norm needs statistics too: `running` pairs it
with the training G's running averages (gan-jax before this choice), `ema` with their EMA at the
same decay (kept in the state), `standing` recomputes them for G_ema's own weights from 20 batches
(BigGAN's standing statistics). Tracking the EMA does not change what G and D train, so one run of
`dcgan.flags --ema_statistics=ema` per seed serves all three: its final checkpoint is sampled each
way (the same --samples latents), and the FID of those samples against the 1,000 held-out mnist5k
digits (never trained on) is computed on the shipped digit CNN's features. Runs whose
eval/final_metrics.json exists are not run again. (Rows before 2026-12-05 ran dcgan.flags as it was then: D as
wide as G, 7,000 steps.)
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do, before JAX starts.
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("running", "ema", "standing")


def train(seed: int, root: str) -> str:
  workdir = os.path.join(root, f"seed_{seed}")
  if not os.path.exists(os.path.join(workdir, "eval", "final_metrics.json")):
    command = [sys.executable, os.path.join(REPO, "experiments", "run.py"), "--flagfile=dcgan.flags",
               f"--seed={seed}", f"--workdir={workdir}", "--ema_statistics=ema"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  return workdir


def held_out_fids(workdir: str, samples: int) -> dict:
  """{mode: FID of `samples` G_ema samples against the held-out digits} from the final checkpoint."""
  import dataclasses

  from gan_jax import data, generate, restore
  from gan_jax.metrics import digits, frechet
  cfg, nets, state, _, _ = restore.load_run(workdir)
  held = data.make_dataset(dataclasses.replace(cfg, dataset="mnist5k:test"))
  _, real = digits.logits_and_features(held.get_batch(0, held.num_examples)["x"])
  out = {}
  for mode in MODES:
    sampling = generate.sampling_state(nets, state, mode, cfg.batch_size, cfg.seed)
    _, fake = digits.logits_and_features(generate.generate_samples(nets, sampling, samples, seed=1))
    out[mode] = frechet.fid(fake, real)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--root", default="/tmp/ema_statistics")
  parser.add_argument("--samples", type=int, default=1000)
  parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "ema_statistics.md"))
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  rows = {seed: held_out_fids(train(seed, args.root), args.samples) for seed in seeds}
  lines = [f"\n## {datetime.date.today()}: {platform.node()} ({os.cpu_count()} CPUs)\n",
           f"`python benchmarks/ema_statistics.py --seeds={args.seeds} --samples={args.samples}`: FID of "
           f"{args.samples} G_ema samples of `dcgan.flags` (final checkpoint) against the 1,000 held-out digits, "
           "digit-CNN features; lower is better.\n", "| statistics | " + " | ".join(f"seed {s}" for s in seeds)
           + " | mean +- std |", "|---|" + "---|" * (len(seeds) + 1)]
  for mode in MODES:
    values = np.array([rows[s][mode] for s in seeds])
    lines.append(f"| {mode} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {values.mean():.2f} +- "
                 f"{values.std(ddof=1) if len(values) > 1 else 0:.2f} |")
  text = "\n".join(lines) + "\n"
  print(text)
  with open(args.out, "a") as f:
    f.write(text)


if __name__ == "__main__":
  main()
