"""A dataset outside gan_jax: 40 random 28x28 images (32 train, 8 held out), two classes."""
import numpy as np

from gan_jax.data.images import in_memory


def load(name, split, opts):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
  labels = np.arange(40, dtype=np.int32) % 2
  part = slice(32, 40) if split == "test" else slice(0, 32)
  return in_memory(f"{name}:{split or 'train'}", images[part], labels[part], 2, opts.seed)
