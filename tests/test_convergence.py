"""Slow: the shipped flagfiles reach the figures the README promises."""
import json

import pytest

from tests.test_run import run_cli


@pytest.mark.slow
def test_ring_flags_cover_all_modes(tmp_path):
  """experiments/ring.flags, seed 0: 8/8 modes and >= 90% high-quality samples (PacGAN protocol). The
  theory's records are off (--theory_samples=0: a fifth of the run's time; they leave training as it is,
  and tests/test_theory.py checks them)."""
  result = run_cli("--flagfile=ring.flags", f"--workdir={tmp_path}", "--theory_samples=0")
  assert result.returncode == 0, result.stderr[-3000:]
  final = json.loads((tmp_path / "eval" / "final_metrics.json").read_text())
  assert final["modes"] == 8 and final["high_quality"] >= 0.90, final
