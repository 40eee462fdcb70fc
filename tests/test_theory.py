"""The theory on toy data: the JSD estimator against closed forms and quadrature, D*, V(D, G), and
the pictures and metrics a toy run writes."""
import json

import numpy as np
import pytest
from PIL import Image

from gan_jax import divergences, theory, train
from gan_jax.data import toy
from tests.conftest import toy_config

N = 100_000


def _draw(mixture, modes, seed=0, n=N):
  """n samples of the mixture restricted to `modes` (equal weights)."""
  rng = np.random.default_rng(seed)
  picked = np.asarray(modes)[rng.integers(0, len(modes), n)]
  return mixture.means[picked] + mixture.sigma * rng.standard_normal((n, mixture.dim))


@pytest.mark.parametrize("name", ["gauss1d", "ring", "grid"])
def test_jsd_of_identical_distributions_is_within_the_stated_error_of_zero(name):
  mixture = toy.TOY[name]()
  estimate = theory.jsd_estimate(mixture, mixture.sample(np.random.default_rng(1), N)[0])
  assert 0.0 <= estimate < theory.JSD_ERROR


@pytest.mark.parametrize("mu,sigma", [(4.3, 0.5), (4.0, 0.7), (5.0, 0.3), (3.0, 1.0)])
def test_jsd_of_two_gaussians_matches_adaptive_quadrature(mu, sigma):
  x = mu + sigma * np.random.default_rng(2).standard_normal((N, 1))
  exact = divergences.js_gaussian(4.0, 0.5, mu, sigma)
  assert abs(theory.jsd_estimate(toy.gauss1d(), x) - exact) < theory.JSD_ERROR


def test_jsd_of_a_ring_with_half_its_modes_dropped_matches_the_closed_form():
  """p: 8 modes of mass 1/8; q: 4 of them with mass 1/4 (the modes do not overlap).
  JSD = 1/4 log(2/3) + 1/2 log(4/3) + 1/4 log 2, the discrete JSD of the mode masses."""
  ring = toy.ring()
  exact = 0.25 * np.log(2 / 3) + 0.5 * np.log(4 / 3) + 0.25 * np.log(2)
  assert exact == pytest.approx(divergences.js_discrete(np.full(8, 1 / 8), np.tile([0.25, 0.0], 4)))
  assert abs(theory.jsd_estimate(ring, _draw(ring, [0, 2, 4, 6])) - exact) < theory.JSD_ERROR


def test_samples_off_every_mode_give_log_2():
  ring = toy.ring()
  far = np.random.default_rng(3).uniform(3.0, 4.0, (N, 2))
  assert theory.jsd_estimate(ring, far) == pytest.approx(np.log(2.0), abs=1e-8)  # p_data beyond 6 sigma: 2e-9
  spread = np.random.default_rng(3).normal(0.0, 0.3, (N, 2))  # mostly off the modes, a few samples on them
  for pack in (1, 2):
    estimate = theory.packed_jsd_estimate(ring, spread, pack, np.random.default_rng(8))
    assert np.log(2.0) - 0.02 < estimate <= np.log(2.0)


def test_packed_jsd_is_the_jsd_of_the_products():
  """Pack 2 on the half ring: the discrete JSD of the 64 mode pairs' masses (1/64 against 1/16 or 0)."""
  ring = toy.ring()
  p = np.full(64, 1 / 64)
  q = np.outer(np.tile([0.25, 0.0], 4), np.tile([0.25, 0.0], 4)).ravel()
  exact = divergences.js_discrete(p, q)
  estimate = theory.packed_jsd_estimate(ring, _draw(ring, [0, 2, 4, 6]), 2, np.random.default_rng(4))
  assert abs(estimate - exact) < theory.PACKED_JSD_ERROR
  assert exact > theory.jsd_estimate(ring, _draw(ring, [0, 2, 4, 6])) + 0.1  # packing sharpens the gap
  same = theory.packed_jsd_estimate(ring, ring.sample(np.random.default_rng(5), N)[0], 2, np.random.default_rng(6))
  assert 0.0 <= same < theory.PACKED_JSD_ERROR


def test_optimal_discriminator_and_the_value_at_it():
  """D* = p / (p + q) and V(D*, G) = -log 4 + 2 JSD, on a discrete support."""
  p, q = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.1, 0.3, 0.2, 0.4])
  d_star = divergences.optimal_discriminator(p, q)
  np.testing.assert_allclose(d_star, [5 / 6, 0.5, 0.5, 0.0])
  assert divergences.expected_value(p, q, d_star) == pytest.approx(
      theory.value_at_optimum(divergences.js_discrete(p, q)), rel=1e-12)


def test_value_from_logits_is_the_expectation_of_log_d_and_log_1_minus_d():
  rng = np.random.default_rng(7)
  real, fake = rng.normal(1.0, 2.0, 1000), rng.normal(-1.0, 2.0, 1000)
  sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
  expected = np.mean(np.log(sig(real))) + np.mean(np.log(1 - sig(fake)))
  assert theory.value(real, fake) == pytest.approx(expected, rel=1e-12)
  assert theory.value(np.zeros(4), np.zeros(4)) == pytest.approx(-np.log(4.0))  # D = 1/2 everywhere
  assert np.isfinite(theory.value(np.array([-800.0]), np.array([800.0])))


@pytest.mark.integration
@pytest.mark.parametrize("dataset,pack", [("gauss1d", 1), ("ring", 2)])
def test_toy_runs_record_the_theory_and_draw_it(tmp_path, dataset, pack):
  cfg = toy_config(tmp_path, dataset=dataset, pack=pack, latent_dim=1 if dataset == "gauss1d" else 2, theory_samples=N,
                   train_steps=40, steps_per_call=20, eval_every=20, checkpoint_every=20, log_every=20)
  train.train_and_evaluate(cfg)
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  evals = [r for r in records if "jsd" in r]
  assert [r["step"] for r in evals] == [20, 40]
  for r in evals:
    assert 0.0 <= r["jsd"] <= np.log(2.0)
    assert r["value"] <= r["value_at_optimum"] + 0.05  # V(D, G) <= V(D*, G), up to sampling error
  final = json.loads((tmp_path / "eval" / "final_metrics.json").read_text())
  assert final["jsd"] == evals[-1]["jsd"]
  assert Image.open(tmp_path / "theory.png").size[0] > 100
  frame = np.asarray(Image.open(tmp_path / "samples" / "step_0000040.png").convert("RGB"))
  assert frame.std() > 10
  if dataset == "gauss1d":
    gif = Image.open(tmp_path / "samples" / "figure1.gif")
    assert gif.n_frames == 2


def test_theory_off_records_none_of_it(tmp_path):
  train.train_and_evaluate(toy_config(tmp_path, theory_samples=0))
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert not any("jsd" in r for r in records) and not (tmp_path / "theory.png").exists()


@pytest.mark.integration
def test_the_final_jsd_agrees_with_an_independent_estimate_from_the_final_samples(tmp_path):
  """gauss1d: the run's jsd (gridded kernel estimate, 100,000 samples of G_ema) against scipy's
  gaussian_kde of eval/final_samples.npy (other latents, same G_ema) at the same bandwidth,
  integrated by scipy.quad. The bandwidth is part of the estimand: a G's density can have sharp
  features that any kernel smooths (see gan_jax/theory.py)."""
  from scipy import integrate, stats
  cfg = toy_config(tmp_path, dataset="gauss1d", latent_dim=1, theory_samples=N, train_steps=200, steps_per_call=100,
                   eval_every=100, checkpoint_every=200, eval_samples=20000)
  final = train.train_and_evaluate(cfg)
  samples = np.load(tmp_path / "eval" / "final_samples.npy")[:, 0]
  bandwidth = samples.std(ddof=1) * N ** (-1 / 5)  # Scott's rule for the run's 100,000 samples
  q = stats.gaussian_kde(samples, bw_method=bandwidth / samples.std(ddof=1))
  p = stats.norm(4.0, 0.5)

  def integrand(x):
    px, qx = p.pdf(x), q(x)[0]
    m = 0.5 * (px + qx)
    return 0.5 * (px * np.log(px / m) if px > 0 else 0.0) + 0.5 * (qx * np.log(qx / m) if qx > 0 else 0.0)

  lo, hi = min(samples.min(), 0.0) - 1.0, max(samples.max(), 8.0) + 1.0
  independent, _ = integrate.quad(integrand, lo, hi, limit=1000, points=[4.0])
  assert abs(final["jsd"] - independent) < 2 * theory.JSD_ERROR
