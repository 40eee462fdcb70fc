"""N runs in one program (--seeds, gan_jax/replicas.py): each run is the run of its seed, resume is
exact, a non-finite run is frozen while the others go on, the mean +- std table, the refusals."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import replicas, restore, train
from gan_jax.errors import CheckpointError, ConfigError, NonFiniteError
from tests.conftest import toy_config
from tests.test_checkpoint import assert_same_state
from tests.test_faults import final, records
from tests.test_images import image_config

pytestmark = pytest.mark.integration


def _state(workdir, step=None):
  return restore.load_run(str(workdir), step)[2]


def _max_difference(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)) if np.size(x))


@pytest.mark.parametrize("kind", ["toy", "dcgan"])
def test_run_k_of_a_seeds_program_is_the_single_run_of_seed_k_in_loop_mode(tmp_path, kind):
  """The MLP: bit for bit (states, records, final metrics). The DCGAN: XLA compiles the stacked program's
  convolutions apart from the single run's, so within float rounding (benchmarks/results/replicas.md:
  1.2e-10 after 50 steps, 3e-8 after 2,000 on dcgan.flags' nets at width 8)."""
  make = (lambda w, **kw: toy_config(w, **kw)) if kind == "toy" else (
      lambda w, **kw: image_config(w, "mnist5k", train_steps=4, eval_every=2, checkpoint_every=2, **kw))
  train.train_and_evaluate(make(tmp_path / "program", seeds=(0, 3), replica_mode="loop"))
  train.train_and_evaluate(make(tmp_path / "single", seed=3))
  if kind == "toy":
    assert_same_state(tmp_path / "program" / "seed_3", tmp_path / "single", 10)
    assert records(tmp_path / "program" / "seed_3") == records(tmp_path / "single")
    assert final(tmp_path / "program" / "seed_3") == final(tmp_path / "single")
  else:
    assert _max_difference(_state(tmp_path / "program" / "seed_3"), _state(tmp_path / "single")) < 1e-6
  # and the other run is another run (the seeds are not mixed up)
  assert _max_difference(_state(tmp_path / "program" / "seed_0"), _state(tmp_path / "single")) > 1e-2


def test_vmap_mode_agrees_with_the_single_run_to_float_rounding(tmp_path):
  """vmap batches the matmuls (another summation order): not bitwise, but rounding-close after 10
  steps (measured: ~1e-6 here; the other seed's run differs by > 1e-2)."""
  train.train_and_evaluate(toy_config(tmp_path / "program", seeds=(0, 3), replica_mode="vmap"))
  train.train_and_evaluate(toy_config(tmp_path / "single", seed=3))
  assert _max_difference(_state(tmp_path / "program" / "seed_3"), _state(tmp_path / "single")) < 1e-4


def test_a_resumed_program_ends_bitwise_where_an_uninterrupted_one_does(tmp_path):
  kw = dict(seeds=(1, 2), replica_mode="vmap", train_steps=20)
  train.train_and_evaluate(toy_config(tmp_path / "straight", **kw))
  train.train_and_evaluate(toy_config(tmp_path / "resumed", **{**kw, "train_steps": 10}))
  train.train_and_evaluate(toy_config(tmp_path / "resumed", **kw))
  for seed in (1, 2):
    assert_same_state(tmp_path / "straight" / f"seed_{seed}", tmp_path / "resumed" / f"seed_{seed}", 20)
    assert records(tmp_path / "straight" / f"seed_{seed}") == records(tmp_path / "resumed" / f"seed_{seed}")
  table = json.loads((tmp_path / "resumed" / "runs.json").read_text())
  assert [row["step"] for row in table["evaluations"]["all runs"]] == [5, 10, 15, 20]


def test_a_frozen_run_keeps_its_state_while_the_others_train(tmp_path, monkeypatch):
  """Seed 1 frozen from the start (as after a non-finite step): its state stays the initial one, it is
  reported as not finished, and seed 0 is still the single run of seed 0."""
  monkeypatch.setattr(replicas.ReplicaRun, "bad_steps", lambda self: np.array([0, 1], np.int32))
  summary = train.train_and_evaluate(toy_config(tmp_path / "program", seeds=(0, 1), replica_mode="loop"))
  train.train_and_evaluate(toy_config(tmp_path / "single", seed=0))
  assert_same_state(tmp_path / "program" / "seed_0", tmp_path / "single", 10)
  assert summary["seed_0"]["finished"] and not summary["seed_1"]["finished"]
  assert int(_state(tmp_path / "program" / "seed_1", 0).step) == 0
  assert "no (frozen: non-finite)" in (tmp_path / "program" / "runs.md").read_text()


def test_when_every_run_is_frozen_the_program_stops_naming_them(tmp_path, monkeypatch):
  monkeypatch.setattr(replicas.ReplicaRun, "bad_steps", lambda self: np.array([3, 4], np.int32))
  with pytest.raises(NonFiniteError, match=r"every run went non-finite \(seed_5 at step 3, seed_6 at step 4\)"):
    train.train_and_evaluate(toy_config(tmp_path / "program", seeds=(5, 6)))


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_the_stacked_step_freezes_exactly_the_runs_with_a_bad_step(tmp_path, mode):
  run = replicas.ReplicaRun(toy_config(tmp_path, seeds=(0, 1), replica_mode=mode))
  state = run.fresh_state()
  before = jax.tree.map(np.asarray, state)
  bad = jnp.array([0, 7], jnp.int32)
  first, n = 0, 5
  new, bad_after, _ = run.train_fn(n)(state, bad, run.feed.data, run.feed.inputs(first, n))
  assert np.array_equal(np.asarray(bad_after), [0, 7])
  moved = [_max_difference(replicas.unstack(new, r), replicas.unstack(before, r)) for r in (0, 1)]
  assert moved[0] > 0 and moved[1] == 0
  run.feed.close()


def test_the_table_holds_mean_and_sample_std_of_every_metric_at_each_evaluation():
  rows = replicas.summarize({0: [{"step": 5, "modes": 8, "jsd": 0.1}, {"step": 10, "modes": 6}],
                             1: [{"step": 5, "modes": 6, "jsd": 0.3, "name": "x"}]})
  assert rows[0]["step"] == 5 and rows[0]["runs"] == 2
  assert rows[0]["metrics"]["modes"] == (7.0, pytest.approx(np.sqrt(2.0)))
  assert rows[0]["metrics"]["jsd"] == (pytest.approx(0.2), pytest.approx(np.sqrt(0.02)))
  assert "name" not in rows[0]["metrics"]
  assert rows[1] == {"step": 10, "runs": 1, "metrics": {"modes": (6.0, 0.0)}}


@pytest.mark.parametrize("overrides,message", [
    (dict(seeds=(1, 1)), r"--seeds=1,1: distinct seeds >= 0"),
    (dict(seeds=(0, 1), seed=4), r"--seeds=0,1: replaces --seed=4: pass one of them"),
    (dict(seeds=(0, 1), replica_mode="scan"), r"--replica_mode=scan")])
def test_bad_seeds_are_refused(tmp_path, overrides, message):
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(toy_config(tmp_path / "w", **overrides))
  assert not (tmp_path / "w").exists()


def test_the_program_directory_points_evaluate_and_sample_to_a_run(tmp_path):
  train.train_and_evaluate(toy_config(tmp_path, seeds=(2, 4), train_steps=5))
  with pytest.raises(CheckpointError, match=r"holds 2 runs stacked \(--seeds / --sweep\); read one of them: --workdir=.*seed_2 \(the others: seed_4\)"):
    restore.load_run(str(tmp_path))
  assert restore.load_run(str(tmp_path / "seed_4"))[0].seed == 4


@pytest.mark.parametrize("mode,sweep,single", [
    ("loop", "lr_d=1e-4,4e-4", dict(lr_d=4e-4)),
    ("vmap", "lr_d=1e-4,4e-4", dict(lr_d=4e-4)),
    ("vmap", "r1_weight=0.5,2", dict(r1_weight=2.0))])
def test_a_swept_run_is_the_single_run_of_its_value(tmp_path, mode, sweep, single):
  """Loop mode: bitwise. vmap: the value is traced through the optimiser or the penalty (measured:
  rounding-close); the other value's run differs by far more."""
  field, values = sweep.split("=")
  kept, other = values.split(",")[1], values.split(",")[0]
  train.train_and_evaluate(toy_config(tmp_path / "program", seeds=(0, 2), sweep=sweep, replica_mode=mode))
  train.train_and_evaluate(toy_config(tmp_path / "single", seed=2, **single))
  name = f"{field}_{float(kept):g}_seed_2"
  ours, theirs = _state(tmp_path / "program" / name), _state(tmp_path / "single")
  if mode == "loop":
    assert_same_state(tmp_path / "program" / name, tmp_path / "single", 10)
  else:
    assert _max_difference(ours, theirs) < 1e-4
  assert _max_difference(_state(tmp_path / "program" / f"{field}_{float(other):g}_seed_2"), theirs) > 1e-3
  text = (tmp_path / "program" / "runs.md").read_text()
  assert f"## {field}={float(kept):g}: 2 runs ({field}_{float(kept):g}_seed_0, {name})" in text


@pytest.mark.parametrize("sweep,message", [
    ("beta1=0.1,0.5", r"--sweep=beta1=0.1,0.5: a sweep is name=v1,v2,... with name one of lr_g, lr_d, gp_weight"),
    ("gp_weight=0,10", r"gp_weight=0 removes the term from the step"),
    ("lr_d=1e-4,x", r"the values of lr_d must be numbers"),
    ("acgan_weight=1,2", r"needs --conditioning=acgan"),
    ("lr_g=1e-4,-1", r"--lr_g=-1.0: ")])
def test_bad_sweeps_are_refused_naming_the_sweepable_fields(tmp_path, sweep, message):
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(toy_config(tmp_path / "w", sweep=sweep))
  assert not (tmp_path / "w").exists()


def test_a_signal_saves_the_stacked_state_and_the_program_resumes_exactly(tmp_path, monkeypatch):
  from gan_jax import runtime
  signals, dispatch = runtime.Signals(), train.dispatch_to_boundary

  def signalled_at_step_10(run, state, bad_step, step, caught):
    out = dispatch(run, state, bad_step, step, caught)
    if out[3] == 10:
      caught.append("SIGTERM")
    return out

  kw = dict(seeds=(0, 1), train_steps=20)
  monkeypatch.setattr(train, "dispatch_to_boundary", signalled_at_step_10)
  assert train.train_and_evaluate(toy_config(tmp_path / "resumed", **kw), signals) == {}
  monkeypatch.undo()
  assert sorted(os.listdir(tmp_path / "resumed" / "checkpoints")) == ["10", "5"]
  assert not (tmp_path / "resumed" / "seed_0" / "eval" / "final_metrics.json").exists()
  train.train_and_evaluate(toy_config(tmp_path / "resumed", **kw))
  train.train_and_evaluate(toy_config(tmp_path / "straight", **kw))
  for name in ("seed_0", "seed_1"):
    assert_same_state(tmp_path / "straight" / name, tmp_path / "resumed" / name, 20)
    assert records(tmp_path / "straight" / name) == records(tmp_path / "resumed" / name)


def test_the_start_up_memory_check_counts_every_run(tmp_path):
  """check_fits compiles the stacked call: its arguments hold all R states."""
  from gan_jax import launch
  one = launch.Run(toy_config(tmp_path / "one"))
  three = replicas.ReplicaRun(toy_config(tmp_path / "three", seeds=(0, 1, 2)))
  state_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(one.abstract_state))
  args = [r.train_fn(5).memory_analysis().argument_size_in_bytes for r in (one, three)]
  assert args[1] - args[0] >= 2 * state_bytes * 0.99
  for r in (one, three):
    r.feed.close()
