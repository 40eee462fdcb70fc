"""The asynchronous loop: call plan, boundaries, no per-step host sync, batches gathered on device,
steps per call, the persistent compilation cache."""
import contextlib
import json
import os

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import sharding, train
from gan_jax.data import make_dataset, stacked_batches
from gan_jax.data.feed import DeviceFeed, HostFeed, make_feed
from gan_jax.train_fn import steps_per_call
from tests.conftest import toy_config
from tests.test_images import image_config, write_pngs
from tests.test_run import run_cli


def test_calls_end_at_every_log_eval_and_checkpoint_step_whatever_steps_per_call(tmp_path):
  cfg = toy_config(tmp_path, train_steps=45, log_every=10, eval_every=15, checkpoint_every=20)
  calls = train.call_lengths(cfg, 7, 0, 100)
  ends = [first + n for first, n in calls]
  assert ends == [7, 10, 15, 20, 27, 30, 37, 40, 45]
  assert [first for first, _ in calls] == [0] + ends[:-1]  # contiguous
  # A pure function of the step: a run resumed at any call end continues with the same calls.
  assert train.call_lengths(cfg, 7, 27, 100) == calls[5:]


@pytest.mark.integration
def test_intervals_are_honoured_when_they_do_not_divide_by_steps_per_call(tmp_path):
  cfg = toy_config(tmp_path, train_steps=45, steps_per_call=7, log_every=10, eval_every=15,
                   checkpoint_every=20, keep_checkpoints=5)
  train.train_and_evaluate(cfg)
  steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps == [15, 30, 45]
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [20, 40, 45]


@pytest.mark.integration
def test_the_loop_reads_the_devices_only_at_boundaries(tmp_path, monkeypatch):
  """50 one-step calls, boundaries at 25 and 50: a handful of host reads, not one per step."""
  reads = []
  to_host = sharding.to_host
  monkeypatch.setattr(sharding, "to_host", lambda tree: reads.append(1) or to_host(tree))
  train.train_and_evaluate(toy_config(tmp_path, train_steps=50, steps_per_call=1, log_every=25, eval_every=25,
                                      checkpoint_every=25))
  assert len(reads) <= 12, len(reads)


@pytest.mark.parametrize("d_steps", [1, 2])
def test_batches_gathered_on_device_equal_the_host_batches_bit_for_bit(tmp_path, d_steps):
  """Across epoch boundaries (12 images, batch 8), with k D steps, on 8 devices."""
  write_pngs(tmp_path / "pngs", 12, mode="RGB")
  cfg = image_config(tmp_path, f"folder:{tmp_path / 'pngs'}", batch_size=8, d_steps=d_steps, num_devices=8)
  dataset = make_dataset(cfg)
  mesh = sharding.make_mesh(8)
  feed = make_feed(dataset, mesh, d_steps, 8)
  assert isinstance(feed, DeviceFeed)
  inputs = feed.inputs(3, 5)  # steps 3..7: stream positions 24 .. 24 + 5 * k * 8
  per_device = jax.shard_map(jax.vmap(feed.batch, in_axes=(None, 0)), mesh=mesh,
                             in_specs=(sharding.P(), sharding.BATCH_SPEC), out_specs=sharding.BATCH_SPEC)
  gathered = jax.jit(per_device)(feed.data, inputs)  # as inside the sharded training step
  host = stacked_batches(dataset, 3, 5, d_steps, 8)
  for key in ("x", "label"):
    got = np.asarray(gathered[key])
    assert got.dtype == host[key].dtype and got.shape == host[key].shape
    np.testing.assert_array_equal(got.view(np.uint32) if key == "x" else got,
                                  host[key].view(np.uint32) if key == "x" else host[key])


def test_pixels_map_to_the_historical_float32_values():
  """uint8 v -> v / 127.5 - 1 in float32, as the host pipeline always computed it (so runs and
  checkpoints from before the device path see the same numbers)."""
  from gan_jax.data.images import PIXEL_VALUES
  v = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(PIXEL_VALUES.view(np.uint32), (v.astype(np.float32) / 127.5 - 1.0).view(np.uint32))
  assert PIXEL_VALUES[0] == -1.0 and PIXEL_VALUES[255] == 1.0


def test_toy_streams_and_oversized_datasets_use_the_host_feed(tmp_path, monkeypatch):
  mesh = sharding.make_mesh(1)
  assert isinstance(make_feed(make_dataset(toy_config(tmp_path)), mesh, 1, 32), HostFeed)
  from gan_jax.data import feed as feed_lib
  monkeypatch.setattr(feed_lib, "DEVICE_DATA_LIMIT", 1000)
  assert isinstance(make_feed(make_dataset(image_config(tmp_path, "mnist5k")), mesh, 1, 8), HostFeed)


def test_host_feed_prepares_the_next_calls_and_returns_the_same_batches(tmp_path):
  cfg = toy_config(tmp_path, batch_size=16)
  mesh = sharding.make_mesh(1)
  feed = HostFeed(make_dataset(cfg), mesh, 1, 16)
  first = feed.inputs(0, 5, [(5, 5), (10, 5)])
  assert set(feed._pending) == {(5, 5), (10, 5)}
  second = feed.inputs(5, 5, [(10, 5), (15, 5)])
  feed.close()
  expected = stacked_batches(make_dataset(cfg), 5, 5, 1, 16)
  np.testing.assert_array_equal(np.asarray(second["x"]), expected["x"])
  assert np.asarray(first["x"]).shape == (5, 1, 16, 2)


def test_auto_steps_per_call(tmp_path):
  mlp, dcgan = toy_config(tmp_path), image_config(tmp_path, "mnist5k", steps_per_call="auto")
  mlp = toy_config(tmp_path, steps_per_call="auto")
  assert steps_per_call(dcgan, "cpu") == 1  # the XLA:CPU scan trap for conv nets
  assert steps_per_call(dcgan, "gpu") == steps_per_call(mlp, "cpu") == steps_per_call(mlp, "tpu") == 100
  assert steps_per_call(toy_config(tmp_path, steps_per_call="7"), "gpu") == 7


@pytest.mark.integration
def test_a_rerun_loads_the_compiled_step_from_the_persistent_cache(tmp_path):
  cache = tmp_path / "cache"
  args = ["--flagfile=ring.flags", "--train_steps=20", "--steps_per_call=10", "--eval_every=20",
          "--checkpoint_every=20", "--log_every=10", f"--compilation_cache={cache}"]
  assert run_cli(*args, f"--workdir={tmp_path / 'a'}").returncode == 0
  steps = {f for f in os.listdir(cache) if f.startswith("jit_run-")}
  assert steps  # the training step was written to the cache
  assert run_cli(*args, f"--workdir={tmp_path / 'b'}").returncode == 0
  assert {f for f in os.listdir(cache) if f.startswith("jit_run-")} == steps  # and read back, not compiled


# --- mixed precision --------------------------------------------------------------------------------

def _one_step(cfg, shape, precision, batch):
  import dataclasses
  from gan_jax.nets import build_nets
  from gan_jax.state import init_state, make_optimizers
  from gan_jax.steps import make_steps
  cfg = dataclasses.replace(cfg, compute_dtype=precision)
  nets = build_nets(cfg, shape)
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  step = make_steps(cfg, nets, g_tx, d_tx).train_step
  new, metrics = jax.jit(step)(state, batch)
  return state, new, metrics, jax.make_jaxpr(step)(state, batch)


def _dtypes_of(jaxpr, primitive):
  """Operand dtypes of every `primitive` equation in a jaxpr and its sub-jaxprs."""
  found = []

  def walk(jpr):
    for eqn in jpr.eqns:
      if eqn.primitive.name == primitive:
        found.append(str(eqn.invars[0].aval.dtype))
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jaxpr.jaxpr)
  return found


CASES = {"mlp": (dict(), (2,), "dot_general"),
         "dcgan": (dict(model="dcgan", dataset="mnist5k", width=8, latent_dim=16, batch_size=16), (32, 32, 1),
                   "conv_general_dilated")}


@pytest.mark.parametrize("case", list(CASES))
def test_bf16_step_computes_in_bf16_and_keeps_float32_state(tmp_path, case):
  overrides, shape, op = CASES[case]
  cfg = toy_config(tmp_path, **overrides)
  batch = {"x": jax.random.uniform(jax.random.key(0), (1, cfg.batch_size, *shape), minval=-1, maxval=1),
           "label": jnp.zeros((1, cfg.batch_size), jnp.int32)}
  s32, new32, m32, jaxpr32 = _one_step(cfg, shape, "f32", batch)
  s16, new16, m16, jaxpr16 = _one_step(cfg, shape, "bf16", batch)
  assert set(_dtypes_of(jaxpr32, op)) == {"float32"}
  assert _dtypes_of(jaxpr16, op).count("bfloat16") > _dtypes_of(jaxpr16, op).count("float32")
  # Parameters, optimiser state, batch-norm statistics and EMA stay float32; losses come out float32.
  floating = [x for x in jax.tree.leaves(new16) if jnp.issubdtype(x.dtype, jnp.floating)]
  assert floating and all(x.dtype == jnp.float32 for x in floating)
  assert all(m16[k].dtype == jnp.float32 for k in ("d_loss", "g_loss"))
  # The same step: losses within bf16 round-off of f32's (a cast of [-1, 1] pixels or of the
  # logits to an integer type, or a lost scale, would be far off), weights moved the same way.
  for key in ("d_loss", "g_loss", "d_real", "d_fake"):
    np.testing.assert_allclose(m16[key], m32[key], rtol=3e-2, atol=3e-3, err_msg=key)
  moved32 = jax.tree.map(lambda a, b: np.sign(np.asarray(a) - np.asarray(b)), new32.g_params, s32.g_params)
  moved16 = jax.tree.map(lambda a, b: np.sign(np.asarray(a) - np.asarray(b)), new16.g_params, s16.g_params)
  agree = np.mean(np.concatenate([(a == b).ravel() for a, b in zip(jax.tree.leaves(moved32),
                                                                  jax.tree.leaves(moved16))]))
  assert agree > 0.8, agree


def test_bf16_gradient_penalties_differentiate_d_in_float32(tmp_path):
  cfg = toy_config(tmp_path, loss="wgan", gp_weight=10.0, r1_weight=1.0)
  batch = {"x": jax.random.normal(jax.random.key(0), (1, cfg.batch_size, 2)),
           "label": jnp.zeros((1, cfg.batch_size), jnp.int32)}
  _, _, m32, _ = _one_step(cfg, (2,), "f32", batch)
  _, _, m16, jaxpr = _one_step(cfg, (2,), "bf16", batch)
  assert "bfloat16" in _dtypes_of(jaxpr, "dot_general")
  for key in ("gp", "r1"):
    assert m16[key].dtype == jnp.float32
    np.testing.assert_allclose(m16[key], m32[key], rtol=1e-5, err_msg=key)  # computed by the f32 D


@pytest.mark.integration
@pytest.mark.parametrize("case", ["ring", "dcgan"])
def test_bf16_trains_200_steps_finite_and_checkpoints_float32(tmp_path, case):
  from gan_jax import restore
  if case == "ring":
    cfg = toy_config(tmp_path, compute_dtype="bf16", train_steps=200, steps_per_call=100, eval_every=100,
                     checkpoint_every=200, pack=2, ema_decay=0.99)
  else:
    cfg = image_config(tmp_path, "mnist5k", compute_dtype="bf16", train_steps=200, eval_every=100,
                       checkpoint_every=200, log_every=100, batch_size=16, share_fakes=True)
  train.train_and_evaluate(cfg)
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [100, 200]
  assert all(np.isfinite(r[k]) for r in rows for k in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"))
  _, _, state, _, _ = restore.load_run(str(tmp_path))
  floating = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
  assert all(x.dtype == jnp.float32 for x in floating)


@contextlib.contextmanager
def no_host_reads():
  """Between boundaries, any read of a device array by the host fails: on the CPU backend JAX's own
  device-to-host guard sees no transfer (CPU arrays live in host memory), so this is its equivalent:
  every implicit read (float, int, bool, item, tolist, device_get, np.asarray / np.array of a device
  array) and block_until_ready raise, on every thread."""
  from jax._src import array

  def refuse(*_, **__):
    raise AssertionError("a device array was read by the host between two boundaries of the loop")

  def guarded(fn):
    return lambda a, *args, **kw: refuse() if isinstance(a, jax.Array) else fn(a, *args, **kw)

  saved = (array.ArrayImpl._value, array.ArrayImpl.block_until_ready, np.asarray, np.array)
  array.ArrayImpl._value, array.ArrayImpl.block_until_ready = property(refuse), refuse
  np.asarray, np.array = guarded(np.asarray), guarded(np.array)
  try:
    yield
  finally:
    array.ArrayImpl._value, array.ArrayImpl.block_until_ready, np.asarray, np.array = saved


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["ring", "dcgan"])
def test_nothing_reads_the_devices_between_two_boundaries(tmp_path, monkeypatch, kind):
  """Calls are dispatched without one host read between boundaries (what keeps an accelerator's queue
  full); a read planted in the dispatch path makes the run fail."""
  monkeypatch.setattr(train, "between_boundaries", no_host_reads)
  cfg = (toy_config(tmp_path, train_steps=12, steps_per_call=2, log_every=6, eval_every=6, checkpoint_every=6)
         if kind == "ring" else image_config(tmp_path, "mnist5k", train_steps=6, eval_every=3, checkpoint_every=3,
                                             log_every=3))
  train.train_and_evaluate(cfg)
  assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1] == cfg.train_steps
