"""The config's names match the registries they select from; dict round trip."""
import dataclasses

from gan_jax import config as config_lib
from gan_jax import losses, metrics
from gan_jax.data import toy
from gan_jax.nets import NETS
from gan_jax.nets.layers import ACTIVATIONS
from gan_jax.state import SCHEDULES


def test_registry_names_are_the_registries_keys():
  assert config_lib.LOSS_NAMES == tuple(losses.LOSSES)
  assert config_lib.MODEL_NAMES == tuple(NETS)
  assert config_lib.TOY_DATASETS == tuple(toy.TOY)
  assert config_lib.IMAGE_METRICS == tuple(metrics.IMAGE_METRICS)
  assert config_lib.LR_SCHEDULES == tuple(SCHEDULES)
  assert set(config_lib.D_ACTIVATIONS) - {"maxout"} <= set(ACTIVATIONS)
  assert set(config_lib.OUTPUT_ACTIVATIONS) <= set(ACTIVATIONS)


def test_help_texts_list_the_names():
  helps = {f.name: f.metadata["help"] for f in dataclasses.fields(config_lib.Config)}
  for field, names in (("loss", config_lib.LOSS_NAMES), ("model", config_lib.MODEL_NAMES),
                       ("conditioning", config_lib.CONDITIONINGS), ("lr_schedule", config_lib.LR_SCHEDULES),
                       ("nan_policy", config_lib.NAN_POLICIES), ("eval_metrics", config_lib.IMAGE_METRICS)):
    assert all(n in helps[field] for n in names), field


def test_config_dict_round_trip():
  cfg = config_lib.Config(workdir="w", g_hidden=(8, 4), dataset="grid", pack=2)
  d = config_lib.to_dict(cfg)
  assert d["g_hidden"] == [8, 4]
  assert config_lib.config_from_dict({**d, "removed_in_a_later_version": 1}) == cfg
