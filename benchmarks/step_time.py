"""Training-iteration time of gan-jax against PyTorch on this machine, in one run.

  python benchmarks/step_time.py [--iters=20] [--rounds=5] [--json=FILE]

Configurations: (a) DCGAN 32x32x1, batch 64, latent 100 (dcgan.flags' network, share_fakes on: the
PyTorch DCGAN loop); (b) the ring MLP (3x256 ReLU, latent 2), batch 512. One iteration = one D step on
real and fake + one non-saturating G step, Adam 2e-4 / 0.5. JAX goes through the framework's own
`make_train_fn` (shard_map + jit + donation; the MLP with `steps_per_call` steps per call). Rounds
alternate JAX and PyTorch after warm-up. Printed per configuration: median and spread of ms per
iteration, PyTorch ms / JAX ms, compile time, achieved GFLOP/s (XLA's cost analysis of the compiled
step) beside this machine's matmul peak measured in the same run, peak resident memory.
Needs the `bench` extra (PyTorch): pip install -e '.[bench]'.
"""
import argparse
import json
import os
import resource
import time

import numpy as np

from gan_jax import xla_cpu  # noqa: E402

xla_cpu.configure()  # Before JAX starts its CPU backend.


def peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak_gflops(n=2048, reps=10):
  import jax
  import jax.numpy as jnp
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    out = f(a)
  out.block_until_ready()
  return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def jax_trainer(cfg, data_shape, steps_per_call):
  """(run(n_iters) -> seconds, compile seconds, FLOPs per iteration, parameter count)."""
  import jax
  from gan_jax import sharding
  from gan_jax.nets import build_nets
  from gan_jax.state import count_params, create_state, make_optimizers
  from gan_jax.sharding import DATA_AXIS
  from gan_jax.steps import make_train_fn
  nets = build_nets(cfg, data_shape, DATA_AXIS)
  g_tx, d_tx = make_optimizers(cfg)
  mesh = sharding.make_mesh(1)
  state = sharding.replicate(create_state(cfg, nets, g_tx, d_tx), mesh)
  fn = make_train_fn(cfg, nets, g_tx, d_tx, mesh, steps_per_call)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (steps_per_call, 1, cfg.batch_size, *data_shape)).astype(np.float32)
  batches = sharding.shard_batches({"x": x, "label": np.zeros(x.shape[:3], np.int32)}, mesh)
  t = time.perf_counter()
  compiled = fn.lower(state, batches).compile()
  compile_s = time.perf_counter() - t
  # XLA's cost analysis counts a loop body once: take FLOPs from a one-step compile.
  one = make_train_fn(cfg, nets, g_tx, d_tx, mesh, 1)
  cost = one.lower(state, jax.tree.map(lambda a: a[:1], batches)).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0))
  params = count_params(state.g_params) + count_params(state.d_params)
  holder = {"state": state}

  def run(iters):
    calls = max(1, iters // steps_per_call)
    t0 = time.perf_counter()
    for _ in range(calls):
      holder["state"], _, _ = compiled(holder["state"], batches)
    jax.block_until_ready(holder["state"])
    return (time.perf_counter() - t0) / (calls * steps_per_call)

  run(steps_per_call)  # warm-up
  return run, compile_s, flops, params


def torch_trainer(kind, batch):
  import torch
  import torch_reference as ref  # beside this script
  torch.manual_seed(0)
  if kind == "dcgan":
    g, d = ref.dcgan()
    trainer = ref.Trainer(g, d, (100, 1, 1), batch)
    real = torch.rand(batch, 1, 32, 32) * 2 - 1
  else:
    g, d = ref.mlp()
    trainer = ref.Trainer(g, d, (2,), batch)
    real = torch.randn(batch, 2)
  params = ref.count_params(g) + ref.count_params(d)

  def run(iters):
    t0 = time.perf_counter()
    for _ in range(iters):
      trainer.step(real)
    return (time.perf_counter() - t0) / iters

  run(3)  # warm-up
  return run, params


def configs():
  from gan_jax.config import Config
  dcgan = Config(workdir="-", dataset="mnist5k", model="dcgan", resolution=32, width=64, latent_dim=100,
                 batch_size=64, share_fakes=True, num_devices=1)
  ring = Config(workdir="-", dataset="ring", model="mlp", latent_dim=2, batch_size=512, share_fakes=True,
                num_devices=1)
  return {"dcgan": (dcgan, (32, 32, 1), 1), "ring_mlp": (ring, (2,), 200)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--iters", type=int, default=20, help="iterations per timed round (MLP: x10)")
  parser.add_argument("--rounds", type=int, default=5, help="alternating JAX / PyTorch rounds")
  parser.add_argument("--only", choices=["dcgan", "ring_mlp"], default=None)
  parser.add_argument("--json", default=None, help="write the figures here")
  args = parser.parse_args()
  import torch
  torch.set_num_threads(os.cpu_count())
  peak = matmul_peak_gflops()
  results = {"machine": {"cpus": os.cpu_count(), "matmul_peak_gflops": peak}, "configs": {}}
  for name, (cfg, shape, spc) in configs().items():
    if args.only and name != args.only:
      continue
    iters = args.iters * (10 if name == "ring_mlp" else 1)
    jax_run, compile_s, flops, jax_params = jax_trainer(cfg, shape, spc)
    torch_run, torch_params = torch_trainer("dcgan" if name == "dcgan" else "mlp", cfg.batch_size)
    assert jax_params == torch_params, (name, jax_params, torch_params)
    jax_ms, torch_ms = [], []
    for _ in range(args.rounds):
      jax_ms.append(1000 * jax_run(iters))
      torch_ms.append(1000 * torch_run(iters))
    jm, tm = float(np.median(jax_ms)), float(np.median(torch_ms))
    results["configs"][name] = {
        "params": jax_params, "jax_ms": jm, "jax_ms_spread": [min(jax_ms), max(jax_ms)],
        "torch_ms": tm, "torch_ms_spread": [min(torch_ms), max(torch_ms)], "torch_over_jax": tm / jm,
        "jax_compile_s": compile_s, "jax_gflops": flops / (jm / 1000) / 1e9, "flops_per_iter": flops,
        "peak_rss_mb": peak_rss_mb()}
  print(f"machine: {os.cpu_count()} CPUs, jitted 2048^2 matmul peak {peak:.0f} GFLOP/s")
  print("| config | params | JAX ms/iter (min-max) | PyTorch ms/iter (min-max) | PyTorch/JAX | "
        "compile s | JAX GFLOP/s | peak RSS MB |")
  print("|---|---|---|---|---|---|---|---|")
  for name, r in results["configs"].items():
    print(f"| {name} | {r['params']:,} | {r['jax_ms']:.2f} ({r['jax_ms_spread'][0]:.2f}-{r['jax_ms_spread'][1]:.2f}) "
          f"| {r['torch_ms']:.2f} ({r['torch_ms_spread'][0]:.2f}-{r['torch_ms_spread'][1]:.2f}) "
          f"| {r['torch_over_jax']:.2f} | {r['jax_compile_s']:.1f} | {r['jax_gflops']:.1f} | {r['peak_rss_mb']:.0f} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
