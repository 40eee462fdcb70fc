"""How long Inception features take: images per second through `inception_features`, configured as the
entry points configure JAX, and (with --pytorch_fid) pytorch-fid's own model on the same images.

  python benchmarks/inception_features.py [--num=10000] [--side=32] [--weights=PATH] [--batch_size=100]
      [--pytorch_fid] [--torch_threads=0]

Pushes `num` random side x side RGB images in [-1, 1] through pytorch-fid's Inception (resize to
299x299, pool3 and logits), in chunks of `batch_size`, and prints the wall time after one warm-up
chunk (compilation excluded), images/s, and the device. Without --weights (or when the file is
absent) the network runs with the deterministic random weights of tests/data/pt_inception_fixture.md
(the time does not depend on the weights' values). --pytorch_fid also runs pytorch_fid.inception.
InceptionV3([3]) with the same weights on the same images (torch, float32, `--torch_threads`
threads, 0: all cores), times it the same way and prints the largest difference of the two pool3
features relative to their largest magnitude. pytorch-fid needs torchvision, which does not install
beside this project's CPU torch: run it from a venv with both (../shared/FINDINGS.md), not in CI.
"""
import argparse
import os
import sys
import time

from gan_jax import xla_cpu

xla_cpu.configure()  # As run.py and evaluate.py do, before JAX starts.
import jax  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax.metrics import inception, inception_weights  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixture_state_dict() -> dict:
  """pytorch-fid's state_dict names with the fixture's deterministic random values (numpy, float32)."""
  sys.path.insert(0, os.path.join(REPO, "tests", "data"))
  from make_inception_fixture import fixture_weight
  fixture = np.load(os.path.join(REPO, "tests", "data", "pt_inception_fixture.npz"))
  shapes = [tuple(int(d) for d in s.split(",")) if s else () for s in fixture["weight_shapes"]]
  return {name: fixture_weight(name, shape).astype(np.float32) for name, shape in zip(fixture["weight_names"], shapes)}


def time_jax(params, images, batch_size: int):
  inception.inception_features(params, images[:batch_size], batch_size)  # compile
  start = time.perf_counter()
  pool3, _ = inception.inception_features(params, images, batch_size)
  return time.perf_counter() - start, np.asarray(pool3)


def time_pytorch_fid(state_dict: dict, images, batch_size: int, threads: int):
  """(seconds, pool3) of pytorch-fid's InceptionV3([3]) on images in [-1, 1] NHWC, after one warm-up chunk."""
  import pytorch_fid.inception as pfi
  import torch
  torch.set_num_threads(threads or os.cpu_count())
  weights = {k: torch.from_numpy(v) for k, v in state_dict.items()}
  pfi.load_state_dict_from_url = lambda *args, **kwargs: weights  # no download: these weights
  model = pfi.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()

  def features(chunk):
    with torch.no_grad():
      x = torch.from_numpy((chunk + 1.0) / 2.0).permute(0, 3, 1, 2).contiguous()  # the [0, 1] NCHW pytorch-fid takes
      return model(x)[0].reshape(len(chunk), -1).numpy()

  features(images[:batch_size])
  start = time.perf_counter()
  pool3 = np.concatenate([features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
  return time.perf_counter() - start, pool3


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num", type=int, default=10000)
  parser.add_argument("--side", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--weights", default="")
  parser.add_argument("--pytorch_fid", action="store_true")
  parser.add_argument("--torch_threads", type=int, default=0)
  args = parser.parse_args()
  path = args.weights or inception_weights.default_path()
  real = os.path.exists(path)
  state = None if real else fixture_state_dict()
  params = inception_weights.load_params(path) if real else inception.convert_pytorch_fid_weights(state)
  images = np.random.default_rng(0).uniform(-1, 1, (args.num, args.side, args.side, 3)).astype(np.float32)
  seconds, pool3 = time_jax(params, images, args.batch_size)
  device = jax.devices()[0]
  print(f"device: {device.platform} {device.device_kind} x{jax.local_device_count()}; XLA_FLAGS="
        f"{os.environ.get('XLA_FLAGS', '')!r}; weights: {path if real else 'the fixture random weights'}")
  print(f"gan-jax Inception features of {args.num} {args.side}x{args.side} images: {seconds:.1f} s "
        f"({args.num / seconds:.1f} images/s, batch {args.batch_size}); pool3 {pool3.shape}")
  if args.pytorch_fid:
    if real:
      import torch
      state = {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
    torch_seconds, torch_pool3 = time_pytorch_fid(state, images, args.batch_size, args.torch_threads)
    gap = float(np.abs(torch_pool3 - pool3).max() / np.abs(torch_pool3).max())
    print(f"pytorch-fid InceptionV3 of the same images: {torch_seconds:.1f} s ({args.num / torch_seconds:.1f} "
          f"images/s); pool3 largest difference / largest value: {gap:.1e}")


if __name__ == "__main__":
  main()
