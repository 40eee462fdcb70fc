"""Toy dataset options (ring:radius=,sigma=), --data_shift, and the mode-hopping count modes_ever."""
import json

import numpy as np
import pytest

from gan_jax.data import DATASETS, make_dataset
from gan_jax.errors import ConfigError
from gan_jax.tasks import ToyTask
from gan_jax.validation import validate
from tests.conftest import toy_config


def test_ring_options_set_radius_and_sigma_and_bad_ones_are_refused(tmp_path):
  data = make_dataset(validate(toy_config(tmp_path, dataset="ring:radius=2,sigma=0.02"), workdir=False))
  np.testing.assert_allclose(np.linalg.norm(data.mixture.means, axis=1), 2.0)
  assert data.mixture.sigma == 0.02 and data.fingerprint()["sigma"] == 0.02
  for bad, why in (("ring:radius=-1", "positive"), ("ring:width=2", "unknown option"), ("ring:sigma=x", "float")):
    with pytest.raises(ConfigError, match=why):
      validate(toy_config(tmp_path, dataset=bad), workdir=False)
  assert DATASETS.get("gauss1d").check("mean=1") is not None  # gauss1d takes none


def test_data_shift_and_scale_map_data_to_the_networks_and_back(tmp_path):
  cfg = validate(toy_config(tmp_path, dataset="gauss1d", latent_dim=1, data_shift=4.0, data_scale=2.0), workdir=False)
  task = ToyTask(cfg)
  batch = task.dataset.get_batch(0, 4096)["x"]
  np.testing.assert_allclose([batch.mean(), batch.std()], [0.0, 1.0], atol=0.05)  # N(4, 0.5^2) standardised
  x = np.array([[3.0], [4.5]], np.float32)
  np.testing.assert_allclose(task.to_train_units(x), [[-2.0], [1.0]])
  np.testing.assert_allclose(task.to_data_units(task.to_train_units(x)), x)
  assert "shift" in task.dataset.fingerprint()
  assert "shift" not in make_dataset(validate(toy_config(tmp_path), workdir=False)).fingerprint()  # old runs resume


def test_modes_ever_counts_the_modes_of_every_evaluation_so_far(tmp_path):
  task = ToyTask(validate(toy_config(tmp_path), workdir=False))
  means = task.mixture.means
  first = task.metrics(np.repeat(means[:2], 50, axis=0))  # modes 0 and 1
  assert first["modes"] == 2 and first["modes_ever"] == 2
  with open(tmp_path / "metrics.jsonl", "w") as f:
    f.write(json.dumps({"step": 5, **first}) + "\n")
  later = task.metrics(np.repeat(means[1:4], 50, axis=0))  # modes 1, 2, 3
  assert later["modes"] == 3 and later["modes_ever"] == 4
