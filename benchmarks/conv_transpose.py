"""DCGAN iteration time with this framework's ConvTranspose2x against flax's nn.ConvTranspose, in one run.

  python benchmarks/conv_transpose.py [--iters=10] [--rounds=3]

Same network (dcgan.flags at 32x32x1, batch 64), same parameters: only G's stride-2 transposed
convolutions change implementation. Prints ms per iteration and the ratio.
"""
import argparse
from unittest import mock

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do, before JAX starts.
import flax.linen as nn  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax.nets import dcgan  # noqa: E402
from step_time import configs, jax_trainer  # noqa: E402 - beside this script


class FlaxConvTranspose(nn.Module):
  """nn.ConvTranspose with ConvTranspose2x's signature."""
  features: int
  use_bias: bool = True
  kernel_init: object = dcgan.INIT
  dtype: object = None

  @nn.compact
  def __call__(self, x):
    return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME", use_bias=self.use_bias,
                            kernel_init=self.kernel_init, dtype=self.dtype)(x)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--iters", type=int, default=10)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  import jax
  cfg, shape = configs(jax.default_backend())["dcgan32"]
  runs = {"ConvTranspose2x (sub-pixel)": jax_trainer(cfg, shape)}
  with mock.patch.object(dcgan, "ConvTranspose2x", FlaxConvTranspose):
    runs["nn.ConvTranspose"] = jax_trainer(cfg, shape)
  times = {name: [] for name in runs}
  for _ in range(args.rounds):
    for name, (run, *_rest) in runs.items():
      times[name].append(1000 * run(args.iters))
  print("| G's transposed convolutions | ms / iteration (median, min-max) | compile s |")
  print("|---|---|---|")
  for name, ts in times.items():
    print(f"| {name} | {np.median(ts):.1f} ({min(ts):.1f}-{max(ts):.1f}) | {runs[name][1]:.1f} |")
  fast, slow = (np.median(t) for t in times.values())
  print(f"nn.ConvTranspose / ConvTranspose2x = {slow / fast:.2f}")


if __name__ == "__main__":
  main()
