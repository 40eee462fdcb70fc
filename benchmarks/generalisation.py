"""Does the main job's G draw new handwriting or fit its 4,000 digits? dcgan.flags with remedies, judged
on the held-out digits at equal sample counts.

  python benchmarks/generalisation.py --candidates=dcgan,diffaug_tc[,...] [--seeds=0,1,2] [--root=DIR]
                                      [--out=benchmarks/results/main_job.md]

Each candidate is `experiments/run.py --flagfile=dcgan.flags` plus its flags (CANDIDATES), its seeds
trained as one `--seeds` program in ROOT/NAME (an interrupted one resumes when run again; a finished one
is only evaluated). Every run is then scored as `experiments/evaluate.py --draws=3` scores it
(gan_jax.evaluation: FID on the digit CNN's features of 2,500 samples against all 4,000 training digits;
of 1,000 samples against the 1,000 held-out digits, beside 1,000 real training digits against the same
held-out digits; the copy share, 0.05 for new data; the classes' reverse KL), each the mean +- std over
three latent draws. The wall time is the whole program's, all seeds together (the 10-minute budget is
one run's: `benchmarks/main_job.py` times single runs). Rows are appended under a header naming the
machine and the command.
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do (run.py subprocesses inherit XLA_FLAGS).

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# dcgan.flags until 2026-12-05 (D as wide as G, 7,000 steps, evaluated every 1,750): the candidates
# measured on it carry these flags, so that each still runs what its row measured.
BEFORE = ["--d_width=0", "--train_steps=7000", "--eval_every=1750", "--checkpoint_every=1750"]
CANDIDATES = {
    "dcgan": BEFORE,
    # DiffAugment (Zhao et al. 2020) on reals and fakes before D, in both players' updates.
    "diffaug_tc": [*BEFORE, "--diffaugment=translation,cutout"],
    "diffaug_ctc": [*BEFORE, "--diffaugment=color,translation,cutout"],
    # R1 on reals (Mescheder et al. 2018) and a narrower D: the usual answers to a D that memorises.
    "r1": [*BEFORE, "--r1_weight=1"],
    "d_width16": [*BEFORE, "--d_width=16"],
    # The narrower D halves the step's cost: the steps it frees, spent on training longer.
    "d_width16_12k": [*BEFORE, "--d_width=16", "--train_steps=12000"],
    "d_width16_20k": [*BEFORE, "--d_width=16", "--train_steps=20000"],
    "d_width16_16k_linear": [*BEFORE, "--d_width=16", "--train_steps=16000", "--lr_schedule=linear"],
    "d_width16_20k_diffaug_tc": [*BEFORE, "--d_width=16", "--train_steps=20000", "--diffaugment=translation,cutout"],
    # G wider with D at 16, inside the budget the narrower D freed.
    "w48_d16_12k": [*BEFORE, "--width=48", "--d_width=16", "--train_steps=12000"],
    "w48_d24_12k": [*BEFORE, "--width=48", "--d_width=24", "--train_steps=12000"],
    # dcgan.flags for a few hours of 2026-12-05 (the screening's d_width16_12k, evaluated every 3,000 steps).
    "dcgan_d16": ["--width=32"],
    # dcgan.flags since 2026-12-06 (main_job.py's w48_d16_12k_lr4e4_projection runs were scored as this).
    "w48_d16": [],
    # G wider still (its 9,000-step checkpoint is the 9,000-step run: the rates are constant), and D narrower.
    "w64_d16": ["--width=64"],
    "w64_d12": ["--width=64", "--d_width=12"],
    # Spectral norm in place of D's batch norm (Miyato et al. 2018); a longer average of G's weights.
    "w64_d16_sn": ["--width=64", "--spectral_norm"],
    "w64_d16_ema9995": ["--width=64", "--ema_decay=0.9995"],
    # Minibatch discrimination in D's head (Salimans et al. 2016): D sees how alike the batch's samples
    # are, for G's recall (0.84 against real digits' 0.95 on dcgan.flags seed 0).
    "w64_d16_mbd": ["--width=64", "--minibatch_discrimination=50"],
    # DiffAugment (translation, cutout) at G 64 wide (it lost at the old widths: diffaug_tc, d_width16_20k_diffaug_tc).
    "w64_d16_diffaug_tc": ["--width=64", "--diffaugment=translation,cutout"],
    # DiffAugment without cutout (a gray half-image square hides most of a 32 px digit): translation alone, and
    # with colour (brightness and contrast; saturation is a no-op on one channel).
    "w64_d16_diffaug_t": ["--width=64", "--diffaugment=translation"],
    "w64_d16_diffaug_ct": ["--width=64", "--diffaugment=color,translation"],
    # Balanced consistency regularisation (bCR, Zhao et al. 2020, their lambda 10 for reals and fakes): D judges the
    # images themselves, so G is not slowed as under DiffAugment, while D is held to judge a digit and the same
    # digit shifted by up to 4 px alike.
    "w64_d16_bcr10": ["--width=64", "--consistency_weight=10"],
    "w64_d16_bcr1": ["--width=64", "--consistency_weight=1"],
    "w64_d16_bcr01": ["--width=64", "--consistency_weight=0.1"],
    # Instance noise (Sonderby et al. 2017) on every image D judges, its std falling linearly to 0 at the last
    # step: D cannot single out the 4,000 training digits' exact pixels while it is on.
    "w64_d16_inoise01": ["--width=64", "--instance_noise=0.1", "--instance_noise_steps=12000"],
    "w64_d16_inoise02": ["--width=64", "--instance_noise=0.2", "--instance_noise_steps=12000"],
    # LeCam regularisation (Tseng et al. 2021), made for GANs on little data: D's real and fake logits pulled
    # towards the moving averages of the other side's. Their BigGAN's 0.3 is for hinge logits near +-1; ours
    # reach ~+-1.4 (D(x) 0.8, D(G(z)) 0.2 late in w64_d16_inoise02), so the penalty is ~10x larger per unit.
    "w64_d16_lecam001": ["--width=64", "--lecam_weight=0.01"],
    "w64_d16_lecam01": ["--width=64", "--lecam_weight=0.1"],
}
# (table column, evaluation column index or label prefix, row key)
CELLS = (("FID 2,500 vs train", "generated 2,500 vs train", "fid"),
         ("FID 1,000 vs held-out", "generated 1,000 vs held-out", "fid"),
         ("copy share", "generated 2,500 vs train", "copy_share"),
         ("classes reverse KL", "generated 2,500 vs train", "class_reverse_kl"))
BASELINES = (("held-out 1,000 vs train 4,000", "held-out 1,000 vs train", "fid"),
             ("train 1,000 vs held-out 1,000", "train 1,000 vs held-out", "fid"),
             ("copy share of held-out digits", "generated 2,500 vs train", "copy_share_held_out"))


def train(name: str, seeds: str, root: str) -> float:
  """Trains (or resumes) the candidate's --seeds program; its wall time in s, kept in ROOT/NAME/wall_s.txt
  (None when it was trained without this script and nothing recorded it)."""
  work = os.path.join(root, name)
  record = os.path.join(work, "wall_s.txt")
  if not all(os.path.exists(os.path.join(work, f"seed_{s}", "eval", "final_metrics.json")) for s in seeds.split(",")):
    command = [sys.executable, os.path.join(REPO, "experiments", "run.py"), "--flagfile=dcgan.flags",
               *CANDIDATES[name], f"--seeds={seeds}", f"--workdir={work}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    with open(record, "w") as f:
      f.write(f"{time.perf_counter() - start:.0f}\n")
  if not os.path.exists(record):
    return None
  with open(record) as f:
    return float(f.read())


def cell(result: dict, prefix: str, key: str):
  """[mean, std] of row `key` in the evaluation column whose label starts with `prefix`."""
  index = next(i for i, label in enumerate(result["columns"]) if label.startswith(prefix))
  return result["rows"][key][index]


def fmt(value) -> str:
  mean, std = value
  return f"{mean:.3g}" if not std else f"{mean:.3g} +- {std:.2g}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--candidates", required=True)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--root", default=os.path.join(REPO, "runs", "generalisation"))
  parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "main_job.md"))
  args = parser.parse_args()
  names = args.candidates.split(",")
  unknown = [n for n in names if n not in CANDIDATES]
  if unknown:
    sys.exit(f"error: --candidates: unknown {unknown}; known: {', '.join(CANDIDATES)}")
  from gan_jax import evaluation
  lines = [f"\n## {datetime.date.today()}: {platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}): held-out "
           f"digits at equal counts\n", f"`python benchmarks/generalisation.py --candidates={args.candidates} "
           f"--seeds={args.seeds}`\n", "| candidate | seed | " + " | ".join(c[0] for c in CELLS) + " | " +
           " | ".join(f"baseline: {b[0]}" for b in BASELINES) + " | program wall s | flags beyond dcgan.flags |",
           "|---" * (len(CELLS) + len(BASELINES) + 4) + "|"]
  for name in names:
    wall = train(name, args.seeds, args.root)
    for seed in args.seeds.split(","):
      result = evaluation.evaluate_run(os.path.join(args.root, name, f"seed_{seed}"), num_samples=2500, draws=3)
      cells = [fmt(cell(result, prefix, key)) for _, prefix, key in CELLS + BASELINES]
      lines.append(f"| {name} | {seed} | " + " | ".join(cells) + f" | {'' if wall is None else f'{wall:.0f}'} | {' '.join(CANDIDATES[name])} |")
      print(lines[-1], flush=True)
  with open(args.out, "a") as f:
    f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
