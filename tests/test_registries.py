"""A model, a dataset and a metric from outside the package (tests/extensions/), each one module plus
one registry line: validation, --helpfull, training, the best checkpoint's ranking and evaluate.py's
table all find them."""
import contextlib
import json
import os
import re

import pytest
from absl import flags

from gan_jax import config as config_lib
from gan_jax import evaluation, train
from gan_jax.data import DATASETS, DatasetSpec
from gan_jax.errors import ConfigError
from gan_jax.metrics import HIGHER, METRICS, MetricSpec
from gan_jax.nets import IMAGE, MODELS, ModelSpec
from tests.conftest import load_run_py, toy_config


@contextlib.contextmanager
def dummies():
  """The three extensions registered for the block (each: one line)."""
  with MODELS.registered(ModelSpec("linear", "tests.extensions.dummy_model:build", "one dense layer each way",
                                   convolutional=False, data=(IMAGE,), options=("g_output",))), \
       DATASETS.registered(DatasetSpec("noise40", "tests.extensions.dummy_dataset:load", "40 random images",
                                       syntax="noise40[:SPLIT]", held_out=lambda arg: "noise40:test" if arg != "test"
                                       else None, check=lambda arg: None if arg in ("", "train", "test") else
                                       "valid splits: train, test", num_classes=2)), \
       METRICS.registered(MetricSpec("brightness", "tests.extensions.dummy_metric:brightness", "mean pixel value",
                                     better={"brightness": HIGHER}, rank=("brightness",), rank_priority=-1)):
    yield


def dummy_config(workdir, **kw):
  base = dict(model="linear", dataset="noise40", resolution=28, latent_dim=8, batch_size=8, train_steps=6,
              steps_per_call=2, eval_every=2, checkpoint_every=2, log_every=2, eval_samples=16,
              eval_metrics="brightness", keep_checkpoints=5)
  return toy_config(workdir, **{**base, **kw})


def test_validation_knows_the_registered_model_dataset_and_metric(tmp_path):
  with dummies():
    config_lib.validate(dummy_config(tmp_path))
    with pytest.raises(ConfigError, match="--dataset=noise40:val: valid splits: train, test"):
      config_lib.validate(dummy_config(tmp_path, dataset="noise40:val"))
    with pytest.raises(ConfigError, match="--model=linear: linear takes image data, not --dataset=ring"):
      config_lib.validate(dummy_config(tmp_path, dataset="ring", eval_metrics=""))
  with pytest.raises(ConfigError, match=re.escape("--dataset=noise40: valid choices: ring[:radius=R,sigma=S], grid[:sigma=S], gauss1d, mnist5k")):
    config_lib.validate(dummy_config(tmp_path))  # gone with the block
  with pytest.raises(ConfigError, match="--model=linear: valid choices: mlp, dcgan"):
    config_lib.validate(dummy_config(tmp_path, dataset="mnist5k", eval_metrics=""))


def test_helpfull_lists_the_registered_entries():
  run_py = load_run_py()
  with dummies():
    flag_values = flags.FlagValues()
    run_py.define_flags(flag_values)
    text = flag_values.get_help()
  for entry in ("linear: one dense layer each way", "noise40[:SPLIT]: 40 random images", "brightness: mean pixel value",
                "(Used by --model=mlp | linear.)"):
    assert entry in " ".join(text.split()), entry


@pytest.mark.integration
def test_a_run_ranks_its_best_checkpoint_by_the_registered_metric_and_evaluate_tabulates_it(tmp_path):
  with dummies():
    train.train_and_evaluate(dummy_config(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: r["brightness"])["step"]
    assert os.listdir(tmp_path / "checkpoints_best") == [str(best)]
    result = evaluation.evaluate_run(str(tmp_path), num_samples=16)
  assert result["columns"] == ["generated 16 vs train 32", "generated 8 vs train 32", "held-out 8 vs train 32 (real "
                               "baseline)", "generated 8 vs held-out 8", "train 8 vs held-out 8 (real baseline)"]
  _, generated, held_out_vs_train, versus_held_out, train_vs_held_out = result["rows"]["brightness"]
  assert generated == versus_held_out and None not in (held_out_vs_train, train_vs_held_out)  # the real sets' own
  assert "| brightness |" in evaluation.format_table(result)
