"""The tutorial's Figure 22 (Metz et al. 2017, Figure 1), live: the 8-mode ring, a plain GAN and an
unrolled GAN, samples at 8 moments of training, one row each.

  python experiments/figure22.py [--root=runs/figure22] [--unroll_steps=5] [--seed=0] [--out=docs]

Trains `experiments/ring_unrolled.flags` twice (--unroll_steps=0 and --unroll_steps=K; a finished run is
kept, an interrupted one resumes) and writes OUT/figure22_unrolled_ring.png from the evaluations' pictures
(every 2,500 of 20,000 iterations: samples over D's surface, the modes covered at that moment), and
prints each run's `modes` and `modes_ever` per evaluation.
"""
import json
import os
import subprocess
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import xla_cpu  # noqa: E402

xla_cpu.configure()  # The run.py subprocesses inherit the entry points' XLA flags.

flags.DEFINE_string("root", "runs/figure22", "Workdirs of the two runs.")
flags.DEFINE_integer("unroll_steps", 5, "K of the unrolled row.")
flags.DEFINE_integer("seed", 0, "Seed of both runs.")
flags.DEFINE_string("out", "docs", "Folder of the PNG.")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(k: int) -> str:
  workdir = os.path.join(flags.FLAGS.root, f"unroll_{k}_seed{flags.FLAGS.seed}")
  if not os.path.exists(os.path.join(workdir, "eval", "final_metrics.json")):
    subprocess.run([sys.executable, os.path.join(REPO, "experiments", "run.py"), "--flagfile=ring_unrolled.flags",
                    f"--unroll_steps={k}", f"--seed={flags.FLAGS.seed}", f"--workdir={workdir}"], check=True)
  return workdir


def main(_):
  from gan_jax import pictures
  rows = {}
  for k in (0, flags.FLAGS.unroll_steps):
    workdir = train(k)
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if '"modes"' in line]
    frames = sorted(f for f in os.listdir(os.path.join(workdir, "samples")) if f.startswith("step_"))
    label = (f"{'plain GAN' if k == 0 else f'unrolled GAN, K = {k}'}: modes at each evaluation "
             f"{[r['modes'] for r in records]}, over the run {records[-1]['modes_ever']}")
    rows[label] = [os.path.join(workdir, "samples", f) for f in frames]
    print(label)
  path = os.path.join(flags.FLAGS.out, "figure22_unrolled_ring.png")
  pictures.frames_table_png(rows, path)
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
