"""How much of a 1,000-vs-1,000 FID is the classes' proportions? Real training digits against the 1,000
held-out mnist5k digits, drawn two ways.

  python benchmarks/real_baselines.py [--draws=10] [--count=1000]

A conditional G is evaluated with the classes in turn (exactly count / 10 of each digit); the real
baseline of the evaluation table (`train 1,000 vs held-out`) is a stretch of the training stream, whose
class counts vary by about +-sqrt(count / 10) per class. This prints the FID (the digit CNN's features)
of `draws` random subsets of the training digits and of `draws` class-balanced ones (count / 10 of each
digit), mean +- std, against all held-out digits; and the class shares of both splits.
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
  args = parser.parse_args()
  x_train, y_train = load_mnist5k(32, "train")
  x_held, y_held = load_mnist5k(32, "test")
  for name, y in (("train", y_train), ("held-out", y_held)):
    print(f"{name} class shares %:", " ".join(f"{s:.1f}" for s in np.bincount(y, minlength=10) / len(y) * 100))
  f_train, f_held = digit_features(x_train), digit_features(x_held)
  rng = np.random.default_rng(0)
  per_class = args.count // 10
  random_fids, balanced_fids = [], []
  for _ in range(args.draws):
    rows = rng.choice(len(y_train), args.count, replace=False)
    random_fids.append(frechet.fid(f_train[rows], f_held))
    rows = np.concatenate([rng.choice(np.flatnonzero(y_train == c), per_class, replace=False) for c in range(10)])
    balanced_fids.append(frechet.fid(f_train[rows], f_held))
  print(f"| training digits, {args.count:,} drawn | FID vs the {len(y_held):,} held-out digits, "
        f"mean +- std of {args.draws} draws |\n|---|---|")
  print(f"| at random (the table's baseline) | {np.mean(random_fids):.2f} +- {np.std(random_fids):.2f} |")
  print(f"| class-balanced ({per_class} of each digit, as G is sampled) | "
        f"{np.mean(balanced_fids):.2f} +- {np.std(balanced_fids):.2f} |")


if __name__ == "__main__":
  main()
