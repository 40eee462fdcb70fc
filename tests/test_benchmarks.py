"""The step-time benchmark runs end to end (timings are printed, never asserted)."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.integration
def test_step_time_runs_two_iterations_and_prints_its_table(tmp_path):
  out = tmp_path / "bench.json"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "step_time.py"), "--iters=2",
                           "--rounds=1", "--only=ring_mlp", f"--json={out}"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| config | params | JAX ms/iter" in result.stdout and "| ring_mlp |" in result.stdout
  figures = json.loads(out.read_text())["configs"]["ring_mlp"]
  assert figures["params"] > 0 and figures["jax_ms"] > 0 and figures["torch_ms"] > 0
  assert figures["flops_per_iter"] > 0
