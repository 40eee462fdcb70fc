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


@pytest.mark.slow
def test_gauss1d_flags_reach_figure1_panel_d(tmp_path):
  """experiments/gauss1d.flags, seed 3, cut to 30,000 iterations (its std_30k_bias_g128_r1 row in
  benchmarks/results/gauss1d_convergence.md met the goal on seeds 0-4): the 2014 paper's Figure 1, panel
  (d): JSD(p_data || p_g) <= 0.01 and max |D(x) - 1/2| <= 0.05 on mu +- 3 sigma (issue 26's goal). Seed 3
  ends at JSD 0.0024 and 0.005 with the flagfile's R1, at 0.0156 and 0.066 without it."""
  result = run_cli("--flagfile=gauss1d.flags", f"--workdir={tmp_path}", "--seed=3", "--train_steps=30000",
                   "--eval_every=30000", "--checkpoint_every=30000", "--eval_samples=20000")
  assert result.returncode == 0, result.stderr[-3000:]
  final = json.loads((tmp_path / "eval" / "final_metrics.json").read_text())
  assert final["jsd"] <= 0.01 and final["d_deviation"] <= 0.05, final
