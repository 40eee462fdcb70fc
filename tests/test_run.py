"""experiments/run.py end to end: flagfiles, outputs, and bad input (exit 2, one line, nothing written)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import train
from tests.conftest import REPO, toy_config


def run_cli(*args, cwd=REPO):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, os.path.join(REPO, "experiments", "run.py"), *args],
                        cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


BAD = [
    ("--dataset=moons", "--dataset=moons", "valid choices: ring[:radius=R,sigma=S], grid[:sigma=S], gauss1d, mnist5k[:SPLIT]"),
    ("--model=stylegan", "--model=stylegan", "valid choices: mlp, dcgan"),
    ("--loss=kl", "--loss=kl", "valid choices: nonsaturating, minimax, maximum_likelihood, wgan, hinge, lsgan"),
    ("--batch_size=0", "--batch_size=0", "must be a positive number"),
    ("--train_steps=-5", "--train_steps=-5", "must be a positive number"),
    ("--label_smoothing=1.0", "--label_smoothing=1.0", "must lie in [0, 1)"),
    ("--label_smoothing=-0.1", "--label_smoothing=-0.1", "must lie in [0, 1)"),
]


@pytest.mark.parametrize("flag,named,allowed", BAD, ids=[b[0] for b in BAD])
def test_bad_flag_values_exit_2_with_one_line(tmp_path, flag, named, allowed):
  workdir = tmp_path / "w"
  result = run_cli("--flagfile=ring.flags", f"--workdir={workdir}", flag)
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and named in lines[0] and allowed in lines[0], result.stderr
  assert not workdir.exists()


def test_unknown_flag_and_missing_flagfile(tmp_path):
  result = run_cli("--flagfile=ring.flags", "--bacth_size=3", f"--workdir={tmp_path}/w")
  assert result.returncode == 2 and "bacth_size" in result.stderr and "Traceback" not in result.stderr
  result = run_cli("--flagfile=nope.flags")
  assert result.returncode == 2 and "nope.flags" in result.stderr and "ring.flags" in result.stderr


@pytest.mark.integration
def test_run_py_trains_from_a_flagfile_found_in_experiments(tmp_path):
  workdir = tmp_path / "ring"
  result = run_cli("--flagfile=ring.flags", "--workdir=ring", "--train_steps=40",  # relative to cwd
                   "--steps_per_call=20", "--eval_every=20", "--log_every=20", "--checkpoint_every=20",
                   cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [20, 40]
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "modes", "high_quality", "reverse_kl"):
    assert key in records[-1]
  assert (workdir / "samples" / "step_0000040.png").exists()
  samples = np.load(workdir / "eval" / "final_samples.npy")
  assert samples.shape == (2500, 2) and np.all(np.isfinite(samples))
  final = json.loads((workdir / "eval" / "final_metrics.json").read_text())
  assert set(final) >= {"modes", "high_quality", "reverse_kl"}
  assert "steps/s" in result.stderr and "ETA" in result.stderr
  assert sorted(os.listdir(workdir / "checkpoints")) == ["20", "40"]
  assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_flagfile_path_from_repo_root(tmp_path):
  result = run_cli("--flagfile=experiments/gauss1d.flags", f"--workdir={tmp_path}/g", "--train_steps=10",
                   "--steps_per_call=5", "--eval_every=5", "--checkpoint_every=5", "--log_every=5")
  assert result.returncode == 0, result.stderr[-3000:]
  assert np.load(tmp_path / "g" / "eval" / "final_samples.npy").shape == (20000, 1)  # gauss1d.flags: --eval_samples=20000


@pytest.mark.integration
def test_same_seed_same_run(tmp_path):
  a = train.train_and_evaluate(toy_config(tmp_path / "a"))
  b = train.train_and_evaluate(toy_config(tmp_path / "b"))
  train.train_and_evaluate(toy_config(tmp_path / "c", seed=1))
  sa, sb, sc = (np.load(tmp_path / n / "eval" / "final_samples.npy") for n in "abc")
  np.testing.assert_array_equal(sa, sb)
  assert a == b and not np.array_equal(sa, sc)


def test_validate_rejects_dcgan_on_toy_data(tmp_path):
  with pytest.raises(config_lib.ConfigError, match=r"--model=dcgan: dcgan takes image data, not --dataset=ring \(toy"):
    config_lib.validate(toy_config(tmp_path, model="dcgan"))
  with pytest.raises(config_lib.ConfigError, match="--pack=3: must divide --batch_size=32"):
    config_lib.validate(toy_config(tmp_path, pack=3))
