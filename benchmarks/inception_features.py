"""How long Inception features take: images per second through `inception_features` on the backend at hand.

  python benchmarks/inception_features.py [--num=10000] [--side=32] [--weights=PATH] [--batch_size=100]

Pushes `num` random side x side RGB images in [-1, 1] through pytorch-fid's Inception (resize to
299x299, pool3 and logits), in chunks of `batch_size` split over the local devices, and prints the
wall time after one warm-up chunk (compilation excluded), images/s, and the device. Without
--weights (or when the file is absent) the network runs with random weights of the right shapes:
the time does not depend on the weights' values.
"""
import argparse
import os
import time

import jax
import numpy as np
from flax import traverse_util

from gan_jax.metrics import inception, inception_weights


def random_params(seed: int = 0) -> dict:
  """Parameters of the right shapes (He-scaled kernels), for timing only."""
  rng = np.random.default_rng(seed)

  def draw(shape):
    if len(shape) == 1:
      return np.ones(shape, np.float32)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))).astype(np.float32)

  return traverse_util.unflatten_dict({path: draw(shape) for path, shape in inception.param_shapes().items()})


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num", type=int, default=10000)
  parser.add_argument("--side", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--weights", default="")
  args = parser.parse_args()
  path = args.weights or inception_weights.default_path()
  params = inception_weights.load_params(path) if os.path.exists(path) else random_params()
  source = path if os.path.exists(path) else "random weights (no file)"
  images = np.random.default_rng(0).uniform(-1, 1, (args.num, args.side, args.side, 3)).astype(np.float32)
  inception.inception_features(params, images[:args.batch_size], args.batch_size)  # compile
  start = time.perf_counter()
  pool3, _ = inception.inception_features(params, images, args.batch_size)
  seconds = time.perf_counter() - start
  device = jax.devices()[0]
  print(f"device: {device.platform} {device.device_kind} x{jax.local_device_count()}; weights: {source}")
  print(f"Inception features of {args.num} {args.side}x{args.side} images: {seconds:.1f} s "
        f"({args.num / seconds:.1f} images/s, batch {args.batch_size}); pool3 {pool3.shape}")


if __name__ == "__main__":
  main()
