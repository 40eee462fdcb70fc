"""How much of a 1,000-vs-1,000 FID is the classes' proportions? Real training digits against the 1,000
held-out mnist5k digits, drawn three ways; and trained conditional Gs, sampled two ways.

  python benchmarks/real_baselines.py [--draws=10] [--count=1000] [--workdirs=RUN,...]

A conditional G is evaluated with the classes in turn (exactly count / 10 of each digit); the real
baseline of the evaluation table (`train 1,000 vs held-out`) is a stretch of the training stream, whose
class counts vary by about +-sqrt(count / 10) per class. This prints the FID (the digit CNN's features)
of `draws` random subsets of the training digits and of `draws` class-balanced ones (count / 10 of each
digit), mean +- std, against all held-out digits; and of `draws` subsets with exactly the held-out split's
class counts (the floor once the classes' proportions are matched); and the class shares of both splits.

With --workdirs, each run's G (as evaluate.py samples it: G_ema, latents of seeds 0, 1, 2) draws `count`
samples with the classes in turn and with the held-out split's class counts; each set is scored against
the held-out digits and against training subsets of the same size and class counts, beside class-balanced
training digits against disjoint ones: does G sit as far above the real floor on the digits it trained
on as on new ones?
"""
import argparse

import numpy as np

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do.
from gan_jax.data.images import PIXEL_VALUES, load_mnist5k  # noqa: E402
from gan_jax.metrics import digits, frechet  # noqa: E402


def digit_features(images_uint8) -> np.ndarray:
  """uint8 [N, 32, 32, 1] -> the digit CNN's features [N, 128] (pixels to [-1, 1] as the data feeds map them)."""
  return digits.logits_and_features(PIXEL_VALUES[images_uint8])[1]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--draws", type=int, default=10)
  parser.add_argument("--count", type=int, default=1000)
  parser.add_argument("--workdirs", default="", help="trained conditional mnist5k runs to score (comma-separated)")
  args = parser.parse_args()
  x_train, y_train = load_mnist5k(32, "train")
  x_held, y_held = load_mnist5k(32, "test")
  for name, y in (("train", y_train), ("held-out", y_held)):
    print(f"{name} class shares %:", " ".join(f"{s:.1f}" for s in np.bincount(y, minlength=10) / len(y) * 100))
  f_train, f_held = digit_features(x_train), digit_features(x_held)
  rng = np.random.default_rng(0)
  per_class = args.count // 10
  held_counts = np.bincount(y_held, minlength=10) * args.count // len(y_held)
  held_counts[np.argmax(held_counts)] += args.count - held_counts.sum()
  random_fids, balanced_fids, matched_fids = [], [], []
  for _ in range(args.draws):
    rows = rng.choice(len(y_train), args.count, replace=False)
    random_fids.append(frechet.fid(f_train[rows], f_held))
    rows = class_rows(y_train, [per_class] * 10, rng)
    balanced_fids.append(frechet.fid(f_train[rows], f_held))
  for _ in range(args.draws):  # after the draws above, which keep their stream
    rows = class_rows(y_train, held_counts, rng)
    matched_fids.append(frechet.fid(f_train[rows], f_held))
  print(f"| training digits, {args.count:,} drawn | FID vs the {len(y_held):,} held-out digits, "
        f"mean +- std of {args.draws} draws |\n|---|---|")
  print(f"| at random (the table's baseline) | {np.mean(random_fids):.2f} +- {np.std(random_fids):.2f} |")
  print(f"| class-balanced ({per_class} of each digit, as G is sampled) | "
        f"{np.mean(balanced_fids):.2f} +- {np.std(balanced_fids):.2f} |")
  print(f"| with the held-out split's class counts ({' / '.join(map(str, held_counts))}) | "
        f"{np.mean(matched_fids):.2f} +- {np.std(matched_fids):.2f} |")
  if args.workdirs:
    score_runs(args.workdirs.split(","), f_train, y_train, f_held, held_counts, args.count, rng)


def class_rows(y, counts, rng) -> np.ndarray:
  """Row indices of counts[c] random examples of each class c of y, class by class."""
  return np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in enumerate(counts)])


def score_runs(workdirs, f_train, y_train, f_held, held_counts, count: int, rng, draws: int = 3):
  """Prints, per run and sampling, FID vs the held-out digits and vs training subsets of G's class counts."""
  from gan_jax import generate, restore
  half = [class_rows(y_train, [2 * count // 10] * 10, rng).reshape(10, -1) for _ in range(draws)]
  train_floor = [frechet.fid(f_train[h[:, ::2].ravel()], f_train[h[:, 1::2].ravel()]) for h in half]
  print(f"\nclass-balanced training digits vs disjoint class-balanced ones ({count:,} each): "
        f"{np.mean(train_floor):.2f} +- {np.std(train_floor):.2f}\n")
  print(f"| run | G's classes | FID vs the held-out digits | FID vs {count:,} training digits of G's class counts |\n"
        "|---|---|---|---|")
  samplings = (("in turn", np.arange(count) % 10), ("held-out's counts", np.repeat(np.arange(10), held_counts)))
  for workdir in workdirs:
    _, nets, state, _, _ = restore.load_for_sampling(workdir)
    generator = generate.Generator(nets)  # one jitted G per run, for all its samplings and draws
    for name, labels in samplings:
      held, train = [], []
      for seed in range(draws):
        x = generator(state, generate.latents(seed, count, nets), labels)
        f_fake = digits.logits_and_features(x)[1]
        held.append(frechet.fid(f_fake, f_held))
        train.append(frechet.fid(f_fake, f_train[class_rows(y_train, np.bincount(labels, minlength=10), rng)]))
      print(f"| {workdir} | {name} | {np.mean(held):.2f} +- {np.std(held):.2f} | "
            f"{np.mean(train):.2f} +- {np.std(train):.2f} |", flush=True)


if __name__ == "__main__":
  main()
