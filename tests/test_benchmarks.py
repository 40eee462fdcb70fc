"""The benchmarks run end to end (timings are printed, never asserted), and each configures JAX as the
entry points do."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from gan_jax import runtime
from tests.conftest import REPO, load_run_py

BENCHMARKS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "benchmarks", "*.py"))
                    if open(p).read().count('if __name__ == "__main__":'))
# Imports benchmarks.NAME with XLA_FLAGS unset and reports whether gan_jax.xla_cpu.configure() ran, and
# whether JAX had been imported by then (XLA reads XLA_FLAGS once, when its CPU backend starts).
WATCH = """
import os, sys, importlib
os.environ.pop("XLA_FLAGS", None)
from gan_jax import xla_cpu
calls = []
configure = xla_cpu.configure
xla_cpu.configure = lambda *a, **k: calls.append("jax" in sys.modules) or configure(*a, **k)
sys.path.insert(0, "benchmarks")
importlib.import_module("benchmarks." + sys.argv[1])
print("calls", calls, "jax imported", "jax" in sys.modules)
"""


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_configures_jax_as_the_entry_points_do_before_jax_starts(name):
  result = subprocess.run([sys.executable, "-c", WATCH, name], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "calls [False" in result.stdout, result.stdout  # called first before any JAX import (again later: harmless)


@pytest.mark.integration
def test_step_time_runs_two_iterations_and_prints_its_table(tmp_path):
  pytest.importorskip("torch", reason="the PyTorch reference needs the bench extra: pip install -e '.[bench]'")
  out = tmp_path / "bench.json"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "step_time.py"), "--iters=2",
                           "--rounds=1", "--configs=ring_mlp", "--precisions=f32,bf16", f"--json={out}"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| config | precision | params | gan-jax ms/iter" in result.stdout and "| ring_mlp | bf16 |" in result.stdout
  rows = json.loads(out.read_text())["rows"]
  assert [r["precision"] for r in rows] == ["f32", "bf16"]
  for r in rows:
    assert r["params"] == 265_475 and r["jax_ms"] > 0 and r["torch_ms"]["eager"] > 0
    # 1.49 GFLOP per iteration (XLA's count of the f32 step), the same for both precisions.
    assert 1.3e9 < r["flops_per_iter"] < 1.7e9


@pytest.mark.integration
def test_mode_coverage_runs_seeds_tabulates_and_does_not_rerun_finished_runs(tmp_path):
  out, root = tmp_path / "table.md", tmp_path / "runs"
  cmd = [sys.executable, os.path.join(REPO, "benchmarks", "mode_coverage.py"), "--datasets=ring",
         "--variants=vanilla,cond_projection", "--seeds=0,1", "--train_steps=20", f"--root={root}",
         f"--output={out}"]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  first = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
  assert first.returncode == 0, first.stderr[-3000:]
  table = out.read_text()
  rows = [l for l in table.splitlines() if l.startswith("| vanilla |") or l.startswith("| cond_projection |")]
  assert len(rows) == 2 and all("| 2 |" in r for r in rows), table  # two seeds per row
  program = root / "ring" / "vanilla_20steps" / "program_0_1"  # the row's seeds: one --seeds program
  finals = [json.loads((program / f"seed_{seed}" / "eval" / "final_metrics.json").read_text()) for seed in (0, 1)]
  assert all(len(f["mode_counts"]) == 8 for f in finals)
  # The row is the mean over the seeds' own final metrics.
  row = next(r for r in rows if r.startswith("| vanilla |")).split("|")
  assert row[4].strip().startswith(f"{np.mean([f['modes'] for f in finals]):.1f} +- ")
  assert row[5].strip().startswith(f"{100 * np.mean([f['high_quality'] for f in finals]):.1f} +- ")
  stamp = (program / "seed_0" / "eval" / "final_metrics.json").stat().st_mtime
  again = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0 and "run.py" not in again.stdout  # nothing retrained
  assert (program / "seed_0" / "eval" / "final_metrics.json").stat().st_mtime == stamp
  assert out.read_text() == table
  bad = subprocess.run(cmd[:2] + ["--variants=nope"], cwd=REPO, capture_output=True, text=True)
  assert bad.returncode == 2 and "unknown variants ['nope']" in bad.stderr


def test_xla_cpu_flags_are_added_once_never_override_and_can_be_refused(monkeypatch):
  from gan_jax import xla_cpu
  monkeypatch.setattr(xla_cpu.importlib.metadata, "version", lambda name: "0.10.2")
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  flags = xla_cpu.configure(env)
  assert flags.startswith("--xla_force_host_platform_device_count=8 ")
  assert "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT" in flags
  assert xla_cpu.configure(env) == flags  # idempotent
  mine = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
  assert xla_cpu.configure(mine) == "--xla_cpu_experimental_ynn_fusion_type="  # the user's value wins
  assert xla_cpu.configure({xla_cpu.OPT_OUT: "0"}) == ""
  monkeypatch.setattr(xla_cpu.importlib.metadata, "version", lambda name: "0.12.0")
  assert xla_cpu.configure({}) == ""  # not measured there: an unknown flag would abort XLA


def _main_job_on_a_tiny_candidate(tmp_path, monkeypatch, seeds: str, eval_every: int, *flags):
  """benchmarks/main_job.py on a 2-step candidate 'tiny', workdirs kept: (the table, its 'tiny' rows)."""
  from benchmarks import main_job
  monkeypatch.setitem(main_job.CANDIDATES, "tiny", ["--width=8", "--batch_size=8", "--train_steps=2",
                                                    f"--eval_every={eval_every}", "--checkpoint_every=2",
                                                    "--eval_samples=100"])
  out = tmp_path / "main_job.md"
  monkeypatch.setattr(sys, "argv", ["main_job.py", "--candidates=tiny", f"--seeds={seeds}", f"--out={out}",
                                    f"--keep={tmp_path / 'runs'}", "--budget_s=0.001",
                                    f"--compilation_cache={os.environ[runtime.CACHE_ENV]}", *flags])
  main_job.main()
  table = out.read_text()
  return table, [l for l in table.splitlines() if l.startswith("| tiny |")]


def _logged_fids(tmp_path, seed: int) -> list:
  lines = (tmp_path / "runs" / f"tiny_seed{seed}" / "metrics.jsonl").read_text().splitlines()
  return [r["fid"] for r in map(json.loads, lines) if "fid" in r]


@pytest.mark.integration
def test_main_job_runs_a_candidate_and_appends_its_row(tmp_path, monkeypatch):
  table, row = _main_job_on_a_tiny_candidate(tmp_path, monkeypatch, "3", 2)
  assert "--candidates=tiny --seeds=3" in table
  assert len(row) == 1 and row[0].startswith("| tiny | 3 |")
  assert "(over budget)" in row[0] and "| 2 |" in row[0]  # steps reached
  final = json.loads((tmp_path / "runs" / "tiny_seed3" / "eval" / "final_metrics.json").read_text())
  assert f"| {final['fid']:.2f} | {final['class_reverse_kl']:.4f} |" in row[0]
  fids = _logged_fids(tmp_path, 3)
  assert len(fids) == 1 and f"| {fids[0]:.1f} |" in row[0]  # the FID at each evaluation (one, at step 2)


@pytest.mark.integration
def test_main_job_screens_candidates_side_by_side_one_cpu_each(tmp_path, monkeypatch):
  from benchmarks import main_job
  pinned, run = [], main_job.subprocess.run

  def spy(command, **kwargs):
    pinned.append(kwargs.get("preexec_fn") is not None)
    return run(command, **kwargs)

  monkeypatch.setattr(main_job.subprocess, "run", spy)
  table, rows = _main_job_on_a_tiny_candidate(tmp_path, monkeypatch, "3,4", 1, "--one_cpu_each")
  assert pinned == [True, True]
  assert "--one_cpu_each` (screening" in table
  assert [r.split(" | ")[1] for r in rows] == ["3", "4"]
  assert not any("(over budget)" in r for r in rows)  # a pinned run's wall time is not judged
  for seed, row in zip((3, 4), rows):
    fids = _logged_fids(tmp_path, seed)
    assert len(fids) == 2 and f"| {fids[0]:.1f} / {fids[1]:.1f} |" in row


def test_semi_supervised_table_keeps_each_run_under_its_flagfiles_flags(tmp_path, monkeypatch):
  from benchmarks import semi_supervised as table
  flagfile, root = tmp_path / "semi_supervised.flags", str(tmp_path / "runs")
  flagfile.write_text("# a comment\n--labeled_examples=100\n")
  monkeypatch.setattr(table, "FLAGFILE", str(flagfile))
  monkeypatch.setattr(table, "RUNS", str(tmp_path / "kept.jsonl"))
  trained = []
  final = {"held_out_errors": 31, "held_out_accuracy": 0.969, "step": 17000, "wall_s": 500.0, "held_out_examples": 1000}
  monkeypatch.setattr(table, "run_once", lambda flags, workdir, label: trained.append(workdir) or final)
  first = table.run_one("gan100", 0, root)
  digest = table.flags_digest(str(flagfile))
  assert trained == [os.path.join(root, digest, "gan100", "seed0")] and first["held_out_errors"] == 31
  assert set(table.FIGURES) <= set(first) and "held_out_examples" not in first
  assert sys.modules["run_once"].cpu_model() in first["machine"]  # the VM's CPU, as VMs change between sessions
  assert table.run_one("gan100", 0, root) == first and len(trained) == 1  # kept: not trained again
  assert table.run_one("gan100", 1, root, only_kept=True) is None and len(trained) == 1
  flagfile.write_text("# another comment\n\n--labeled_examples=100\n")
  assert table.run_one("gan100", 0, root) == first and len(trained) == 1  # comments do not change the key
  flagfile.write_text("--labeled_examples=100\n--train_steps=5\n")
  assert table.run_one("gan100", 0, root, only_kept=True) is None  # other flags: other runs
  table.run_one("gan100", 0, root)  # in a workdir of its own: an older flagfile's finished run is not reused
  assert len(trained) == 2 and trained[1] != trained[0] and len(table.kept_runs(table.RUNS)) == 2


def test_the_dcgan_semi_supervised_flagfile_holds_its_table_rows_flags():
  from benchmarks import semi_supervised as table
  run_py = load_run_py()

  def parsed(args):  # every flag's value as run.py parses it (a later value wins), the workdir aside
    flag_values = flags.FlagValues()
    run_py.define_flags(flag_values)
    flag_values(run_py.resolve_flagfiles(["run.py", *args]))
    return {name: flag_values[name].value for name in flag_values if name != "workdir"}

  row = table.ROWS[table.DCGAN_RECIPE].flags
  assert parsed(["--flagfile=semi_supervised_dcgan.flags"]) == parsed([f"--flagfile={table.FLAGFILE}", *row])
