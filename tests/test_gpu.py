"""On the accelerator (marked `gpu`; skipped where JAX finds no GPU or TPU): the main job's loop with a
scan over steps, in float32 and bfloat16. Each runs experiments/run.py in a subprocess that is not
pinned to the CPU, with memory preallocation off."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, accelerator_env

pytestmark = pytest.mark.gpu


def run_on_accelerator(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "experiments", "run.py"), *args], cwd=REPO,
                        env=accelerator_env(), capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_dcgan_flags_train_on_the_accelerator(tmp_path, precision):
  result = run_on_accelerator("--flagfile=dcgan.flags", f"--workdir={tmp_path}", "--train_steps=300",
                              "--log_every=100", "--eval_every=300", "--checkpoint_every=300",
                              f"--compute_dtype={precision}", "--compilation_cache=")
  assert result.returncode == 0, result.stderr[-3000:]
  devices = next(l for l in result.stderr.splitlines() if "devices, global batch" in l)
  assert " gpu devices" in devices or " tpu devices" in devices, devices
  record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["step"] == 300 and all(np.isfinite(record[k]) for k in ("d_loss", "g_loss", "fid"))
