"""PacGAN mode metrics on samples whose answer is known."""
import numpy as np
import pytest

from gan_jax.data import toy
from gan_jax.metrics.modes import mode_metrics


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_perfect_samples_cover_every_mode(name):
  mix = toy.TOY[name]()
  x, _ = mix.sample(np.random.default_rng(0), 2500)
  m = mode_metrics(x, mix.means, mix.sigma)
  assert m["modes"] == len(mix.means)
  # 2-D Gaussian: P(|x - mu| <= 3 sigma) = 1 - exp(-9/2) = 0.9889.
  assert m["high_quality"] == pytest.approx(1 - np.exp(-4.5), abs=0.006)
  assert m["reverse_kl"] < 0.02


def test_collapsed_samples():
  mix = toy.ring()
  x = np.repeat(mix.means[:1], 100, axis=0)
  m = mode_metrics(x, mix.means, mix.sigma)
  assert m["modes"] == 1 and m["high_quality"] == 1.0
  assert m["reverse_kl"] == pytest.approx(np.log(8))


def test_two_modes_by_hand():
  mix = toy.grid()
  x = np.concatenate([np.repeat(mix.means[:1], 30, 0), np.repeat(mix.means[1:2], 10, 0),
                      np.full((10, 2), 10.0)])  # far from every mode: low quality
  m = mode_metrics(x, mix.means, mix.sigma)
  assert m["modes"] == 2 and m["high_quality"] == pytest.approx(0.8)
  q = np.array([0.75, 0.25])
  assert m["reverse_kl"] == pytest.approx(np.sum(q * np.log(q * 25)))
  assert mode_metrics(np.full((5, 2), 10.0), mix.means, mix.sigma)["reverse_kl"] == np.inf


def test_toy_batches_are_a_function_of_seed_and_index():
  ds = toy.ToyDataset(toy.ring(), seed=3)
  a, b = ds.get_batch(7, 64), ds.get_batch(7, 64)
  np.testing.assert_array_equal(a["x"], b["x"])
  assert not np.array_equal(a["x"], ds.get_batch(8, 64)["x"])
  np.testing.assert_array_equal(ds.get_batch(7, 64, slice(16, 32))["x"], a["x"][16:32])
