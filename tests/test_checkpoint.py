"""Nothing lost: exact resume, preemption, corrupt checkpoints, config mismatch, NaN guard, sampling."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import losses, restore, train
from tests.conftest import REPO, toy_config
from tests.test_images import image_config
from tests.test_run import run_cli

pytestmark = pytest.mark.integration


def assert_same_state(workdir_a, workdir_b, step):
  _, _, a, sa, _ = restore.load_run(str(workdir_a), step)
  _, _, b, sb, _ = restore.load_run(str(workdir_b), step)
  assert sa == sb == step
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    assert np.array_equal(np.asarray(x), np.asarray(y))


def records(workdir, after=-1):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["step"] > after]


def test_ring_resume_is_exact(tmp_path):
  kw = dict(train_steps=40, steps_per_call=10, eval_every=10, checkpoint_every=10, ema_decay=0.9, pack=2)
  train.train_and_evaluate(toy_config(tmp_path / "straight", **kw))
  train.train_and_evaluate(toy_config(tmp_path / "resumed", **{**kw, "train_steps": 20}))
  assert [r["step"] for r in records(tmp_path / "resumed")] == [10, 20]
  train.train_and_evaluate(toy_config(tmp_path / "resumed", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 40)
  assert records(tmp_path / "straight", 20) == records(tmp_path / "resumed", 20)
  assert [r["step"] for r in records(tmp_path / "resumed")] == [10, 20, 30, 40]


def test_dcgan_resume_is_exact(tmp_path):
  kw = dict(train_steps=12, eval_every=3, checkpoint_every=3)
  train.train_and_evaluate(image_config(tmp_path / "straight", "mnist5k", **kw))
  train.train_and_evaluate(image_config(tmp_path / "resumed", "mnist5k", **{**kw, "train_steps": 6}))
  train.train_and_evaluate(image_config(tmp_path / "resumed", "mnist5k", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 12)
  assert records(tmp_path / "straight", 6) == records(tmp_path / "resumed", 6)


RING_ARGS = ["--flagfile=ring.flags", "--train_steps=3000", "--steps_per_call=10", "--eval_every=500",
             "--log_every=10", "--checkpoint_every=500", "--g_hidden=32,32", "--d_hidden=32,32"]


def test_sigterm_saves_and_resume_is_exact(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONUNBUFFERED="1")
  killed = tmp_path / "killed"
  proc = subprocess.Popen([sys.executable, os.path.join(REPO, "experiments", "run.py"), *RING_ARGS,
                           f"--workdir={killed}"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  out = []
  for line in proc.stdout:  # Wait until it trains, then preempt it.
    out.append(line)
    if "step 100/3000" in line:
      proc.send_signal(signal.SIGTERM)
      break
  rest, _ = proc.communicate(timeout=120)
  out = "".join(out) + rest
  assert proc.returncode == 0, out[-3000:]
  saved = [l for l in out.splitlines() if l.startswith("SIGTERM: saved checkpoint at step")]
  assert saved, out[-3000:]
  stopped_at = int(saved[0].split("at step ")[1].split()[0])
  assert 100 <= stopped_at < 3000 and (killed / "checkpoints" / str(stopped_at)).is_dir()
  # Resume to the end, and compare with a run that was never interrupted.
  assert run_cli(*RING_ARGS, f"--workdir={killed}").returncode == 0
  assert run_cli(*RING_ARGS, f"--workdir={tmp_path / 'straight'}").returncode == 0
  assert_same_state(tmp_path / "straight", killed, 3000)
  assert records(tmp_path / "straight", stopped_at) == records(killed, stopped_at)


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  kw = dict(train_steps=10, steps_per_call=5, eval_every=5, checkpoint_every=5, keep_checkpoints=3)
  train.train_and_evaluate(toy_config(tmp_path / "w", **kw))
  state_dir = tmp_path / "w" / "checkpoints" / "10" / "state"
  for root, _, files in os.walk(state_dir):  # Simulate a kill in the middle of writing step 10.
    for f in files:
      if f != "_METADATA":
        os.remove(os.path.join(root, f))
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(toy_config(tmp_path / "w", **{**kw, "train_steps": 15}))
  assert "checkpoint at step 10 is incomplete or corrupt" in caplog.text
  assert (tmp_path / "w" / "checkpoints_corrupt" / "10").is_dir()
  train.train_and_evaluate(toy_config(tmp_path / "straight", **{**kw, "train_steps": 15}))
  assert_same_state(tmp_path / "straight", tmp_path / "w", 15)


def _hashes(directory):
  out = {}
  for root, _, files in os.walk(directory):
    for f in files:
      path = os.path.join(root, f)
      out[os.path.relpath(path, directory)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
  return out


def test_changing_model_on_resume_is_refused_and_leaves_checkpoints(tmp_path):
  args = ["--flagfile=dcgan.flags", f"--workdir={tmp_path}", "--width=8", "--resolution=28",
          "--latent_dim=16", "--batch_size=8", "--train_steps=2", "--eval_every=1",
          "--checkpoint_every=1", "--log_every=1"]
  assert run_cli(*args).returncode == 0
  before = _hashes(tmp_path / "checkpoints")
  result = run_cli(*args, "--model=mlp", "--train_steps=4")
  assert result.returncode == 2
  errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "--model=mlp (checkpoint: dcgan)" in errors[0]
  assert "Traceback" not in result.stderr
  assert _hashes(tmp_path / "checkpoints") == before
  # Flags that may change on resume just change.
  assert run_cli(*args, "--train_steps=3", "--log_every=2").returncode == 0


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  kw = dict(train_steps=10, steps_per_call=5, eval_every=5, checkpoint_every=5)
  train.train_and_evaluate(toy_config(tmp_path, **kw))
  poisoned = losses.GANLoss(losses.discriminator_loss, lambda logits: losses.nonsaturating_generator_loss(
      logits) * np.nan)
  monkeypatch.setitem(losses.LOSSES, "nonsaturating", poisoned)
  with pytest.raises(train.NonFiniteError, match=r"non-finite g_loss, g_grad_norm at step 11;.*the newest checkpoint \(step 10\) holds"):
    train.train_and_evaluate(toy_config(tmp_path, **{**kw, "train_steps": 20}))
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [5, 10]
  _, _, state, _, _ = restore.load_run(str(tmp_path))
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.g_params))


def test_best_checkpoint_is_kept_apart(tmp_path):
  train.train_and_evaluate(toy_config(tmp_path, train_steps=20, steps_per_call=5, eval_every=5,
                                      checkpoint_every=5, keep_checkpoints=1))
  best = [int(d) for d in os.listdir(tmp_path / "checkpoints_best")]
  assert len(best) == 1 and os.listdir(tmp_path / "checkpoints") == ["20"]
  scores = {r["step"]: (r["modes"], -r["reverse_kl"]) for r in records(tmp_path)}
  assert scores[best[0]] == max(scores.values())


def test_sample_py_writes_the_requested_count(tmp_path):
  train.train_and_evaluate(image_config(tmp_path / "w", "mnist5k", resolution=32, train_steps=2,
                                        eval_every=2, checkpoint_every=2))
  for n, out in ((10, "grid.png"), (7, "s.npz")):
    result = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "sample.py"),
                             f"--workdir={tmp_path / 'w'}", f"--num_samples={n}", f"--out={tmp_path / out}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
  # 10 samples of 32 px: a 4 x 3 grid with 2 px gaps.
  assert Image.open(tmp_path / "grid.png").size == (4 * 34 + 2, 3 * 34 + 2)
  assert np.load(tmp_path / "s.npz")["samples"].shape == (7, 32, 32, 1)
