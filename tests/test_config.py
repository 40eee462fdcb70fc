"""The config: names against the registries they select from, help texts, resume policies, dict round trip."""
import dataclasses

from gan_jax import config as config_lib
from gan_jax import losses, metrics
from gan_jax.data import DATASETS, toy
from gan_jax.nets import MODELS
from gan_jax.nets.layers import ACTIVATIONS, COMPUTE_DTYPES
from gan_jax.state import SCHEDULES


def test_name_lists_are_the_registries_keys():
  assert config_lib.LOSS_NAMES == tuple(losses.LOSSES)
  assert config_lib.LR_SCHEDULES == tuple(SCHEDULES)
  assert config_lib.COMPUTE_DTYPES == tuple(COMPUTE_DTYPES)
  assert set(config_lib.D_ACTIVATIONS) - {"maxout"} <= set(ACTIVATIONS)
  assert set(config_lib.OUTPUT_ACTIVATIONS) <= set(ACTIVATIONS)
  assert {s.name for s in DATASETS if s.kind == "toy"} == set(toy.TOY)


def test_help_texts_list_the_names():
  for field, names in (("loss", config_lib.LOSS_NAMES), ("model", MODELS.names()),
                       ("dataset", [s.syntax for s in DATASETS]), ("conditioning", config_lib.CONDITIONINGS),
                       ("lr_schedule", config_lib.LR_SCHEDULES), ("nan_policy", config_lib.NAN_POLICIES),
                       ("eval_metrics", metrics.METRICS.names())):
    assert all(n in config_lib.help_text(field) for n in names), field
  assert "(Used by --model=dcgan | dcgan_tf | dcgan_small | resnet.)" in config_lib.help_text("width")


def test_every_field_a_model_reads_is_a_config_field():
  for spec in MODELS:
    assert set(spec.options) <= set(config_lib.FIELDS), spec.name


def test_config_dict_round_trip_and_earlier_names():
  cfg = config_lib.Config(workdir="w", g_hidden=(8, 4), dataset="grid", pack=2, compute_dtype="bf16")
  d = config_lib.to_dict(cfg)
  assert d["g_hidden"] == [8, 4]
  assert config_lib.config_from_dict({**d, "removed_in_a_later_version": 1}) == cfg
  old = {k: v for k, v in d.items() if k != "compute_dtype"}
  assert config_lib.config_from_dict({**old, "precision": "bf16"}) == cfg  # a checkpoint written before the rename


def test_every_field_has_help():
  for field in dataclasses.fields(config_lib.Config):
    assert field.metadata["help"].strip(), field.name
