"""Data parallelism: 8 fake devices equal 1, two processes equal one, clear errors."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import restore, train
from tests.conftest import REPO, toy_config
from tests.test_images import image_config

pytestmark = pytest.mark.integration


def final_params(workdir):
  _, _, state, _, _ = restore.load_run(str(workdir))
  return {"g": state.g_params, "d": state.d_params, "g_stats": state.g_collections,
          "d_stats": state.d_collections}


def assert_trees_close(a, b, atol):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0),
               a, b)


STEP_METRICS = ("d_loss", "d_real", "d_fake", "d_grad_norm", "g_loss", "d_fake_g", "g_grad_norm")


def one_step_on(cfg, num_devices, data_shape=(2,), num_classes=0):
  """(metrics, state) of one jitted, sharded training iteration on `num_devices` devices."""
  from gan_jax import data, sharding
  from gan_jax.nets import build_nets
  from gan_jax.state import init_state, make_optimizers
  from gan_jax.train_fn import train_fn_from_config
  nets = build_nets(cfg, data_shape, "data", num_classes)
  g_tx, d_tx = make_optimizers(cfg)
  batches = data.stacked_batches(data.make_dataset(cfg), 0, 1, cfg.d_steps, cfg.batch_size)
  mesh = sharding.make_mesh(num_devices)
  state = sharding.replicate(init_state(cfg, nets, g_tx, d_tx), mesh)
  fn = train_fn_from_config(cfg, nets, g_tx, d_tx, mesh, 1)
  state, _, metrics = fn(state, sharding.replicate(np.zeros((), np.int32), mesh), {},
                         sharding.shard_batches(batches, mesh))
  return sharding.to_host(metrics), sharding.to_host(state)


def test_gradients_are_averaged_not_summed(tmp_path):
  """One step on 8 devices: the same gradient norms and losses of both players as on 1 (Adam would
  hide a factor 8 in the weights)."""
  cfg = toy_config(tmp_path, batch_size=64)
  one, eight = one_step_on(cfg, 1)[0], one_step_on(cfg, 8)[0]
  for key in STEP_METRICS:
    np.testing.assert_allclose(eight[key], one[key], rtol=1e-5, err_msg=key)


def test_conditional_step_on_eight_devices_equals_one(tmp_path):
  """Labels travel with their rows: a projection-conditioned step is the same on 8 devices as on 1."""
  cfg = toy_config(tmp_path, batch_size=64, conditioning="projection")
  (m1, s1), (m8, s8) = one_step_on(cfg, 1, num_classes=8), one_step_on(cfg, 8, num_classes=8)
  for key in STEP_METRICS:
    np.testing.assert_allclose(m8[key], m1[key], rtol=1e-5, err_msg=key)
  assert_trees_close({"g": s1.g_params, "d": s1.d_params}, {"g": s8.g_params, "d": s8.d_params}, 1e-6)


def test_feature_matching_on_eight_devices_matches_the_global_batch(tmp_path):
  """||E f(x) - E f(G(z))||^2 of the global batch, and its gradient, whatever the device count (per-device
  means, squared and averaged, gave another loss: 11.49 against 11.31 on a semi-supervised step)."""
  cfg = toy_config(tmp_path, batch_size=64, feature_matching=True)
  (m1, s1), (m8, s8) = one_step_on(cfg, 1), one_step_on(cfg, 8)
  for key in STEP_METRICS:
    np.testing.assert_allclose(m8[key], m1[key], rtol=1e-5, err_msg=key)
  assert_trees_close({"g": s1.g_params, "d": s1.d_params}, {"g": s8.g_params, "d": s8.d_params}, 1e-6)


def test_eight_devices_equal_one_on_the_ring(tmp_path):
  assert jax.device_count() == 8
  kw = dict(train_steps=20, steps_per_call=10, eval_every=10, checkpoint_every=10, batch_size=64)
  train.train_and_evaluate(toy_config(tmp_path / "one", num_devices=1, **kw))
  train.train_and_evaluate(toy_config(tmp_path / "eight", num_devices=8, **kw))
  assert_trees_close(final_params(tmp_path / "one"), final_params(tmp_path / "eight"), 1e-5)


def test_eight_devices_equal_one_for_dcgan_with_global_batch_norm(tmp_path):
  kw = dict(train_steps=5, eval_every=5, checkpoint_every=5, batch_size=16, bn_sync=True)
  train.train_and_evaluate(image_config(tmp_path / "one", "mnist5k", num_devices=1, **kw))
  train.train_and_evaluate(image_config(tmp_path / "eight", "mnist5k", num_devices=8, **kw))
  one, eight = final_params(tmp_path / "one"), final_params(tmp_path / "eight")
  assert "batch_stats" in one["d_stats"]
  assert_trees_close(one, eight, 1e-5)


def test_per_device_batch_norm_differs_from_global(tmp_path):
  kw = dict(train_steps=2, eval_every=2, checkpoint_every=2, batch_size=16, num_devices=8)
  train.train_and_evaluate(image_config(tmp_path / "sync", "mnist5k", bn_sync=True, **kw))
  train.train_and_evaluate(image_config(tmp_path / "local", "mnist5k", bn_sync=False, **kw))
  a, b = final_params(tmp_path / "sync")["g"], final_params(tmp_path / "local")["g"]
  assert max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))) > 1e-6


def test_batch_that_does_not_divide_fails_before_any_step(tmp_path):
  with pytest.raises(config_lib.ConfigError, match=r"--batch_size=20: must be divisible by the number "
                                                   r"of devices \(8\); try --batch_size=16"):
    train.train_and_evaluate(toy_config(tmp_path / "w", batch_size=20, num_devices=8))
  assert not (tmp_path / "w").exists()


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


RING = ["--flagfile=ring.flags", "--train_steps=20", "--steps_per_call=10", "--eval_every=10",
        "--checkpoint_every=10", "--log_every=10", "--g_hidden=32,32", "--d_hidden=32,32", "--batch_size=64"]


def test_two_processes_equal_one_process_with_eight_devices(tmp_path):
  script = os.path.join(REPO, "experiments", "run.py")
  port = free_port()
  procs = []
  for pid in range(2):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    procs.append(subprocess.Popen(
        [sys.executable, script, *RING, f"--workdir={tmp_path / 'multi'}",
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={pid}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = [p.communicate(timeout=400)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  single = subprocess.run([sys.executable, script, *RING, f"--workdir={tmp_path / 'single'}"], env=env,
                          capture_output=True, text=True, timeout=400)
  assert single.returncode == 0, single.stderr[-3000:]
  assert_trees_close(final_params(tmp_path / "single"), final_params(tmp_path / "multi"), 1e-5)
  # Written once: one record per evaluation, one picture each; both players' losses and gradient
  # norms equal the single process's (a sum over processes instead of a mean would not).
  multi = [json.loads(l) for l in (tmp_path / "multi" / "metrics.jsonl").read_text().splitlines()]
  one = [json.loads(l) for l in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in multi] == [10, 20]
  for a, b in zip(multi, one):
    for key in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
  assert sorted(os.listdir(tmp_path / "multi" / "samples")) == ["step_0000010.png", "step_0000020.png"]
  assert "8 cpu devices" in outs[0]
  assert "step 20/20" in outs[0] and "step 20/20" not in outs[1]  # progress lines from process 0 only


SLOW_FIRST_SAVE = """
import os, runpy, sys, time
from orbax.checkpoint._src.checkpointers import async_checkpointer as ac
wait, saves = ac._background_wait_for_commit_futures, []
def slow_first(*args, **kwargs):  # process 1's first save (the best checkpoint) reaches its barrier late
  saves.append(1)
  if len(saves) == 1 and "--process_id=1" in sys.argv:
    time.sleep(4)
  return wait(*args, **kwargs)
ac._background_wait_for_commit_futures = slow_first
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

OVERLAP = ["--flagfile=ring.flags", "--train_steps=20", "--steps_per_call=10", "--checkpoint_every=20",
           "--eval_every=20", "--batch_size=512", "--g_hidden=32,32", "--d_hidden=32,32", "--checkpoint_timeout=60",
           "--theory_samples=0"]


def run_two_processes(tmp_path, args, launcher=None):
  """Exit codes and output of a two-process run (4 fake devices each) on loopback."""
  script = os.path.join(REPO, "experiments", "run.py")
  port, procs = free_port(), []
  for pid in range(2):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    head = [sys.executable, str(launcher), script] if launcher else [sys.executable, script]
    procs.append(subprocess.Popen(
        [*head, *args, f"--workdir={tmp_path / 'two'}", f"--coordinator_address=127.0.0.1:{port}",
         "--num_processes=2", f"--process_id={pid}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True))
  outs = [p.communicate(timeout=400)[0] for p in procs]
  return [p.returncode for p in procs], outs


def test_the_best_and_the_periodic_save_of_one_step_do_not_collide_across_processes(tmp_path):
  """Eval and checkpoint at step 20: two saves of one step; process 1's first one reaches orbax's
  barrier 4 s late, so process 0's second save enters while its first is still waiting there."""
  launcher = tmp_path / "slow_first_save.py"
  launcher.write_text(SLOW_FIRST_SAVE)
  codes, outs = run_two_processes(tmp_path, OVERLAP, launcher)
  assert codes == [0, 0], "\n".join(o[-2500:] for o in outs)
  for name in ("checkpoints", "checkpoints_best"):
    assert sorted(os.listdir(tmp_path / "two" / name)) == ["20"], name
    assert (tmp_path / "two" / name / "20" / "state" / "commit_success.txt").exists() or \
        (tmp_path / "two" / name / "20" / "_CHECKPOINT_METADATA").exists()
  _, _, state, step, _ = restore.load_run(str(tmp_path / "two"), best=True)
  assert step == 20


FAILING_SAVE = """
import runpy, sys
from orbax.checkpoint._src.checkpointers import async_checkpointer as ac
wait = ac._background_wait_for_commit_futures
def failing(*args, **kwargs):  # process 1 cannot write: its save fails before the barrier
  if "--process_id=1" in sys.argv:
    raise OSError("disk quota exceeded (simulated)")
  return wait(*args, **kwargs)
ac._background_wait_for_commit_futures = failing
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_save_failing_on_one_process_stops_every_process_with_one_line(tmp_path):
  import time
  launcher = tmp_path / "failing_save.py"
  launcher.write_text(FAILING_SAVE)
  args = [a if not a.startswith("--checkpoint_timeout") else "--checkpoint_timeout=20" for a in OVERLAP]
  t = time.time()
  codes, outs = run_two_processes(tmp_path, args, launcher)
  assert time.time() - t < 240  # bounded: no process waits for ever
  for code, out in zip(codes, outs):
    errors = [l for l in out.splitlines() if l.startswith("error:")]
    assert code == 2 and len(errors) == 1, out[-2500:]
    assert "saving a checkpoint in" in errors[0] and str(tmp_path / "two") in errors[0], errors[0]
