"""What unrolling costs: training iterations per second at --unroll_steps K = 0, 1, 5, 10, in one run.

  python benchmarks/unroll_cost.py [--unrolls=0,1,5,10] [--iters=200] [--output=benchmarks/results/unroll_cost.md]

Configurations: ring (experiments/ring_unrolled.flags' networks: MLP G 256-128-128-2, D 2-128-1, batch 512)
and the tiny DCGAN (dcgan.flags' nets at width 8, 28 px, batch 16, unconditional). Each goes through
gan-jax's own `make_train_fn` as in benchmarks/step_time.py (JAX configured as the entry points do);
one iteration = one D update and one G update whose loss differentiates through K simulated D updates.
"""
import argparse
import os
import platform
import sys
import time

from gan_jax import xla_cpu

xla_cpu.configure()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_time import jax_trainer  # noqa: E402

from gan_jax.config import Config  # noqa: E402

CONFIGS = {
    "ring": (dict(dataset="ring", model="mlp", latent_dim=256, g_hidden=(128, 128), d_hidden=(128,), batch_size=512,
                  loss="minimax"), (2,)),
    "dcgan_tiny": (dict(dataset="mnist5k", model="dcgan", resolution=28, width=8, latent_dim=16, batch_size=16),
                   (28, 28, 1)),
}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--unrolls", default="0,1,5,10")
  parser.add_argument("--iters", type=int, default=200)
  parser.add_argument("--output", default="benchmarks/results/unroll_cost.md")
  args = parser.parse_args()
  unrolls = [int(k) for k in args.unrolls.split(",")]
  rows = []
  for name, (fields, shape) in CONFIGS.items():
    base = None
    for k in unrolls:
      cfg = Config(workdir="-", num_devices=1, unroll_steps=k, **fields)
      run, compile_s, _, _ = jax_trainer(cfg, shape)
      seconds = min(run(args.iters) for _ in range(3))
      base = base or seconds
      rows.append(f"| {name} | {k} | {1 / seconds:.1f} | {seconds / base:.2f} | {compile_s:.1f} |")
      print(rows[-1], flush=True)
  import jax
  text = (f"## {time.strftime('%Y-%m-%d')}: {platform.node()}, {jax.devices()[0].device_kind} "
          f"({os.cpu_count()} CPUs)\n\n`python benchmarks/unroll_cost.py {' '.join(sys.argv[1:])}`: best of 3 "
          f"rounds of {args.iters} iterations\n\n| config | K | iterations/s | time / time at K = {unrolls[0]} | "
          "compile s |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
  with open(args.output, "w") as f:
    f.write("# Unrolled GAN: the cost of K simulated D updates\n\n" + text)
  print(text)


if __name__ == "__main__":
  main()
