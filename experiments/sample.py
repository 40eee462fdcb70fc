"""Draw samples from a saved run, without its training data.

  python experiments/sample.py --workdir=runs/dcgan [--step=S | --best] --num_samples=64 --out=grid.png
  python experiments/sample.py --workdir=runs/ring --num_samples=2500 --out=samples.npz

`.png` writes an image grid (image models) or a scatter plot (toy models); `.npz` writes
`samples` [N, ...] (toy data in data units, images in [-1, 1]).
"""
import os

import numpy as np
from absl import app, flags

from gan_jax import cli, xla_cpu

xla_cpu.configure()  # Before JAX starts its CPU backend.

flags.DEFINE_string("workdir", None, "The run's workdir (holds checkpoints/).")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
flags.DEFINE_bool("best", False, "Use the best checkpoint (checkpoints_best/).")
flags.DEFINE_integer("num_samples", 64, "How many samples.")
flags.DEFINE_integer("seed", 0, "Seed of the latents.")
flags.DEFINE_string("out", "samples.png", "Output file: .png or .npz.")
flags.DEFINE_integer("label", None, "Class of every sample, for a run trained with --conditioning "
                     "(default: the classes in turn).")
flags.DEFINE_bool("overwrite", False, "Replace --out if it exists (otherwise an existing file is refused).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from gan_jax import writers
  writers.quiet_library_logs()
  if not FLAGS.workdir:
    cli.fail("--workdir is required: the directory of a training run")
  if FLAGS.num_samples <= 0:
    cli.fail(f"--num_samples={FLAGS.num_samples}: must be a positive number")
  ext = os.path.splitext(FLAGS.out)[1].lower()
  if ext not in (".png", ".npz"):
    cli.fail(f"--out={FLAGS.out}: the file must end in .png or .npz")
  if os.path.exists(FLAGS.out) and not FLAGS.overwrite:
    cli.fail(f"--out={FLAGS.out}: the file exists; pass --overwrite to replace it, or another --out")
  if FLAGS.seed < 0:
    cli.fail(f"--seed={FLAGS.seed}: must be >= 0")
  from gan_jax import restore, tasks
  from gan_jax.generate import generate_samples
  with cli.one_line_errors():
    cfg, nets, state, step, _ = restore.load_run(FLAGS.workdir, FLAGS.step, FLAGS.best)
  if FLAGS.label is not None and not 0 <= FLAGS.label < max(nets.num_classes, 1):
    cli.fail(f"--label={FLAGS.label}: " + (f"must lie in [0, {nets.num_classes})" if nets.num_classes else
                                       "this run's generator is not conditional (trained with "
                                       "--conditioning=none); drop --label"))
  task = tasks.make_task(cfg)  # Pictures and data units only: the training data is not read.
  x = task.to_data_units(generate_samples(nets, state, FLAGS.num_samples, FLAGS.seed, FLAGS.label))
  if ext == ".npz":
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    np.savez(FLAGS.out, samples=x, step=step)
  else:
    task.picture(x, FLAGS.out, title=f"{FLAGS.workdir} step {step}")
  print(f"wrote {FLAGS.num_samples} samples from step {step} to {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
