"""Training-iteration time of gan-jax against PyTorch on the backend at hand, in one run.

  python benchmarks/step_time.py [--configs=...] [--precisions=f32,bf16] [--iters=20] [--rounds=5] [--json=FILE]

One iteration = one D step on real + fake and one non-saturating G step with the same fakes, Adam
2e-4 / 0.5 (the PyTorch DCGAN loop; gan-jax with --share_fakes). gan-jax goes through its own
`make_train_fn` (shard_map + jit + donation) with the dataset resident on the device and
`--steps_per_call=auto` (a scan over steps on GPU/TPU, one step per call for conv nets on CPU).
PyTorch runs the same architecture (parameter counts asserted equal): on CPU eager; on a GPU eager
with cudnn.benchmark, channels_last, torch.compile and bf16 autocast, the best of them being the
reference. Rounds alternate the two after warm-up; medians are printed.

Configurations: CPU: dcgan32 (the DCGAN at width 64, 32x32x1, batch 64: dcgan.flags' net before the
main-job recipe made it width 32), resnet32 (SNGAN's ResNets at Mimicry's size, G 256 / D 128 channels,
32x32x3, batch 64, spectral norm, one D step), ring_mlp (3x256, batch 512);
GPU/TPU: dcgan32, resnet32, dcgan64_b128 and dcgan64_b512 (64x64x3, width 64). Printed per configuration and
precision: ms per iteration, PyTorch ms / gan-jax ms, compile seconds, and achieved TFLOP/s (FLOPs
counted once by XLA:CPU's cost analysis of the f32 step, which counts convolutions; the GPU's does
not count cuDNN's) against the device's dense peak (CPU: a 2048^2 matmul measured in the same run).
Needs the `bench` extra (PyTorch): pip install -e '.[bench]'.
"""
import argparse
import dataclasses
import json
import os
import resource
import time

import numpy as np

from gan_jax import xla_cpu

xla_cpu.configure()  # Before JAX starts its CPU backend.

# Dense peak TFLOP/s by device kind (vendor figures): f32 runs as TF32 on the tensor cores under
# JAX's default matmul precision.
PEAK_TFLOPS = {"H100": {"f32": 494.7, "bf16": 989.4}, "H200": {"f32": 494.7, "bf16": 989.4},
               "A100": {"f32": 156.0, "bf16": 312.0}}


def peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak_tflops(n=2048, reps=10):
  import jax
  import jax.numpy as jnp
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    out = f(a)
  out.block_until_ready()
  return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def device_peak(precision: str):
  import jax
  device = jax.devices()[0]
  if device.platform == "cpu":
    return matmul_peak_tflops(), "f32 2048^2 matmul, this run"
  for kind, peaks in PEAK_TFLOPS.items():
    if kind in device.device_kind:
      return peaks[precision], f"{kind} dense {precision if precision == 'bf16' else 'TF32'} peak"
  return float("nan"), f"unknown peak for {device.device_kind}"


def configs(platform: str):
  """name -> (Config, data_shape, (latent shape for torch), torch kind)."""
  from gan_jax.config import Config
  dc = dict(workdir="-", dataset="mnist5k", model="dcgan", share_fakes=True, num_devices=1, width=64)
  out = {"dcgan32": (Config(**dc, latent_dim=100, resolution=32, batch_size=64), (32, 32, 1)),
         # SNGAN's ResNets at Mimicry's size (experiments/sngan.flags' nets), one D step per iteration.
         "resnet32": (Config(**{**dc, "model": "resnet", "width": 256}, d_width=128, latent_dim=128, resolution=32,
                             batch_size=64, spectral_norm=True), (32, 32, 3))}
  if platform == "cpu":
    out["ring_mlp"] = (Config(workdir="-", dataset="ring", model="mlp", latent_dim=2, batch_size=512,
                              share_fakes=True, num_devices=1), (2,))
  else:
    out["dcgan64_b128"] = (Config(**dc, latent_dim=100, resolution=64, batch_size=128), (64, 64, 3))
    out["dcgan64_b512"] = (Config(**dc, latent_dim=100, resolution=64, batch_size=512), (64, 64, 3))
  return out


class RandomImages:
  """An in-memory 'dataset' of random uint8 images (what DeviceFeed needs)."""

  def __init__(self, shape, n=1024, seed=0):
    from gan_jax.data.images import in_memory
    rng = np.random.default_rng(seed)
    self.ds = in_memory("random", rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                        np.zeros(n, np.int32), 0, seed)


def jax_trainer(cfg, data_shape):
  """(run(iters) -> s per iteration, compile s, steps per call, parameter count)."""
  import jax
  from gan_jax import sharding
  from gan_jax.data.feed import HostFeed, make_feed
  from gan_jax.data.toy import TOY, ToyDataset
  from gan_jax.nets import build_nets
  from gan_jax.state import count_params, init_state, make_optimizers
  from gan_jax.train_fn import steps_per_call, train_fn_from_config
  nets = build_nets(cfg, data_shape, sharding.DATA_AXIS)
  g_tx, d_tx = make_optimizers(cfg)
  mesh = sharding.make_mesh(1)
  state = jax.jit(lambda: init_state(cfg, nets, g_tx, d_tx), out_shardings=sharding.replicated_sharding(mesh))()
  spc = steps_per_call(cfg, jax.default_backend())
  if cfg.model != "mlp":
    feed = make_feed(RandomImages(data_shape).ds, mesh, 1, cfg.batch_size)
  else:
    feed = HostFeed(ToyDataset(TOY["ring"](), 0), mesh, 1, cfg.batch_size)
  inputs = feed.inputs(0, spc)
  fn = train_fn_from_config(cfg, nets, g_tx, d_tx, mesh, spc, feed.batch)
  bad = sharding.replicate(np.zeros((), np.int32), mesh)
  t = time.perf_counter()
  compiled = fn.lower(state, bad, feed.data, inputs).compile()
  compile_s = time.perf_counter() - t
  holder = {"state": state, "bad": bad}

  def run(iters):
    calls = max(1, iters // spc)
    t0 = time.perf_counter()
    for _ in range(calls):
      holder["state"], holder["bad"], _ = compiled(holder["state"], holder["bad"], feed.data, inputs)
    jax.block_until_ready(holder["state"])
    return (time.perf_counter() - t0) / (calls * spc)

  run(spc)  # warm-up
  return run, compile_s, spc, count_params(state.g_params) + count_params(state.d_params)


def flops_per_iteration(cfg, data_shape):
  """XLA:CPU's cost analysis of one f32 iteration (compiled for a CPU device, on any machine)."""
  import jax
  from gan_jax.nets import build_nets
  from gan_jax.state import init_state, make_optimizers
  from gan_jax.steps import make_steps
  cfg = dataclasses.replace(cfg, compute_dtype="f32")
  nets = build_nets(cfg, data_shape)
  g_tx, d_tx = make_optimizers(cfg)
  on_cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  place = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=on_cpu)  # noqa: E731
  state = jax.tree.map(place, jax.eval_shape(lambda: init_state(cfg, nets, g_tx, d_tx)))
  batch = {"x": place(np.zeros((1, cfg.batch_size, *data_shape), np.float32)),
           "label": place(np.zeros((1, cfg.batch_size), np.int32))}
  step = make_steps(cfg, nets, g_tx, d_tx).train_step
  cost = jax.jit(step).lower(state, batch).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def torch_trainers(kind, cfg, data_shape, device):
  """{variant: run(iters) -> s per iteration}, parameter count."""
  import torch
  import torch_reference as ref  # beside this script
  torch.manual_seed(0)
  variants = ("eager",) if device == "cpu" else ref.VARIANTS
  out, params = {}, None
  for variant in variants:
    if kind in ("dcgan", "resnet"):
      res, _, channels = data_shape
      if kind == "dcgan":
        g, d = ref.dcgan(cfg.latent_dim, cfg.width, channels, res)
        latent = (cfg.latent_dim, 1, 1)
      else:
        g, d = ref.resnet(cfg.latent_dim, cfg.width, cfg.d_width, channels)
        latent = (cfg.latent_dim,)
      real = torch.rand(cfg.batch_size, channels, res, res, device=device) * 2 - 1
    else:
      g, d = ref.mlp()
      latent, real = (2,), torch.randn(cfg.batch_size, 2, device=device)
    params = ref.count_params(g) + ref.count_params(d)
    trainer = ref.Trainer(g, d, latent, cfg.batch_size, device, variant)

    def run(iters, trainer=trainer, real=real):
      for _ in range(3 if iters < 3 else 0):
        trainer.step(real)
      if device != "cpu":
        torch.cuda.synchronize()
      t0 = time.perf_counter()
      for _ in range(iters):
        trainer.step(real)
      if device != "cpu":
        torch.cuda.synchronize()
      return (time.perf_counter() - t0) / iters

    run(5)  # warm-up (and torch.compile's compile)
    out[variant] = run
  return out, params


def measure(name, cfg, shape, args, torch_device):
  """Figures of one configuration and precision."""
  jax_run, compile_s, spc, jax_params = jax_trainer(cfg, shape)
  torch_runs, torch_params = torch_trainers(cfg.model, cfg, shape, torch_device)
  assert jax_params == torch_params, (name, jax_params, torch_params)
  iters = args.iters * (10 if cfg.model == "mlp" else 1)
  jax_ms, torch_ms = [], {v: [] for v in torch_runs}
  for _ in range(args.rounds):
    jax_ms.append(1000 * jax_run(max(iters, spc)))
    for variant, run in torch_runs.items():
      torch_ms[variant].append(1000 * run(iters))
  medians = {v: float(np.median(ms)) for v, ms in torch_ms.items()}
  best = min(medians, key=medians.get)
  jm = float(np.median(jax_ms))
  return {"config": name, "precision": cfg.compute_dtype, "params": jax_params, "steps_per_call": spc,
          "jax_ms": jm, "jax_ms_spread": [min(jax_ms), max(jax_ms)], "torch_ms": medians, "torch_best": best,
          "torch_over_jax": medians[best] / jm, "jax_compile_s": compile_s}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="", help="comma-separated names (default: all of the backend's)")
  parser.add_argument("--precisions", default="f32", help="f32, bf16 or both")
  parser.add_argument("--iters", type=int, default=20, help="iterations per timed round (MLP: x10)")
  parser.add_argument("--rounds", type=int, default=5, help="alternating gan-jax / PyTorch rounds")
  parser.add_argument("--json", default=None, help="write the figures here")
  args = parser.parse_args()
  import jax
  import torch
  platform = jax.default_backend()
  torch_device = "cuda" if platform == "gpu" else "cpu"
  if torch_device == "cpu":
    torch.set_num_threads(os.cpu_count())
  else:
    torch.backends.cudnn.benchmark = True
  chosen = [c for c in args.configs.split(",") if c]
  rows = []
  for name, (cfg, shape) in configs(platform).items():
    if chosen and name not in chosen:
      continue
    flops = flops_per_iteration(cfg, shape)
    for precision in args.precisions.split(","):
      row = measure(name, dataclasses.replace(cfg, compute_dtype=precision), shape, args, torch_device)
      peak, peak_what = device_peak(precision)
      row.update(flops_per_iter=flops, tflops=flops / (row["jax_ms"] / 1000) / 1e12, peak_tflops=peak,
                 peak=peak_what, peak_rss_mb=peak_rss_mb())
      rows.append(row)
  device = jax.devices()[0].device_kind
  print(f"device: {device} ({platform}), jax {jax.__version__}, torch {torch.__version__}")
  print("| config | precision | params | gan-jax ms/iter (min-max) | steps/call | PyTorch ms/iter (best of) | "
        "PyTorch/gan-jax | compile s | GFLOP/iter | TFLOP/s | % of peak |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    torch_cells = ", ".join(f"{v} {ms:.2f}" for v, ms in r["torch_ms"].items())
    print(f"| {r['config']} | {r['precision']} | {r['params']:,} | {r['jax_ms']:.2f} "
          f"({r['jax_ms_spread'][0]:.2f}-{r['jax_ms_spread'][1]:.2f}) | {r['steps_per_call']} | "
          f"{r['torch_ms'][r['torch_best']]:.2f} ({torch_cells}) | {r['torch_over_jax']:.2f} | "
          f"{r['jax_compile_s']:.1f} | {r['flops_per_iter'] / 1e9:.1f} | {r['tflops']:.3f} | "
          f"{100 * r['tflops'] / r['peak_tflops']:.1f} ({r['peak']}) |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"device": device, "platform": platform, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
