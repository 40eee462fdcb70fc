"""Making the 1-D game of Goodfellow et al. 2014's Figure 1 converge: every try, 5 seeds each.

  python benchmarks/gauss1d_convergence.py [--tries=NAME,...] [--seeds=5] [--root=/tmp/gauss1d]
      [--output=benchmarks/results/gauss1d_convergence.md]

Each try is `experiments/run.py --flagfile=gauss1d.flags <its flags> --seed=S` for seeds 0 .. --seeds - 1; a
run whose results exist under --root is not run again, and each call appends to --output a section with
the tries it names and their finished seeds (a table grown a few tries at a time, whose earlier sections'
runs need not survive under --root). Read from the
final evaluation: jsd (JSD(p_data || p_g) of G_ema, a kernel estimate on 20,000 samples) and d_deviation
(max |D(x) - 1/2| on mu +- 3 sigma). The goal (issue 26): jsd <= 0.01 and d_deviation <= 0.05 on seeds
0-4, each run <= 5 minutes on a 2-core CPU. The paper's setting is kept: z ~ U[-1, 1], an MLP G.
A second estimate of the same JSD, independent of gan_jax.theory's gridded one: scipy's gaussian_kde
(Scott's bandwidth) of the final samples against N(4, 0.5^2)'s exact density, by the trapezoid rule,
computed once per run (kept in WORKDIR/scipy_jsd.json beside run_once's wall.json).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import special, stats

from gan_jax import xla_cpu
from gan_jax.data import toy

xla_cpu.configure()  # As the entry points do (their run.py subprocesses inherit XLA_FLAGS).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_once import run_once  # noqa: E402

SEEDS_SHOWN = 5  # the table shows every try's finished runs among seeds 0-4 under --root
# The tries were run over gauss1d.flags as it was before (4,000 iterations, raw data, z ~ N(0, 1), evaluations
# every 1,000, G 2 x 64, zero biases, no R1); these flags restore it, so each row keeps its meaning as the default moves.
BEFORE = ("--latent_distribution=normal", "--data_shift=0", "--data_scale=1", "--train_steps=4000",
          "--eval_every=1000", "--log_every=1000", "--checkpoint_every=1000", "--mlp_bias_init=zeros",
          "--g_hidden=64,64", "--r1_weight=0")
UNIFORM = BEFORE + ("--latent_distribution=uniform",)
STD = ("--data_shift=4", "--data_scale=2")
TRIES = {  # name -> (flags, what it tests)
    "main": (BEFORE, "gauss1d.flags before this issue (z ~ N(0, 1), raw data, 4,000 iterations)"),
    "uniform": (UNIFORM, "z ~ U[-1, 1] as in the paper, nothing else changed"),
    "k5": (UNIFORM + ("--d_steps=5",), "k = 5 D steps per G step (Algorithm 1's k), D nearer D*"),
    "k5_long": (UNIFORM + ("--d_steps=5", "--train_steps=12000"), "k = 5, 3x the iterations"),
    "k5_lr1e3": (UNIFORM + ("--d_steps=5", "--lr_d=1e-3", "--lr_g=1e-3", "--train_steps=12000"),
                 "k = 5, learning rates 1e-3 with the cosine decay to 0"),
    "unroll5": (UNIFORM + ("--unroll_steps=5", "--train_steps=12000"), "G unrolled through 5 D updates"),
    "long": (UNIFORM + ("--train_steps=20000",), "5x the iterations"),
    "long_lr1e3": (UNIFORM + ("--train_steps=20000", "--lr_d=1e-3", "--lr_g=1e-3"), "5x, learning rates 1e-3"),
    "ttur": (UNIFORM + ("--train_steps=20000", "--lr_d=1e-3", "--lr_g=2e-4"), "5x, D's rate 5x G's"),
    "batch1024": (UNIFORM + ("--train_steps=20000", "--batch_size=1024"), "5x, batch 1024"),
    "wide_g": (UNIFORM + ("--train_steps=20000", "--g_hidden=128,128,128"), "5x, G 3 x 128"),
    "maxout": (UNIFORM + ("--train_steps=20000", "--d_activation=maxout"),
               "5x, maxout D (the paper's): D went flat at 1/2 where p_g has spikes, its ReLUs dead"),
    "leaky": (UNIFORM + ("--train_steps=20000", "--d_activation=leaky_relu"), "5x, leaky-ReLU D"),
    "leaky_k5": (UNIFORM + ("--train_steps=20000", "--d_activation=leaky_relu", "--d_steps=5"),
                 "5x, leaky-ReLU D, k = 5"),
    "leaky_b1024": (UNIFORM + ("--train_steps=20000", "--d_activation=leaky_relu", "--batch_size=1024"),
                    "5x, leaky-ReLU D, batch 1024"),
    # D's ReLU kinks all start at x = 0 (zero biases) while the data sit at 4 +- 1.5: on the data D is
    # linear, and can only compare means. Standardised inputs put the kinks inside the data.
    "std": (UNIFORM + STD + ("--train_steps=20000",), "5x, inputs standardised: (x - 4) * 2"),
    "std_k5": (UNIFORM + STD + ("--train_steps=20000", "--d_steps=5"), "standardised, k = 5"),
    "std_k5_b1024": (UNIFORM + STD + ("--train_steps=20000", "--d_steps=5", "--batch_size=1024"),
                     "standardised, k = 5, batch 1024"),
    "std_k5_40k": (UNIFORM + STD + ("--train_steps=40000", "--d_steps=5"), "standardised, k = 5, 10x"),
    "std_k5_wide": (UNIFORM + STD + ("--train_steps=20000", "--d_steps=5", "--g_hidden=128,128,128",
                                     "--d_hidden=128,128,128"), "standardised, k = 5, 3 x 128 each"),
    # What is left is the tails: G's range ends near +-2.6 sigma, where D* = 1 (p_g = 0) and D follows it.
    "std_k5_100k": (UNIFORM + STD + ("--train_steps=100000", "--d_steps=5"), "standardised, k = 5, 25x"),
    "std_k5_40k_lr1e3": (UNIFORM + STD + ("--train_steps=40000", "--d_steps=5", "--lr_g=1e-3", "--lr_d=1e-3"),
                         "standardised, k = 5, 10x, learning rates 1e-3"),
    "std_100k": (UNIFORM + STD + ("--train_steps=100000",), "standardised, k = 1, 25x: gauss1d.flags until 2026-12-02"),
    # k = 1 spreads G's tails but leaves D lazy (flat where D* is not); k = 5 keeps D at D* but G's tails late.
    "std_k2_100k": (UNIFORM + STD + ("--train_steps=100000", "--d_steps=2"), "standardised, k = 2, 25x"),
    "std_k3_100k": (UNIFORM + STD + ("--train_steps=100000", "--d_steps=3"), "standardised, k = 3, 25x"),
    "std_ttur_100k": (UNIFORM + STD + ("--train_steps=100000", "--lr_d=4e-4"), "standardised, D's rate 2x, 25x"),
    "std_b1024_100k": (UNIFORM + STD + ("--train_steps=100000", "--batch_size=1024"), "standardised, batch 1024, 25x"),
    # With zero biases every first-layer ReLU kinks at 0: G and D start as two linear pieces each, and G's
    # tails (the ends of z's interval) are the last to take shape. PyTorch's bias init spreads the kinks.
    "std_100k_bias": (UNIFORM + STD + ("--train_steps=100000", "--mlp_bias_init=fan_in_uniform"),
                      "standardised, 25x, biases U(+-1/sqrt(fan_in)) (PyTorch's)"),
    "std_100k_bias_g128": (UNIFORM + STD + ("--train_steps=100000", "--mlp_bias_init=fan_in_uniform",
                                            "--g_hidden=128,128"), "standardised, 25x, PyTorch's biases, G 2 x 128: gauss1d.flags now"),
    "std_100k_bias_g256": (UNIFORM + STD + ("--train_steps=100000", "--mlp_bias_init=fan_in_uniform",
                                            "--g_hidden=256,256"), "standardised, 25x, PyTorch's biases, G 2 x 256"),
    # Near the equilibrium the unregularised game rotates instead of converging (Mescheder et al. 2018, "Which
    # training methods for GANs actually converge?"); R1 on D's real inputs makes it converge locally.
    "std_100k_bias_g128_r1": (UNIFORM + STD + ("--train_steps=100000", "--mlp_bias_init=fan_in_uniform",
                                               "--g_hidden=128,128", "--r1_weight=1"),
                              "standardised, 25x, PyTorch's biases, G 2 x 128, R1 gamma = 1: gauss1d.flags now"),
    "std_100k_bias_g128_r01": (UNIFORM + STD + ("--train_steps=100000", "--mlp_bias_init=fan_in_uniform",
                                                "--g_hidden=128,128", "--r1_weight=0.1"),
                               "the same, R1 gamma = 0.1"),
    "std_30k_bias_g128_r1": (UNIFORM + STD + ("--train_steps=30000", "--mlp_bias_init=fan_in_uniform",
                                              "--g_hidden=128,128", "--r1_weight=1"),
                             "the same with gamma = 1, 7.5x (30,000 iterations)"),
    "uniform_100k_r1": (UNIFORM + ("--train_steps=100000", "--r1_weight=1"),
                        "R1 gamma = 1 alone on the paper's raw data (zero biases, G 2 x 64), 25x"),
}


def run_try(name: str, seed: int, root: str) -> dict:
  """The run's final metrics, wall_s, and scipy_jsd (`scipy_jsd` of its final samples, computed once)."""
  flags, _ = TRIES[name]
  workdir = os.path.join(root, name, f"seed{seed}")
  result = run_once(["--flagfile=gauss1d.flags", *flags, f"--seed={seed}"], workdir, f"{name} seed {seed}")
  kept = os.path.join(workdir, "scipy_jsd.json")
  if not os.path.exists(kept):
    with open(kept, "w") as f:
      json.dump({"scipy_jsd": scipy_jsd(np.load(os.path.join(workdir, "eval", "final_samples.npy")).ravel())}, f)
  with open(kept) as f:
    return {**result, **json.load(f)}


def scipy_jsd(samples, points: int = 8001) -> float:
  """JSD(p_data = gauss1d's N(mean, sigma^2) || scipy's gaussian_kde of samples [N]), trapezoid rule over both supports."""
  data = toy.gauss1d()
  mean, sigma = float(data.means[0, 0]), data.sigma
  kde = stats.gaussian_kde(samples)
  reach = 4 * np.sqrt(kde.covariance[0, 0])
  x = np.linspace(min(samples.min() - reach, mean - 8 * sigma), max(samples.max() + reach, mean + 8 * sigma), points)
  p, q = stats.norm.pdf(x, mean, sigma), kde(x)
  m = 0.5 * (p + q)
  return float(np.trapezoid(0.5 * (special.rel_entr(p, m) + special.rel_entr(q, m)), x))


def table_row(name: str, results: list) -> str:
  jsd = [r["jsd"] for r in results]
  second = [r["scipy_jsd"] for r in results]
  dev = [r.get("d_deviation", float("nan")) for r in results]
  met = sum(j <= 0.01 and d <= 0.05 for j, d in zip(jsd, dev))
  walls = [r["wall_s"] for r in results]
  flags, what = TRIES[name]
  shown = [f for f in flags if f not in BEFORE] or ["(as before)"]
  return (f"| {name} | `{' '.join(shown)}` | {what} | {', '.join(f'{j:.4f}' for j in jsd)} | "
          f"{', '.join(f'{j:.4f}' for j in second)} | {', '.join(f'{d:.3f}' for d in dev)} | {met}/{len(results)} | "
          f"{min(walls):.0f}-{max(walls):.0f} |")


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
  for name in names:
    for seed in range(args.seeds):
      run_try(name, seed, args.root)
  rows = [table_row(n, [run_try(n, s, args.root) for s in range(SEEDS_SHOWN)
                        if os.path.exists(os.path.join(args.root, n, f"seed{s}", "wall.json"))]) for n in names]
  section = (f"\n## {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPUs, one run at a time\n\n"
             f"`python benchmarks/gauss1d_convergence.py {' '.join(sys.argv[1:])}`\n\n"
             "| try | flags | what | final jsd, seeds 0.. | scipy KDE jsd | d_deviation | goal met | wall s |\n"
             "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
  with open(args.output, "a") as f:  # Appended: earlier sections' runs need not survive under --root.
    f.write(section)
  print(section)


if __name__ == "__main__":
  main()
