"""Evaluate a saved run and print a table.

  python experiments/evaluate.py --workdir=runs/dcgan [--step=S | --best] [--num_samples=2500] [--draws=3] [--parzen]

Image runs: FID, KID x 1000, the Inception Score, precision/recall/density/coverage (and the class
histogram for digits) on the features of the shipped digit CNN (1-channel data) or of pytorch-fid's
Inception (RGB data, or --eval_features=inception), against the training images and against the
held-out ones, each beside a real baseline at the same sample count (held-out vs train, train vs
held-out: FID is biased by the counts, and the column headers state them), every generated cell the
mean +- std over --draws sets of latents; the copy share (samples nearer to a training image than 95 %
of held-out images are; 0.05 for new data, its baseline row) and WORKDIR/eval/neighbours.png (each
sample beside its nearest training images in pixels and in features: Goodfellow et al. 2014, fig. 2);
for DCGAN on mnist5k, the accuracy of a linear classifier on D's features with
100 and with all labels; in WORKDIR/eval interpolations.png (one class per row for a conditional G) and
classes.png (a conditional G: each row one z under every class) or class_means.png (digits). Toy
runs: modes, high quality, reverse KL. The table is also written to WORKDIR/eval/evaluation.json.
The literature's CIFAR-10 protocol: --eval_features=inception --num_samples=50000 (against the 50,000
training images; their features are computed once and cached).
"""
import os

from absl import app, flags

from gan_jax import cli, xla_cpu

xla_cpu.configure()  # Before JAX starts its CPU backend.

flags.DEFINE_string("workdir", None, "The run's workdir.")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
flags.DEFINE_bool("best", False, "Use the best checkpoint.")
flags.DEFINE_integer("num_samples", 2500, "Generated samples to score.")
flags.DEFINE_integer("seed", 0, "Seed of the first draw of latents (draw d: seed + d).")
flags.DEFINE_integer("draws", 3, "Sets of latents each generated column is computed on (mean +- std).")
flags.DEFINE_bool("parzen", False, "Also the Parzen-window log-likelihood (Goodfellow et al. 2014).")
flags.DEFINE_enum("eval_features", "auto", ["auto", "digits", "inception"], "Feature network: the digit CNN, "
                  "pytorch-fid's Inception, or auto (digits for 1-channel data, Inception for RGB).")
flags.DEFINE_string("inception_weights", "", "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (default: "
                    "~/.cache/torch/hub/checkpoints/, where pytorch-fid keeps it).")
flags.DEFINE_integer("kid_subset_size", 1000, "KID subset size (torch-fidelity's default; 100 subsets), or half "
                     "the table's smallest set when that is smaller.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from gan_jax import evaluation, workdir, writers
  writers.quiet_library_logs()
  if not FLAGS.workdir:
    cli.fail("--workdir is required: the directory of a training run")
  if FLAGS.num_samples < 10:
    cli.fail(f"--num_samples={FLAGS.num_samples}: must be at least 10 (the score splits the samples in 10)")
  if FLAGS.seed < 0:
    cli.fail(f"--seed={FLAGS.seed}: must be >= 0")
  if FLAGS.draws < 1:
    cli.fail(f"--draws={FLAGS.draws}: must be >= 1")
  with cli.one_line_errors():
    result = evaluation.evaluate_run(FLAGS.workdir, FLAGS.step, FLAGS.best, FLAGS.num_samples, FLAGS.seed,
                                     FLAGS.parzen, eval_features=FLAGS.eval_features,
                                     inception_weights=FLAGS.inception_weights,
                                     kid_subset_size=FLAGS.kid_subset_size, draws=FLAGS.draws)
    print(evaluation.format_table(result))
    workdir.write_json(os.path.join(FLAGS.workdir, "eval", "evaluation.json"), result)


if __name__ == "__main__":
  app.run(main)
