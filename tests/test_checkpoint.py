"""Nothing lost: exact resume, preemption, corrupt checkpoints, config mismatch, NaN guard, sampling."""
import hashlib
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import losses, restore, train
from gan_jax.generate import generate_samples
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
  """metrics.jsonl's records after step `after`, non-finite values (strict JSON: null) restored."""
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  out = []
  for r in map(json.loads, lines):
    r.update({k: float(v) for k, v in r.pop("nonfinite", {}).items()})
    if r["step"] > after:
      out.append(r)
  return out


@pytest.mark.parametrize("d_steps,share", [(1, False), (2, False), (2, True)], ids=["k1", "k2", "k2_shared"])
def test_ring_resume_is_exact(tmp_path, d_steps, share):
  kw = dict(train_steps=40, steps_per_call=10, eval_every=10, checkpoint_every=10, ema_decay=0.9, pack=2,
            d_steps=d_steps, share_fakes=share)
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


RING_ARGS = ["--flagfile=ring.flags", "--train_steps=300", "--steps_per_call=10", "--eval_every=50",
             "--log_every=10", "--checkpoint_every=50", "--g_hidden=32,32", "--d_hidden=32,32",
             "--theory_samples=0"]  # the theory's records resume exactly in tests/test_faults.py's SIGKILL test


def test_sigterm_saves_and_resume_is_exact(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONUNBUFFERED="1")
  killed = tmp_path / "killed"
  proc = subprocess.Popen([sys.executable, os.path.join(REPO, "experiments", "run.py"), *RING_ARGS,
                           f"--workdir={killed}"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  out = []
  for line in proc.stdout:  # Wait until it trains, then preempt it.
    out.append(line)
    if "step 100/300" in line:
      proc.send_signal(signal.SIGTERM)
      break
  rest, _ = proc.communicate(timeout=120)
  out = "".join(out) + rest
  assert proc.returncode == 0, out[-3000:]
  saved = [l for l in out.splitlines() if l.startswith("SIGTERM: saved checkpoint at step")]
  assert saved, out[-3000:]
  stopped_at = int(saved[0].split("at step ")[1].split()[0])
  assert 100 <= stopped_at < 300 and (killed / "checkpoints" / str(stopped_at)).is_dir()
  # Resume to the end, and compare with a run that was never interrupted.
  assert run_cli(*RING_ARGS, f"--workdir={killed}").returncode == 0
  assert run_cli(*RING_ARGS, f"--workdir={tmp_path / 'straight'}").returncode == 0
  assert_same_state(tmp_path / "straight", killed, 300)
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
  args = ["--flagfile=dcgan.flags", f"--workdir={tmp_path}", "--width=8", "--resolution=28", "--eval_samples=100",
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


def test_nan_at_a_later_step_inside_a_call_is_named_and_nothing_after_it_is_written(tmp_path, monkeypatch):
  kw = dict(train_steps=10, steps_per_call=5, eval_every=5, checkpoint_every=5)
  train.train_and_evaluate(toy_config(tmp_path, **kw))
  poison_batches(monkeypatch, {12})  # the real batch of step 13 (one D step per iteration), mid-call
  with pytest.raises(train.NonFiniteError, match=r"non-finite d_loss.* at step 13;.*the newest checkpoint "
                                                 r"\(step 10\) holds"):
    train.train_and_evaluate(toy_config(tmp_path, **{**kw, "train_steps": 20}))
  assert [r["step"] for r in records(tmp_path)] == [5, 10]
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [5, 10]


def poison_batches(monkeypatch, indices):
  """Toy batches at these stream indices hold NaNs."""
  from gan_jax.data import toy
  get_batch = toy.ToyDataset.get_batch

  def poisoned(self, index, batch_size, rows=slice(None)):
    batch = get_batch(self, index, batch_size, rows)
    return {**batch, "x": batch["x"] * np.nan} if index in indices else batch

  monkeypatch.setattr(toy.ToyDataset, "get_batch", poisoned)


def test_nan_before_any_checkpoint_says_so_and_writes_nothing(tmp_path, monkeypatch):
  poison_batches(monkeypatch, {2})
  with pytest.raises(train.NonFiniteError, match=r"at step 3;.*no checkpoint had been written yet"):
    train.train_and_evaluate(toy_config(tmp_path, train_steps=10, steps_per_call=5, eval_every=5,
                                        checkpoint_every=5))
  assert not os.path.exists(tmp_path / "checkpoints") or not os.listdir(tmp_path / "checkpoints")
  assert not (tmp_path / "metrics.jsonl").exists() or records(tmp_path) == []


def test_nan_policy_ignore_trains_on(tmp_path, monkeypatch):
  poison_batches(monkeypatch, {2})
  train.train_and_evaluate(toy_config(tmp_path, train_steps=10, steps_per_call=5, eval_every=5,
                                      checkpoint_every=5, nan_policy="ignore"))
  assert [r["step"] for r in records(tmp_path)] == [5, 10]
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [5, 10]


def test_run_py_stops_on_nan_with_one_error_line_and_exit_2(tmp_path):
  args = ["--flagfile=ring.flags", f"--workdir={tmp_path}", "--steps_per_call=10", "--eval_every=10",
          "--checkpoint_every=10", "--log_every=10", "--g_hidden=32,32", "--d_hidden=32,32"]
  assert run_cli(*args, "--train_steps=20").returncode == 0
  result = run_cli(*args, "--train_steps=200", "--lr_d=1e30", "--lr_g=1e30", "--allow_config_change")  # diverges
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "non-finite" in errors[0] and "Traceback" not in result.stderr
  bad = int(errors[0].split(" at step ")[1].split(";")[0])
  assert bad > 20 and [r["step"] for r in records(tmp_path)] == list(range(10, bad, 10))  # no record of the bad step or after it
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records(tmp_path))


def test_records_after_the_restored_step_are_dropped_and_rewritten(tmp_path):
  """A run that died after writing records 15 and 20 but before checkpoint 20: resuming from 10 writes
  them again, once each, identical."""
  kw = dict(train_steps=20, steps_per_call=5, eval_every=5, checkpoint_every=10, keep_checkpoints=3)
  train.train_and_evaluate(toy_config(tmp_path, **kw))
  before = records(tmp_path)
  import shutil
  shutil.rmtree(tmp_path / "checkpoints" / "20")
  train.train_and_evaluate(toy_config(tmp_path, **kw))
  assert [r["step"] for r in records(tmp_path)] == [5, 10, 15, 20]
  assert records(tmp_path) == before


def scripted_modes(monkeypatch, values):
  """Each toy evaluation reports the next number of modes from `values` (then 1)."""
  from gan_jax.metrics import modes
  queue = list(values)
  real = modes.mode_metrics

  def fake(samples, means, sigma):
    out = real(samples, means, sigma)
    return {**out, "modes": queue.pop(0) if queue else 1}

  monkeypatch.setattr(modes, "mode_metrics", fake)


def test_best_score_is_carried_across_a_resume(tmp_path, monkeypatch):
  kw = dict(steps_per_call=5, eval_every=5, checkpoint_every=5)
  scripted_modes(monkeypatch, [8, 3, 4, 2])  # evaluations at steps 5, 10 | 15, 20
  train.train_and_evaluate(toy_config(tmp_path, train_steps=10, **kw))
  train.train_and_evaluate(toy_config(tmp_path, train_steps=20, **kw))
  assert os.listdir(tmp_path / "checkpoints_best") == ["5"]  # not 15, the best after the resume


def test_sample_py_best_draws_from_the_best_checkpoint(tmp_path, monkeypatch):
  scripted_modes(monkeypatch, [8, 3])
  train.train_and_evaluate(toy_config(tmp_path / "w", train_steps=10, steps_per_call=5, eval_every=5,
                                      checkpoint_every=5))
  script = os.path.join(REPO, "experiments", "sample.py")
  for flag, out in (("--best", "best.npz"), ("--nobest", "latest.npz")):
    result = subprocess.run([sys.executable, script, f"--workdir={tmp_path / 'w'}", flag, "--num_samples=16",
                             f"--out={tmp_path / out}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
  best, latest = (np.load(tmp_path / n) for n in ("best.npz", "latest.npz"))
  assert int(best["step"]) == 5 and int(latest["step"]) == 10
  _, nets, state, _, _ = restore.load_run(str(tmp_path / "w"), best=True)
  np.testing.assert_allclose(best["samples"], generate_samples(nets, state, 16), rtol=1e-6)
  assert not np.allclose(best["samples"], latest["samples"])


def test_resume_across_an_epoch_boundary_is_exact(tmp_path):
  """12 images, batch 8: epochs end inside batches 1, 2, 4, 5; resuming at step 3 reads the same batches."""
  from tests.test_images import write_pngs
  write_pngs(tmp_path / "pngs", 12, mode="L")
  kw = dict(train_steps=6, eval_every=3, checkpoint_every=3)
  data = f"folder:{tmp_path / 'pngs'}"
  train.train_and_evaluate(image_config(tmp_path / "straight", data, **kw))
  train.train_and_evaluate(image_config(tmp_path / "resumed", data, **{**kw, "train_steps": 3}))
  train.train_and_evaluate(image_config(tmp_path / "resumed", data, **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 6)


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


def test_a_checkpoint_written_before_a_state_field_was_added_resumes_exactly(tmp_path):
  """GANState gained ema_g_collections (None unless --ema_statistics=ema): a checkpoint of an earlier
  version lacks the key altogether, and still restores and resumes bitwise."""
  import dataclasses

  import orbax.checkpoint as ocp

  from gan_jax import checkpoint as ckpt_lib
  kw = dict(train_steps=10, steps_per_call=5, eval_every=5, checkpoint_every=5, keep_checkpoints=3)
  train.train_and_evaluate(toy_config(tmp_path / "old", **{**kw, "train_steps": 5}))
  _, _, state, _, meta = restore.load_run(str(tmp_path / "old"))
  older = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "ema_g_collections"}
  directory = tmp_path / "old" / "checkpoints"
  import shutil
  shutil.rmtree(directory / "5")
  mngr = ocp.CheckpointManager(str(directory))
  mngr.save(5, args=ocp.args.Composite(state=ocp.args.StandardSave(older), meta=ocp.args.JsonSave(meta)))
  mngr.wait_until_finished()
  assert "ema_g_collections" not in ckpt_lib._saved_tree(str(directory), 5)
  train.train_and_evaluate(toy_config(tmp_path / "old", **kw))
  train.train_and_evaluate(toy_config(tmp_path / "straight", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "old", 10)
  assert not (tmp_path / "old" / "checkpoints_corrupt").exists()
