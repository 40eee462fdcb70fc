"""Nothing lost, nothing silent: reruns, flag order, torn records, corrupt arrays, the workdir lock,
odd image folders, unreadable checkpoints, bad input, resume rules, strict JSON, and SIGKILL at
random moments."""
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import config as config_lib
from gan_jax import restore, train, workdir
from gan_jax.errors import CheckpointError, ConfigError, WorkdirError
from tests.conftest import REPO, toy_config
from tests.test_checkpoint import assert_same_state, records
from tests.test_images import image_config
from tests.test_run import run_cli

KW = dict(train_steps=10, steps_per_call=5, eval_every=5, checkpoint_every=5, keep_checkpoints=3)


def final(workdir_path):
  return json.loads((workdir_path / "eval" / "final_metrics.json").read_text())


# 1. A finished run keeps its final evaluation ------------------------------------------------------

@pytest.mark.integration
def test_rerunning_a_finished_run_keeps_or_recomputes_its_final_evaluation(tmp_path, caplog):
  train.train_and_evaluate(toy_config(tmp_path, **KW))
  first = final(tmp_path)
  assert first["step"] == 10 and "modes" in first and len(first["mode_counts"]) == 8
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(toy_config(tmp_path, **KW))  # the same command again
  assert "at or past --train_steps=10: nothing to train" in caplog.text
  assert final(tmp_path) == first
  (tmp_path / "eval" / "final_metrics.json").unlink()  # as if a signal came before the final outputs
  train.train_and_evaluate(toy_config(tmp_path, **KW))
  assert final(tmp_path) == first  # recomputed from the restored state
  train.train_and_evaluate(toy_config(tmp_path, **{**KW, "train_steps": 5}))  # a lower --train_steps
  assert final(tmp_path) == first
  assert [r["step"] for r in records(tmp_path)] == [5, 10]  # and no record written twice


# 2. Command-line flags win over the flagfile wherever they stand ---------------------------------------

@pytest.mark.integration
def test_a_flag_before_the_flagfile_still_wins(tmp_path):
  result = run_cli(f"--workdir={tmp_path / 'mine'}", "--train_steps=20", "--steps_per_call=10", "--eval_every=20",
                   "--checkpoint_every=20", "--log_every=10", "--flagfile=ring.flags")
  assert result.returncode == 0, result.stderr[-2000:]
  assert [r["step"] for r in records(tmp_path / "mine")] == [20]


# 3. A torn last record is dropped, files are written whole -----------------------------------------

@pytest.mark.integration
def test_a_torn_last_metrics_record_is_dropped_with_a_warning(tmp_path, caplog):
  train.train_and_evaluate(toy_config(tmp_path, **KW))
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 1')  # a crash in the middle of writing a record
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(toy_config(tmp_path, **{**KW, "train_steps": 20}))
  assert "not a whole JSON record" in caplog.text
  assert [r["step"] for r in records(tmp_path)] == [5, 10, 15, 20]


def test_files_are_written_whole_in_strict_json(tmp_path):
  path = tmp_path / "out.json"
  workdir.write_json(str(path), {"modes": 3, "reverse_kl": float("inf"), "x": [1.0, float("nan")]})
  text = path.read_text()
  strict = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
  assert strict == {"modes": 3, "reverse_kl": None, "x": [1.0, None], "nonfinite": {"reverse_kl": "inf"}}
  assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left behind


# 4. Corrupt array data is caught at restore -----------------------------------------------------------

def _flip_bytes(directory, count=2):
  """Flips `count` bytes in the middle of the largest array file under `directory`."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs if "/d/" in os.path.join(r, f)]
  target = max(files, key=os.path.getsize)
  data = bytearray(open(target, "rb").read())
  for i in range(count):
    data[len(data) // 2 + 7 * i] ^= 0xFF
  open(target, "wb").write(bytes(data))


@pytest.mark.integration
def test_flipped_bytes_in_a_checkpoint_set_it_aside(tmp_path, caplog):
  train.train_and_evaluate(toy_config(tmp_path / "w", **KW))
  _flip_bytes(tmp_path / "w" / "checkpoints" / "10" / "state")
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(toy_config(tmp_path / "w", **{**KW, "train_steps": 15}))
  assert "checkpoint at step 10 is incomplete or corrupt" in caplog.text
  assert (tmp_path / "w" / "checkpoints_corrupt" / "10").is_dir()
  train.train_and_evaluate(toy_config(tmp_path / "straight", **{**KW, "train_steps": 15}))
  assert_same_state(tmp_path / "straight", tmp_path / "w", 15)


def test_a_checkpoint_with_non_finite_numbers_is_never_trained_from(tmp_path, caplog):
  from gan_jax import checkpoint as ckpt_lib
  train.train_and_evaluate(toy_config(tmp_path, **KW))
  _, _, state, _, meta = restore.load_run(str(tmp_path))
  poisoned = state.replace(g_params=jax.tree.map(lambda p: p * np.nan, state.g_params))
  saver = ckpt_lib.Checkpointer(str(tmp_path), 3)
  saver.save(15, poisoned, {**meta, "step": 15})  # its digest matches: only the finiteness check stops it
  saver.close()
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(toy_config(tmp_path, **{**KW, "train_steps": 20}))
  assert "non-finite" in caplog.text and (tmp_path / "checkpoints_corrupt" / "15").is_dir()


# 5. One run per workdir --------------------------------------------------------------------------------

def _plant_lock(path, host, pid, age=0.0):
  path.mkdir(parents=True, exist_ok=True)
  lock = path / ".lock"
  lock.write_text(json.dumps({"host": host, "pid": pid, "started": "earlier"}))
  os.utime(lock, (time.time() - age, time.time() - age))


def test_a_second_run_on_a_workdir_refuses_naming_the_holder(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    _plant_lock(tmp_path, socket.gethostname(), holder.pid)
    with pytest.raises(WorkdirError, match=rf"in use by another run \(host {socket.gethostname()}, pid {holder.pid}"):
      train.train_and_evaluate(toy_config(tmp_path, **KW))
    assert os.listdir(tmp_path) == [".lock"]  # nothing written
    result = run_cli("--flagfile=ring.flags", f"--workdir={tmp_path}")
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and str(holder.pid) in errors[0]
  finally:
    holder.kill()


@pytest.mark.parametrize("host,alive,age,taken", [("here", False, 0, True), ("elsewhere", None, 10, False),
                                                  ("elsewhere", None, 3600, True)],
                         ids=["dead_pid_here", "fresh_lock_elsewhere", "stale_lock_elsewhere"])
def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, host, alive, age, taken):
  done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
  pid = int(done.stdout)  # a process that has exited
  _plant_lock(tmp_path, socket.gethostname() if host == "here" else "another-host.example", pid, age)
  lock = workdir.WorkdirLock(str(tmp_path))
  if taken:
    lock.acquire()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / ".lock").exists()
  else:
    with pytest.raises(WorkdirError, match="another-host.example"):
      lock.acquire()


# 6. Image folders decoded faithfully ----------------------------------------------------------------------

def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
  from gan_jax.data import make_dataset
  root = tmp_path / "deep"
  root.mkdir()
  ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
  for i in range(4):
    Image.fromarray(ramp).save(root / f"{i}.png")  # uint16: a 16-bit grayscale PNG
  ds = make_dataset(image_config(tmp_path, f"folder:{root}", resolution=32))
  x = ds.get_batch(0, 4)["x"]
  assert ds.data_shape == (32, 32, 1)
  np.testing.assert_allclose(x[0, 0, :, 0], np.rint(np.linspace(0, 255, 32)) / 127.5 - 1, atol=1 / 127.5)
  assert np.mean(x >= 0.99) < 0.1  # not almost all white


def test_folder_channels_come_from_every_image_and_conversions_are_logged(tmp_path, caplog):
  from gan_jax.data import make_dataset
  root = tmp_path / "mixed"
  root.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), "L").save(root / "a.png")  # first file: gray
  Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), "RGB").save(root / "b.png")
  rgba = rng.integers(0, 255, (20, 20, 4), dtype=np.uint8)
  Image.fromarray(rgba, "RGBA").save(root / "c.png")
  Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), "RGB").convert("P").save(root / "d.png")
  with caplog.at_level("INFO"):
    ds = make_dataset(image_config(tmp_path, f"folder:{root}", resolution=28))
  assert ds.data_shape == (28, 28, 3)
  assert "1 alpha dropped" in caplog.text and "1 grayscale to RGB" in caplog.text and "1 palette" in caplog.text
  images, _ = ds.arrays
  gray = np.asarray(Image.open(root / "a.png").resize((28, 28), Image.BICUBIC))
  np.testing.assert_array_equal(images[0], np.repeat(gray[..., None], 3, -1))  # three equal channels
  forced = make_dataset(image_config(tmp_path, f"folder:{root}", resolution=28, channels=1))
  assert forced.data_shape == (28, 28, 1)


# 7. Every checkpoint unreadable: refuse, do not start over silently ------------------------------------

@pytest.mark.integration
def test_every_checkpoint_unreadable_is_refused_and_restart_keeps_the_old_outputs(tmp_path):
  train.train_and_evaluate(toy_config(tmp_path, **KW))
  before = (tmp_path / "metrics.jsonl").read_text()
  for step in ("5", "10"):
    _flip_bytes(tmp_path / "checkpoints" / step / "state", count=64)
  with pytest.raises(CheckpointError, match=r"checkpoints_corrupt/\. Rerun with --restart"):
    train.train_and_evaluate(toy_config(tmp_path, **{**KW, "train_steps": 20}))
  assert (tmp_path / "metrics.jsonl").read_text() == before  # no record duplicated
  train.train_and_evaluate(toy_config(tmp_path, **{**KW, "restart": True}))
  previous = [d for d in os.listdir(tmp_path) if d.startswith("previous_")]
  assert len(previous) == 1 and (tmp_path / previous[0] / "metrics.jsonl").read_text() == before
  assert (tmp_path / previous[0] / "checkpoints_corrupt").is_dir()
  assert [r["step"] for r in records(tmp_path)] == [5, 10]


# 8. Bad input: one error line, exit 2, nothing written ------------------------------------------------

BAD = [
    (["--seed=-1"], "--seed=-1: must be >= 0"),
    (["--process_id=0"], "--process_id needs --coordinator_address, --num_processes too"),
    (["--batch_size=100000000"], "--batch_size=100000000: one call of"),
    (["--lr_g=inf"], "--lr_g=inf: must be a finite number"),
    (["--beta2=0"], "--beta2=0.0: must lie in (0, 1)"),
    (["--flagfile=dcgan.flags", "--conditioning=none", "--eval_metrics=prdc", "--eval_samples=2"],
     "needs at least 6 samples for pr"),
]


@pytest.mark.parametrize("flags,message", BAD, ids=[b[0][-1] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, flags, message):
  w = tmp_path / "w"
  result = run_cli("--flagfile=ring.flags", f"--workdir={w}", *flags)
  errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert result.returncode == 2, result.stderr[-2000:]
  assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr and not w.exists()


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
  (tmp_path / "file").write_text("mine")
  result = run_cli("--flagfile=ring.flags", f"--workdir={tmp_path / 'file'}")
  assert result.returncode == 2 and "is a file, not a directory" in result.stderr
  assert (tmp_path / "file").read_text() == "mine"


def test_helpfull_exits_0(tmp_path):
  result = run_cli("--helpfull")
  assert result.returncode == 0 and "--batch_size" in result.stdout


def test_evaluate_py_refuses_too_few_samples(tmp_path):
  result = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "evaluate.py"),
                           f"--workdir={tmp_path}", "--num_samples=0"], capture_output=True, text=True)
  assert result.returncode == 2 and "--num_samples=0: must be at least 10" in result.stderr
  assert "Traceback" not in result.stderr


def test_a_signal_whose_keyboard_interrupt_was_dropped_still_stops_the_start_up(tmp_path):
  # Python drops an exception raised in a gc callback (JAX installs one): the signal is only in the list.
  from gan_jax import runtime
  signals = runtime.Signals()
  signals.caught.append("SIGINT")
  # A known handler first: pytest started in the background by a non-interactive shell inherits SIG_IGN.
  before = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    with runtime.handling_signals(signals), pytest.raises(KeyboardInterrupt):
      train.train_and_evaluate(toy_config(tmp_path / "w", **KW), signals)
    assert not (tmp_path / "w").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # ours removed again
  finally:
    signal.signal(signal.SIGINT, before)


def test_a_dropped_keyboard_interrupt_prints_no_traceback(monkeypatch):
  """Python hands an exception raised in a gc / weakref callback to sys.unraisablehook, which prints
  it with a traceback: a dropped KeyboardInterrupt (already recorded) must not get there."""
  from gan_jax import runtime
  reached = []
  monkeypatch.setattr(sys, "unraisablehook", lambda u: reached.append(type(u.exc_value).__name__))

  def unraisable(exc):
    return type("Unraisable", (), {"exc_type": type(exc), "exc_value": exc, "exc_traceback": None,
                                   "err_msg": "Exception ignored in", "object": None})()

  with runtime.handling_signals(runtime.Signals()):
    sys.unraisablehook(unraisable(KeyboardInterrupt()))
    sys.unraisablehook(unraisable(ValueError("shown")))  # anything else still reaches the previous hook
  assert reached == ["ValueError"]
  sys.unraisablehook(unraisable(KeyboardInterrupt()))  # the previous hook is back
  assert reached == ["ValueError", "KeyboardInterrupt"]


@pytest.mark.integration
def test_ctrl_c_during_start_up_is_one_line_and_leaves_nothing(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
  w = tmp_path / "w"
  proc = subprocess.Popen([sys.executable, os.path.join(REPO, "experiments", "run.py"), "--flagfile=dcgan.flags",
                           f"--workdir={w}", "--compilation_cache="], env=env, stderr=subprocess.PIPE, text=True)
  time.sleep(3.0)  # importing JAX, reading the digits, compiling
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err and len([l for l in err.splitlines() if l.startswith("error:")]) == 1
  assert not w.exists()


# 9. What may change on resume --------------------------------------------------------------------------

def test_every_config_field_declares_its_resume_policy():
  import dataclasses
  for field in dataclasses.fields(config_lib.Config):
    policy = field.metadata.get("resume")
    assert policy in (config_lib.SHAPE, config_lib.TRAJECTORY, config_lib.FREE) or callable(policy), field.name


@pytest.mark.parametrize("field,saved,current,schedule,group", [
    ("model", "mlp", "dcgan", "constant", "shape"), ("seed", 0, 1, "constant", "trajectory"),
    ("loss", "hinge", "wgan", "constant", "trajectory"), ("ema_decay", 0.9, 0.99, "constant", "trajectory"),
    ("batch_size", 64, 32, "constant", "trajectory"), ("d_steps", 1, 2, "constant", "trajectory"),
    ("train_steps", 10, 20, "constant", "free"), ("train_steps", 10, 20, "cosine", "trajectory"),
    ("historical_averaging", 0.0, 0.1, "constant", "shape"), ("historical_averaging", 0.1, 0.2, "constant", "trajectory"),
    ("eval_every", 5, 7, "constant", "free"), ("num_devices", 1, 8, "constant", "free")])
def test_resume_rules(field, saved, current, schedule, group):
  cfg = config_lib.Config(workdir="w", lr_schedule=schedule)
  assert config_lib.resume_policy(field, saved, current, cfg) == group


@pytest.mark.integration
def test_trajectory_changes_are_refused_unless_allowed_and_then_recorded(tmp_path):
  train.train_and_evaluate(toy_config(tmp_path, **KW))
  config_before = (tmp_path / "config.json").read_text()
  with pytest.raises(ConfigError, match=r"--seed=3 \(checkpoint: 0\).*--allow_config_change"):
    train.train_and_evaluate(toy_config(tmp_path, **{**KW, "seed": 3, "train_steps": 20}))
  assert (tmp_path / "config.json").read_text() == config_before
  train.train_and_evaluate(toy_config(tmp_path, **{**KW, "seed": 3, "loss": "hinge", "train_steps": 20,
                                                   "allow_config_change": True}))
  history = [json.loads(l) for l in (tmp_path / "config_history.jsonl").read_text().splitlines()]
  assert history[0]["step"] == 10
  assert history[0]["changes"] == {"seed": {"from": 0, "to": 3}, "loss": {"from": "nonsaturating", "to": "hinge"}}
  assert json.loads((tmp_path / "config.json").read_text())["seed"] == 3


# 10. sample.py keeps existing files; JSON stays strict ----------------------------------------------------

@pytest.mark.integration
def test_sample_py_refuses_to_overwrite_without_the_flag(tmp_path):
  train.train_and_evaluate(toy_config(tmp_path / "w", **KW))
  out = tmp_path / "mine.npz"
  out.write_bytes(b"precious")
  script = os.path.join(REPO, "experiments", "sample.py")
  result = subprocess.run([sys.executable, script, f"--workdir={tmp_path / 'w'}", f"--out={out}"],
                          capture_output=True, text=True)
  assert result.returncode == 2 and "--overwrite" in result.stderr and out.read_bytes() == b"precious"
  result = subprocess.run([sys.executable, script, f"--workdir={tmp_path / 'w'}", f"--out={out}", "--overwrite"],
                          capture_output=True, text=True)
  assert result.returncode == 0 and np.load(out)["samples"].shape == (64, 2)


def test_metrics_records_are_strict_json(tmp_path):
  from gan_jax import writers
  w = writers.MetricWriter(str(tmp_path))
  w.write(5, {"reverse_kl": float("inf"), "d_loss": 0.5})
  w.close()
  line = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
  record = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
  assert record == {"step": 5, "reverse_kl": None, "d_loss": 0.5, "nonfinite": {"reverse_kl": "inf"}}


def test_the_metric_writer_does_not_load_pytorch_but_leaves_it_importable(tmp_path):
  """tensorboardX imports torch where installed (1.7 s of each run's start-up here); the writer
  keeps it out, and a later `import torch` in the process still works where torch is installed."""
  code = ("import sys; from gan_jax import writers; w = writers.MetricWriter(sys.argv[1]); w.write(1, {'a': 1.0});"
          "w.close(); print('torch' in sys.modules)\n"
          "import torch; print(hasattr(torch, 'zeros'))")
  out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
  if importlib.util.find_spec("torch") is None:
    assert out.stdout.split() == ["False"] and "No module named 'torch'" in out.stderr, out.stderr[-2000:]
  else:
    assert out.returncode == 0 and out.stdout.split() == ["False", "True"], out.stderr[-2000:]
  assert os.listdir(tmp_path / "tensorboard")


# SIGKILL at random moments ------------------------------------------------------------------------------

FAULT_ARGS = ["--flagfile=ring.flags", "--g_hidden=32,32", "--d_hidden=32,32", "--train_steps=600",
              "--steps_per_call=10", "--checkpoint_every=10", "--eval_every=200", "--log_every=200",
              "--keep_checkpoints=2"]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_ends_bitwise_equal(tmp_path):
  """Killed (kill -9) eight times, resumed each time: the same final state, records and final
  evaluation as a run never stopped. Odd kills land at random during start-up or training, even
  ones at random once training runs, where one checkpoint is written every 10 steps (at least one
  kill must land inside a checkpoint write)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
  script = os.path.join(REPO, "experiments", "run.py")
  killed, rng, kills, in_writes = tmp_path / "killed", random.Random(0), 0, 0
  while True:
    proc = subprocess.Popen([sys.executable, script, *FAULT_ARGS, f"--workdir={killed}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kills < 8 and kills % 2 == 1:  # once this life has written a checkpoint of its own
      known = set(os.listdir(killed / "checkpoints")) if (killed / "checkpoints").exists() else set()
      while proc.poll() is None and not (set(os.listdir(killed / "checkpoints")) - known
                                         if (killed / "checkpoints").exists() else False):
        time.sleep(0.05)
    try:
      proc.wait(timeout=rng.uniform(0.0, 1.0) if kills % 2 else rng.uniform(2.0, 6.0)) if kills < 8 else proc.wait()
      break
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      kills += 1
      in_writes += any("tmp" in d for d in os.listdir(killed / "checkpoints")) if (killed / "checkpoints").exists() else 0
  assert proc.returncode == 0 and kills == 8 and in_writes >= 1, (kills, in_writes)
  assert run_cli(*FAULT_ARGS, f"--workdir={tmp_path / 'straight'}").returncode == 0
  assert_same_state(tmp_path / "straight", killed, 600)
  assert records(tmp_path / "straight") == records(killed)
  assert final(tmp_path / "straight") == final(killed)
  assert not (killed / ".lock").exists()
