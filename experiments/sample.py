"""Draw samples from a saved run, without its training data.

  python experiments/sample.py --workdir=runs/dcgan [--step=S | --best] --num_samples=64 --out=grid.png
  python experiments/sample.py --workdir=runs/ring --num_samples=2500 --out=samples.npz

`.png` writes an image grid (image models) or a scatter plot (toy models); `.npz` writes
`samples` [N, ...] (toy data in data units, images in [-1, 1]); `DIR/` writes DIR/000000.png, ... one
sample each (image models), for the tools that read folders of images.
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
flags.DEFINE_string("out", "samples.png", "Output: a .png grid (image runs) or scatter plot (toy runs), a .npz of "
                    "the samples, or a directory DIR/ with one PNG per sample (image runs; for pytorch-fid, "
                    "clean-fid and torch-fidelity, which read folders).")
flags.DEFINE_integer("label", None, "Class of every sample, for a run trained with --conditioning "
                     "(default: the classes in turn).")
flags.DEFINE_bool("overwrite", False, "Replace --out if it exists (otherwise an existing file is refused).")
FLAGS = flags.FLAGS


def check_out(out: str, overwrite: bool) -> str:
  """'npz', 'png' or 'dir' for --out, or one error line: an existing file without --overwrite, a
  parent that is a file, another extension."""
  if out.endswith(os.sep) or os.path.isdir(out):
    kind = "dir"
  else:
    kind = os.path.splitext(out)[1].lower().lstrip(".")
    if kind not in ("png", "npz"):
      cli.fail(f"--out={out}: the file must end in .png or .npz, or be a directory (DIR/) for one PNG per sample")
    if os.path.lexists(out) and not overwrite:
      cli.fail(f"--out={out}: the file exists; pass --overwrite to replace it, or another --out")
  parent = os.path.abspath(out if kind == "dir" else os.path.dirname(os.path.abspath(out)))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    cli.fail(f"--out={out}: {parent} is a file, not a directory")
  return kind


def write(kind: str, task, x, step: int):
  from gan_jax import pictures, workdir
  out = FLAGS.out
  if kind == "npz":
    workdir.write_atomic(out, lambda f: np.savez(f, samples=x, step=step), mode="wb")
  elif kind == "png":
    task.picture(x, out, title=f"{FLAGS.workdir} step {step}")
  else:  # one PNG per sample, for tools that read folders (pytorch-fid, clean-fid, torch-fidelity)
    images = pictures.to_uint8(x)
    for i, image in enumerate(images):
      path = os.path.join(out, f"{i:06d}.png")
      if os.path.lexists(path) and not FLAGS.overwrite:
        cli.fail(f"--out={out}: {path} exists; pass --overwrite to replace it, or another --out")
      pictures.save_png(image, path)


def main(argv):
  del argv
  from gan_jax import writers
  writers.quiet_library_logs()
  if not FLAGS.workdir:
    cli.fail("--workdir is required: the directory of a training run")
  if FLAGS.num_samples <= 0:
    cli.fail(f"--num_samples={FLAGS.num_samples}: must be a positive number")
  if FLAGS.seed < 0:
    cli.fail(f"--seed={FLAGS.seed}: must be >= 0")
  kind = check_out(FLAGS.out, FLAGS.overwrite)
  from gan_jax import generate, memory, restore, tasks
  with cli.one_line_errors():
    cfg, nets, state, step, _ = restore.load_run(FLAGS.workdir, FLAGS.step, FLAGS.best)
    memory.refuse_if_too_large("num_samples", FLAGS.num_samples, memory.sample_bytes(
        FLAGS.num_samples, nets.latent_dim, nets.data_shape, features=False), f"{FLAGS.num_samples:,} samples")
    if FLAGS.label is not None and not 0 <= FLAGS.label < max(nets.num_classes, 1):
      cli.fail(f"--label={FLAGS.label}: " + (f"must lie in [0, {nets.num_classes})" if nets.num_classes else
                                             "this run's generator is not conditional (trained with "
                                             "--conditioning=none); drop --label"))
    if kind == "dir" and cfg.is_toy:
      cli.fail(f"--out={FLAGS.out}: a directory of PNGs is for image runs; this run's data are points (use .npz)")
    state = generate.sampling_state(nets, state, cfg.ema_statistics, cfg.batch_size, cfg.seed)
    task = tasks.make_task(cfg)  # Pictures and data units only: the training data is not read.
    x = task.to_data_units(generate.generate_samples(nets, state, FLAGS.num_samples, FLAGS.seed, FLAGS.label))
    write(kind, task, x, step)
  print(f"wrote {FLAGS.num_samples} samples from step {step} to {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
