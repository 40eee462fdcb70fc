"""Metrics against closed forms and direct references."""
import numpy as np
import pytest
from scipy import linalg

from gan_jax.data.images import load_mnist5k
from gan_jax.metrics import compute, digits, frechet, inception_score, kid, parzen, prdc, probe
from gan_jax.metrics.inputs import MetricInputs


def test_frechet_distance_closed_form_for_diagonal_gaussians():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  v1, v2 = rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
  assert frechet.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_scipy_sqrtm(seed):
  rng = np.random.default_rng(seed)
  a, b = rng.normal(size=(20, 20)), rng.normal(size=(20, 20))
  s1, s2 = a @ a.T / 20, b @ b.T / 20
  mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
  ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
  assert frechet.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, abs=1e-4)


def test_fid_of_a_set_with_itself_is_zero():
  f = np.random.default_rng(0).normal(size=(500, 32))
  assert abs(frechet.fid(f, f)) < 1e-6


def test_kid_matches_direct_numpy():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(50, 8)), rng.normal(0.3, 1.2, size=(60, 8))

  def k(a, b):
    return (a @ b / 8 + 1) ** 3

  m, n = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  assert kid.mmd2_unbiased(x, y) == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-6)
  mean, std = kid.kid(x, y[:50], num_subsets=3, subset_size=50)  # subsets of all points: no spread
  assert mean == pytest.approx(kid.mmd2_unbiased(x, y[:50]), abs=1e-9) and std < 1e-9


def test_kid_refuses_subsets_larger_than_a_set():
  x = np.random.default_rng(0).normal(size=(50, 8))
  with pytest.raises(ValueError, match="KID subsets of 1000 need at least that many samples"):
    kid.kid(x, x)  # torch-fidelity's default subset of 1,000


def test_inception_score_limits():
  same = np.tile([[0.2, 1.5, -0.3]], (100, 1))  # logits: every prediction the same
  assert inception_score.inception_score(same)[0] == pytest.approx(1.0)
  confident = 60.0 * np.eye(10)[np.arange(1000) % 10]  # logits of confident, uniformly spread classes
  assert inception_score.inception_score(confident, num_splits=1)[0] == pytest.approx(10.0, rel=1e-6)


def test_inception_score_shuffles_before_splitting():
  """Samples sorted by class: unshuffled, each of 10 splits holds one class (score 1 per split)."""
  by_class = 60.0 * np.eye(10)[np.repeat(np.arange(10), 100)]
  assert inception_score.inception_score(by_class, num_splits=10)[0] > 9.0


def test_inception_score_refuses_probabilities_and_non_finite_input():
  probs = np.full((100, 4), 0.25)
  with pytest.raises(ValueError, match="takes logits, and these rows are probabilities"):
    inception_score.inception_score(probs)
  with pytest.raises(ValueError, match="inf or nan"):
    inception_score.inception_score(np.log(np.eye(4)[np.arange(100) % 4]))  # log(0) = -inf


def test_prdc_identical_and_disjoint_sets():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(300, 4))
  same = prdc.prdc(real, real.copy())
  assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
  far = prdc.prdc(real, real + 100.0)
  assert far["precision"] == 0.0 and far["recall"] == 0.0 and far["coverage"] == 0.0 and far["density"] == 0.0


def test_prdc_by_hand_in_one_dimension_with_k_1():
  """real {0, 1, 3}: k=1 radii 1, 1, 2; fake {0.2, 0.3, 0.4}: radii 0.1 each."""
  real, fake = np.array([[0.0], [1.0], [3.0]]), np.array([[0.2], [0.3], [0.4]])
  out = prdc.prdc(real, fake, k=1)
  assert out["precision"] == 1.0  # every fake lies in the ball of real 0
  assert out["recall"] == 0.0  # no real lies within 0.1 of a fake
  assert out["density"] == pytest.approx(2.0)  # each fake lies in the balls of reals 0 and 1
  assert out["coverage"] == pytest.approx(2 / 3)  # the balls of reals 0 and 1 hold a fake, that of 3 not


def test_prdc_tells_precision_from_recall():
  """Fakes N(0, 0.1^2) inside reals N(0, 1): all fakes are realistic (precision ~1), few reals are
  covered (recall << 1)."""
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(1000, 2)), 0.1 * rng.normal(size=(1000, 2))
  out = prdc.prdc(real, fake)
  assert out["precision"] > 0.95 and out["recall"] < 0.2
  swapped = prdc.prdc(fake, real)
  assert swapped["precision"] < 0.2 and swapped["recall"] > 0.95


def test_precision_recall_take_a_random_subset_not_the_first_rows(monkeypatch):
  monkeypatch.setattr(prdc, "PRDC_MAX", 50)
  rng = np.random.default_rng(0)
  real = np.concatenate([rng.normal(size=(50, 2)), rng.normal(100, 1, size=(50, 2))])  # two clusters, in order
  fake = rng.normal(100, 1, size=(100, 2))  # all near the second
  precision = compute(("pr",), MetricInputs(fake=(fake, fake), real=(real, real)))["precision"]
  assert 0.3 < precision < 1.0  # the first 50 real rows alone (cluster one) would give 0


def test_parzen_window_matches_the_gaussian_density():
  rng = np.random.default_rng(0)
  centre = np.zeros((1, 3))
  x = rng.normal(size=(10, 3))
  # One kernel centre: the Parzen density is exactly N(0, sigma^2 I).
  expected = -0.5 * np.sum(x ** 2, 1) / 0.25 - 1.5 * np.log(2 * np.pi * 0.25)
  np.testing.assert_allclose(parzen.parzen_log_likelihood(centre, x, 0.5), expected, rtol=1e-10)
  samples = rng.normal(size=(2000, 2))
  mean, se, sigma = parzen.parzen_estimate(samples, rng.normal(size=(200, 2)), rng.normal(size=(500, 2)),
                                           sigmas=np.logspace(-1.5, 0.5, 12))
  true_ll = -0.5 * 2 - np.log(2 * np.pi)  # E[log N(x; 0, I)] in 2-D
  assert abs(mean - true_ll) < 0.2 and se > 0 and 0.03 < sigma < 3


def test_shipped_digit_classifier_accuracy_on_held_out_digits():
  x, y = load_mnist5k(32, "test")
  probs, features = digits.classify(x.astype(np.float32) / 127.5 - 1)
  accuracy = float(np.mean(probs.argmax(1) == y))
  assert accuracy >= 0.97, accuracy
  assert features.shape == (1000, 128)


def test_real_vs_real_baseline_is_small_and_noise_is_far():
  train_x = load_mnist5k(32, "train")[0].astype(np.float32) / 127.5 - 1
  test_x = load_mnist5k(32, "test")[0].astype(np.float32) / 127.5 - 1
  train = digits.logits_and_features(train_x)
  metrics = lambda x: compute(("fid", "classes", "is"), MetricInputs(  # noqa: E731
      x, feature_fn=digits.logits_and_features, real=train))
  real = metrics(test_x)
  noise = metrics(np.random.default_rng(0).uniform(-1, 1, test_x.shape).astype(np.float32))
  assert real["classes"] == 10 and real["class_reverse_kl"] < 0.01 and real["is"] > 8
  assert real["fid"] < 10 < 10 * real["fid"] < noise["fid"]


@pytest.mark.integration
def test_training_reports_image_metrics_and_evaluate_py_prints_the_table(tmp_path):
  import json
  import os
  import subprocess
  import sys

  from gan_jax import train
  from tests.conftest import REPO
  from tests.test_images import image_config
  cfg = image_config(tmp_path, "mnist5k", resolution=32, eval_metrics="fid,kid,classes", eval_samples=200,
                     kid_subset_size=100, train_steps=2, eval_every=2, checkpoint_every=2)
  train.train_and_evaluate(cfg)
  record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["fid"] > 0 and "kid_x1000" in record and 0 <= record["classes"] <= 10
  assert os.listdir(tmp_path / "checkpoints_best") == ["2"]  # ranked by FID
  result = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "evaluate.py"),
                           f"--workdir={tmp_path}", "--num_samples=300", "--draws=2", "--parzen", "--kid_subset_size=100"],
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  for row in ("| fid |", "| kid_x1000 |", "| is |", "| precision |", "| coverage |", "| classes |", "| parzen_ll |",
              "| copy_share |", "| copy_share_held_out |", "| d_features_linear_acc_100_labels |"):
    assert row in result.stdout
  saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
  assert saved["columns"] == ["generated 300 vs train 4,000", "held-out 300 vs train 4,000 (real baseline)",
                              "generated 300 vs held-out 1,000", "train 300 vs held-out 1,000 (real baseline)"]
  (fid_train, spread), (fid_baseline, _), (fid_held_out, _), (fid_train_baseline, _) = saved["rows"]["fid"]
  assert saved["step"] == 2 and saved["seeds"] == [0, 1] and spread > 0  # two draws of latents
  assert max(fid_baseline, fid_train_baseline) < min(fid_train, fid_held_out)  # real digits score best
  assert saved["rows"]["copy_share"][1:] == [None] * 3 and saved["counts"]["kid_subset"] == 100
  for picture in ("interpolations.png", "class_means.png", "neighbours.png"):
    assert (tmp_path / "eval" / picture).exists()


def test_a_conditional_generators_walks_keep_one_class_and_its_class_grid_holds_z(tmp_path):
  import jax

  from gan_jax import evaluation, nets as nets_lib, state as state_lib
  from gan_jax.generate import Generator, latents
  from tests.test_images import image_config
  cfg = image_config(tmp_path, "mnist5k", resolution=32, conditioning="projection")
  nets = nets_lib.build_nets(cfg, (32, 32, 1), num_classes=10)
  state = state_lib.init_state(cfg, nets, *state_lib.make_optimizers(cfg))
  generator = Generator(nets)

  def close(actual, expected):  # an untrained G draws values ~1e-5: the tolerance scales with them
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-3 * np.abs(expected).max())

  walks = evaluation.interpolation_grid(nets, state, rows=3, steps=4).reshape(3, 4, 32, 32, 1)
  key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
  z_a, z_b = jax.random.normal(key_a, (3, 1, 16)), jax.random.normal(key_b, (3, 1, 16))
  for r in range(3):  # the ends of row r are G(z_a, r) and G(z_b, r)
    close(walks[r, [0, -1]], generator(state, np.stack([z_a[r, 0], z_b[r, 0]]), np.array([r, r])))
  grid = evaluation.class_grid(nets, state, rows=2, seed=5).reshape(2, 10, 32, 32, 1)
  z = np.asarray(latents(5, 2, nets))
  for i in range(2):
    close(grid[i], generator(state, np.repeat(z[i:i + 1], 10, 0), np.arange(10)))
  differ = np.abs(grid[0, 0] - grid[0, 1]).max()
  assert differ > 0.1 * np.abs(grid[0, 0]).max()  # the label changes the picture (the checks can fail)
  images = grid.reshape(20, 32, 32, 1) * 1e4  # D's features for the linear probe: a projection D's see no label
  variables = {"params": state.d_params, **state.d_collections}
  given_7 = nets.discriminator.apply(variables, images, np.full(20, 7), train=False, features=True)[1]
  close(probe.discriminator_features(nets, state, images, batch=8), np.asarray(given_7).reshape(20, -1))


def test_eval_metrics_flag_is_validated(tmp_path):
  from gan_jax import config as config_lib
  from tests.conftest import toy_config
  with pytest.raises(config_lib.ConfigError, match="--eval_metrics=fid,bogus: unknown metric bogus; valid for image data: fid, kid"):
    config_lib.validate(toy_config(tmp_path, dataset="mnist5k", model="dcgan", resolution=28,
                                   eval_metrics="fid,bogus"))
