"""Issue 29: the semi-supervised GAN (Salimans et al. 2016, sec. 5): D as a K+1-class classifier, the
labelled subset and its stream, improved-gan's MNIST layers, the held-out accuracy."""
import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax import losses, objectives, train
from gan_jax.config import Config
from gan_jax.data.images import MNIST5K_TRAIN, load_mnist5k
from gan_jax.data.labeled import SemiSupervisedDataset, labeled_subset
from gan_jax.errors import ConfigError
from gan_jax.nets import NetOptions, build_nets, improved_gan
from gan_jax.nets.layers import DiscriminatorHead, GaussianNoise, WeightNormDense, k_plus_one_logit
from tests.test_checkpoint import assert_same_state


def ssl_config(workdir, **overrides):
  """A tiny semi-supervised run of improved-gan's nets on mnist5k, one device."""
  base = Config(workdir=str(workdir), dataset="mnist5k", model="improved_gan", g_hidden=(32,), d_hidden=(64, 32),
                latent_dim=16, labeled_examples=20, feature_matching=True, batch_size=20, train_steps=6,
                steps_per_call=3, eval_every=3, log_every=3, checkpoint_every=3, eval_samples=100,
                eval_metrics="classifier", num_devices=1, lr_g=3e-3, lr_d=3e-3)
  return dataclasses.replace(base, **overrides)


def test_the_k_plus_one_logit_is_log_z_and_d_is_z_over_z_plus_one():
  """D(x) = Z / (Z + 1), Z = sum_k exp(l_k): against float64 numpy, and finite for logits of +-100."""
  logits = np.random.default_rng(0).normal(0, 3, (5, 10)).astype(np.float32)
  z = np.exp(logits.astype(np.float64)).sum(-1)
  lse = np.asarray(k_plus_one_logit(jnp.asarray(logits)))
  np.testing.assert_allclose(lse, np.log(z), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(lse)), z / (z + 1), rtol=1e-6)
  extreme = jnp.array([[100.0] * 10, [-100.0] * 10, [100.0] + [-100.0] * 9])
  value = k_plus_one_logit(extreme)
  grad = jax.grad(lambda v: jnp.sum(losses.discriminator_loss(k_plus_one_logit(v), k_plus_one_logit(v))))(extreme)
  np.testing.assert_allclose(np.asarray(value), [100 + np.log(10), -100 + np.log(10), 100.0], rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_the_head_returns_the_class_logits_and_their_logsumexp():
  head = DiscriminatorHead(semi_supervised_classes=10)
  h = jnp.ones((3, 7))
  params = head.init(jax.random.PRNGKey(0), h)
  logit, class_logits = head.apply(params, h)
  assert class_logits.shape == (3, 10) and logit.shape == (3,)
  np.testing.assert_allclose(np.asarray(logit), np.asarray(jax.nn.logsumexp(class_logits, -1)), rtol=1e-6)
  assert jax.tree.leaves(params)[0].shape[-1] == 10  # no separate real/fake unit: the fake class's logit is 0


def _ssl_discriminator(hidden=(16,)):
  return improved_gan.build(NetOptions(data_shape=(8, 8, 1), semi_supervised_classes=4), (8,), hidden)[1]


def test_the_cross_entropy_reads_the_labelled_rows_alone():
  """L_D = CE(C(x_l), y_l) + w/2 d_loss(lse(x), lse(G(z))): recomputed by hand from D's outputs; the GAN
  batch's labels do not change it, the labelled batch's do (a planted CE on the GAN rows fails here)."""
  d = _ssl_discriminator()
  rng = np.random.default_rng(0)
  x_real, x_fake, x_lab = (jnp.asarray(rng.uniform(-1, 1, (6, 8, 8, 1)), jnp.float32) for _ in range(3))
  y_lab = jnp.asarray(rng.integers(0, 4, 6), jnp.int32)
  variables = d.init(jax.random.PRNGKey(0), x_real, None, train=False)
  obj = dataclasses.replace(objectives.Objective(losses.get_loss("nonsaturating")), semi_supervised=True,
                            unlabeled_weight=0.7)

  def loss(y_real, y_labelled):
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    total, (_, real, fake, terms, _) = objectives.discriminator_objective(
        obj, d, variables["params"], {}, None, (x_real, y_real), (x_fake, None), keys, (x_lab, y_labelled))
    return float(total), float(terms["labeled_nll"]), real, fake

  total, nll, real, fake = loss(jnp.zeros(6, jnp.int32), y_lab)
  key = jax.random.fold_in(jax.random.split(jax.random.PRNGKey(3), 3)[0], objectives.LABELED_SALT)
  class_logits = d.apply(variables, x_lab, None, train=True, features=True, rngs={"dropout": key})[2]
  log_p = np.asarray(jax.nn.log_softmax(class_logits))
  expected_nll = -np.mean(log_p[np.arange(6), np.asarray(y_lab)])
  gan = np.mean(np.logaddexp(0, -np.asarray(real, np.float64))) + np.mean(np.logaddexp(0, np.asarray(fake, np.float64)))
  np.testing.assert_allclose(nll, expected_nll, rtol=1e-5)
  np.testing.assert_allclose(total, expected_nll + 0.5 * 0.7 * gan, rtol=1e-5)
  assert loss(jnp.full(6, 3, jnp.int32), y_lab)[0] == total  # the GAN rows' labels are never read
  assert loss(jnp.zeros(6, jnp.int32), (y_lab + 1) % 4)[0] != total


def test_labelled_subsets_are_balanced_fixed_by_the_seed_and_differ_across_seeds():
  labels = np.repeat(np.arange(10), 40)[np.random.default_rng(1).permutation(400)]
  a, b, c = (labeled_subset(labels, 100, 10, s) for s in (0, 0, 1))
  assert np.array_equal(a, b) and not np.array_equal(a, c)
  assert len(set(a.tolist())) == 100 and np.array_equal(np.bincount(labels[a]), [10] * 10)
  assert np.array_equal(labeled_subset(labels, 400, 10, 0), np.arange(400))  # every label
  for bad in (105, 410, 0):
    with pytest.raises(ConfigError, match="labeled_examples"):
      labeled_subset(labels, bad, 10, 0)


def test_the_labelled_stream_comes_from_the_training_digits_and_gathers_as_on_the_host():
  """Every labelled row is one of the 4,000 training digits (never a held-out one); the devices' gather
  equals get_batch bit for bit; each pass of the stream shows every labelled example once."""
  cfg = ssl_config("/tmp/unused")
  dataset = data_lib.make_dataset(cfg)
  assert isinstance(dataset, SemiSupervisedDataset) and dataset.num_examples == MNIST5K_TRAIN
  held_out = {im.tobytes() for im in load_mnist5k(32, "test")[0]}
  train_images = {im.tobytes() for im in load_mnist5k(32, "train")[0]}
  images, labels = dataset.examples(dataset.subset)
  assert all(im.tobytes() in train_images and im.tobytes() not in held_out for im in images)
  assert np.array_equal(labels, dataset.labels[dataset.subset])
  host = dataset.get_batch(7, 20)
  arrays = dataset.device_arrays(1 << 30)
  device = dataset.gather(arrays, jnp.asarray(dataset.indices(7, 20), jnp.int32))
  for key in dataset.batch_keys:
    assert np.array_equal(np.asarray(device[key]), host[key]), key
  one_pass = np.concatenate([dataset.labeled_indices(i, 10) for i in (4, 5)])  # positions 40..59: one pass of 20
  assert sorted(one_pass.tolist()) == sorted(dataset.subset.tolist())
  assert data_lib.make_held_out_dataset(cfg).name == "mnist5k" and not hasattr(data_lib.make_held_out_dataset(cfg),
                                                                                "subset")


def test_weight_norm_dense_matches_its_formula_and_its_data_dependent_init():
  x = jnp.asarray(np.random.default_rng(0).normal(2, 3, (50, 6)), jnp.float32)
  layer = WeightNormDense(4, train_scale=False)
  params = layer.init(jax.random.PRNGKey(0), x)["params"]
  y = np.asarray(layer.apply({"params": params}, x))
  np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)  # the init batch: every unit of mean 0, std 1
  np.testing.assert_allclose(y.std(0), 1, rtol=1e-4)
  v, g, b = (np.asarray(params[k], np.float64) for k in ("kernel", "scale", "bias"))
  np.testing.assert_allclose(y, np.asarray(x, np.float64) @ (v / np.linalg.norm(v, axis=0)) * g + b, rtol=1e-4,
                             atol=1e-5)
  grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x) ** 2))(params)
  assert not np.any(np.asarray(grads["scale"])) and np.any(np.asarray(grads["bias"]))  # g held fixed
  trained = WeightNormDense(4, train_scale=True)
  assert np.any(np.asarray(jax.grad(lambda p: jnp.sum(trained.apply({"params": p}, x) ** 2))(params)["scale"]))
  zeros = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 6)))["params"]  # shapes only: g = 1, b = 0
  assert np.all(np.asarray(zeros["scale"]) == 1) and not np.any(np.asarray(zeros["bias"]))


def test_gaussian_noise_has_its_sigma_in_training_and_is_off_in_inference():
  x = jnp.zeros((200, 50))
  noise = GaussianNoise(0.5)
  noisy = noise.apply({}, x, True, rngs={"dropout": jax.random.PRNGKey(0)})
  assert abs(float(jnp.std(noisy)) - 0.5) < 0.01
  assert np.array_equal(np.asarray(noise.apply({}, x, False)), np.asarray(x))


@pytest.mark.parametrize("sigma", [0.6, 1.0])
def test_ds_input_noise_has_the_flags_sigma(sigma):
  """--d_input_noise: the std of what D's first layer reads, for an all-zero input in training (0.6: the default)."""
  cfg = Config(dataset="mnist5k", model="improved_gan", g_hidden=(8,), d_hidden=(8,), labeled_examples=100,
               **({} if sigma == 0.6 else {"d_input_noise": sigma}))
  d = build_nets(cfg, (32, 32, 1), None, 10).discriminator
  x = jnp.zeros((100, 32, 32, 1))
  variables = d.init(jax.random.PRNGKey(0), x, None, train=False)
  _, seen = d.apply(variables, x, None, train=True, rngs={"dropout": jax.random.PRNGKey(1)},
                    capture_intermediates=lambda module, _: isinstance(module, GaussianNoise), mutable=["intermediates"])
  first = seen["intermediates"]["GaussianNoise_0"]["__call__"][0]
  assert first.shape == (100, 1024) and abs(float(jnp.std(first)) - sigma) < 0.01


def test_improved_gan_nets_have_the_papers_layers():
  """D: 5 weight-normalised hidden layers (1000, 500, 250, 250, 250) and a 10-unit head; noise in training
  only; features = the last hidden layer (250); G: batch norm without a scale, output in [-1, 1]."""
  cfg = Config(dataset="mnist5k", model="improved_gan", g_hidden=(500, 500), d_hidden=(1000, 500, 250, 250, 250),
               labeled_examples=100)
  nets = build_nets(cfg, (32, 32, 1), None, 10)
  z = jnp.zeros((4, 100))
  g_vars = nets.generator.init(jax.random.PRNGKey(0), z, None, train=False)
  assert set(g_vars["params"]["BatchNorm_0"]) == {"bias"}  # improved-gan's batch_norm(g=None): no scale
  x = nets.generator.apply(g_vars, jax.random.normal(jax.random.PRNGKey(1), (4, 100)), None, train=False)
  assert x.shape == (4, 32, 32, 1) and float(jnp.max(jnp.abs(x))) <= 1
  d_vars = nets.discriminator.init(jax.random.PRNGKey(0), x, None, train=False)
  widths = [d_vars["params"][f"WeightNormDense_{i}"]["kernel"].shape for i in range(5)]
  assert widths == [(1024, 1000), (1000, 500), (500, 250), (250, 250), (250, 250)]
  head = d_vars["params"]["DiscriminatorHead_0"]
  assert jax.tree.leaves(head)[0].shape[-1] == 10
  logit, feats, cls = nets.discriminator.apply(d_vars, x, None, train=False, features=True)
  assert feats.shape == (4, 250) and cls.shape == (4, 10)
  again = nets.discriminator.apply(d_vars, x, None, train=False, features=True)[2]
  noisy = nets.discriminator.apply(d_vars, x, None, train=True, features=True, rngs={"dropout": jax.random.PRNGKey(1)})[2]
  assert np.array_equal(np.asarray(cls), np.asarray(again)) and not np.allclose(np.asarray(cls), np.asarray(noisy))


@pytest.mark.parametrize("flags, match", [
    (dict(conditioning="projection"), "conditioning"), (dict(pack=2, batch_size=20), "pack"),
    (dict(loss="hinge"), "hinge"), (dict(unroll_steps=2, feature_matching=False), "unroll"),
    (dict(dataset="ring", model="mlp"), "labelled image dataset")])
def test_what_semi_supervision_cannot_combine_with_is_refused(tmp_path, flags, match):
  with pytest.raises(ConfigError, match=match):
    config_lib.validate(ssl_config(tmp_path, eval_metrics="", **flags))


def test_the_classifier_metric_needs_a_semi_supervised_run(tmp_path):
  with pytest.raises(ConfigError, match="labeled_examples"):
    config_lib.validate(ssl_config(tmp_path, labeled_examples=0, feature_matching=False))


@pytest.mark.integration
def test_a_semi_supervised_run_records_its_subset_reports_accuracy_and_resumes_bitwise(tmp_path):
  train.train_and_evaluate(ssl_config(tmp_path / "straight"))
  train.train_and_evaluate(ssl_config(tmp_path / "resumed", train_steps=3))
  train.train_and_evaluate(ssl_config(tmp_path / "resumed"))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 6)
  record = json.loads((tmp_path / "straight" / "labeled_examples.json").read_text())
  assert record == json.loads((tmp_path / "resumed" / "labeled_examples.json").read_text())
  assert record["count"] == 20 and record["per_class"] == [2] * 10 and max(record["indices"]) < MNIST5K_TRAIN
  other = SemiSupervisedDataset(data_lib.make_dataset(ssl_config(tmp_path, seed=1, labeled_examples=0)), 20)
  assert other.record()["indices"] != record["indices"]
  final = json.loads((tmp_path / "straight" / "eval" / "final_metrics.json").read_text())
  assert final["held_out_examples"] == 1000 and 0 <= final["held_out_accuracy"] <= 1
  assert final["held_out_errors"] == round(1000 * (1 - final["held_out_accuracy"]))
  steps = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
  assert all("labeled_nll" in r and "held_out_accuracy" in r for r in steps if r["step"] in (3, 6))


def test_the_held_out_accuracy_is_the_share_of_right_argmax_classes():
  """The metric against a hand count, with D's class logits replaced by a known table."""
  from gan_jax.metrics import classifier
  from gan_jax.metrics.inputs import MetricInputs
  held = data_lib.make_dataset(Config(dataset="mnist5k:test"))
  labels = held.get_batch(0, held.num_examples)["label"]
  wrong = np.arange(len(labels)) % 7 == 0
  table = np.eye(10)[np.where(wrong, (labels + 1) % 10, labels)]
  original = classifier.class_logits
  classifier.class_logits = lambda nets, params, cols, images, batch=500: table[:len(images)] * (params == "ema")
  state = types.SimpleNamespace(d_params="current", ema_d_params="ema", d_collections={})
  try:
    out = classifier.classifier_metric(MetricInputs(held_out=held, state=state))
  finally:
    classifier.class_logits = original
  assert out == {"held_out_accuracy": 1 - wrong.mean(), "held_out_errors": int(wrong.sum()), "held_out_examples": 1000,
                 "held_out_accuracy_current_d": float(np.mean(labels == 0))}  # all-zero logits: class 0


def test_spectral_norm_reaches_the_improved_gan_d():
  """The improved-gan D's layers go through DiscriminatorOptions.layer like every D's."""
  d = improved_gan.build(NetOptions(data_shape=(8, 8, 1), semi_supervised_classes=4, spectral_norm=True), (8,),
                         (16,))[1]
  variables = d.init(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8, 1)), None, train=False)
  assert "batch_stats" in variables  # the power-iteration vectors of every normalised kernel


@pytest.mark.integration
def test_a_semi_supervised_step_on_eight_devices_equals_one(tmp_path):
  """The labelled rows travel with the batch's shards: the labelled cross-entropy, the losses and D's
  gradient (Adam's first moment) of one iteration are those of one device. (The plain MLP: improved-gan's
  noise layers draw per-device noise, as dropout does.)"""
  from tests.test_sharding import STEP_METRICS, assert_trees_close, one_step_on
  cfg = ssl_config(tmp_path, model="mlp", g_output="tanh", batch_size=40, labeled_examples=20)
  (m1, s1), (m8, s8) = one_step_on(cfg, 1, (32, 32, 1), 10), one_step_on(cfg, 8, (32, 32, 1), 10)
  for key in (*STEP_METRICS, "labeled_nll", "labeled_accuracy"):
    np.testing.assert_allclose(m8[key], m1[key], rtol=1e-5, err_msg=key)
  mu1, mu8 = s1.d_opt_state[0].mu, s8.d_opt_state[0].mu
  scale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(mu1))
  assert_trees_close(mu1, mu8, 1e-4 * scale)


def test_ds_ema_moves_by_its_decay_after_each_d_update(tmp_path):
  """theta_ema <- d theta_ema + (1 - d) theta after every D update, starting at D's initial weights; G's
  EMA and the rest of the step untouched (off: no ema_d_params in the state)."""
  from gan_jax.state import init_state, make_optimizers
  from gan_jax.steps import make_steps
  cfg = ssl_config(tmp_path, d_ema_decay=0.9)
  nets = build_nets(cfg, (32, 32, 1), None, 10)
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  batch = data_lib.make_dataset(cfg).get_batch(0, cfg.batch_size)
  after, _ = make_steps(cfg, nets, g_tx, d_tx).d_step(state, jax.tree.map(jnp.asarray, batch))
  expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, state.d_params, after.d_params)
  for a, b in zip(jax.tree.leaves(after.ema_d_params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  assert init_state(ssl_config(tmp_path), nets, g_tx, d_tx).ema_d_params is None


@pytest.mark.parametrize("model", ["dcgan", "mlp", "resnet"])
def test_every_d_with_the_head_becomes_a_k_plus_one_classifier(model):
  """The DCGAN (and MLP, ResNet) D take --labeled_examples through the shared head: K class logits and
  their logsumexp as the real/fake logit."""
  cfg = Config(dataset="mnist5k", model=model, width=8, d_hidden=(16,), g_hidden=(16,), labeled_examples=100)
  d = build_nets(cfg, (32, 32, 1), None, 10).discriminator
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 1)), jnp.float32)
  variables = d.init(jax.random.PRNGKey(0), x, None, train=False)
  logit, _, cls = d.apply(variables, x, None, train=False, features=True)
  assert cls.shape == (4, 10)
  np.testing.assert_allclose(np.asarray(logit), np.asarray(jax.nn.logsumexp(cls, -1)), rtol=1e-5)


def test_gs_feature_matching_reads_a_second_pass_over_the_training_digits(tmp_path):
  """improved-gan's trainx_unl2: G matches the features of reals of its own ('x_generator'), every training
  digit once per epoch in an order apart from D's; G's update reads them and not D's batch (a planted
  feature matching on batch['x'] fails here)."""
  from gan_jax.state import init_state, make_optimizers
  from gan_jax.steps import make_steps
  cfg = ssl_config(tmp_path)
  dataset = data_lib.make_dataset(cfg)
  epoch = np.concatenate([dataset.indices(i, 100) for i in range(MNIST5K_TRAIN // 100)])
  assert sorted(epoch[:, 2].tolist()) == list(range(MNIST5K_TRAIN))
  assert np.mean(epoch[:, 2] == epoch[:, 0]) < 0.01
  nets = build_nets(cfg, (32, 32, 1), None, 10)
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  batch = jax.tree.map(jnp.asarray, dataset.get_batch(0, cfg.batch_size))
  g_step = jax.jit(make_steps(cfg, nets, g_tx, d_tx).g_step)
  g_params = lambda b: jax.tree.leaves(g_step(state, b)[0].g_params)  # noqa: E731
  reference = g_params(batch)
  for a, b in zip(reference, g_params({**batch, "x": -batch["x"]})):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert any(not np.array_equal(np.asarray(a), np.asarray(b))
             for a, b in zip(reference, g_params({**batch, "x_generator": batch["x"]})))


def test_a_checkpoint_whose_g_read_ds_reals_is_not_resumed_with_gs_own(tmp_path):
  """A semi-supervised checkpoint of the code before G's own reals (no 'generator_reals' in its data
  fingerprint) would resume on another stream: refused with a line naming it."""
  from gan_jax import resume
  cfg = ssl_config(tmp_path)
  dataset = data_lib.make_dataset(cfg)
  before = {k: v for k, v in dataset.fingerprint().items() if k != "generator_reals"}
  assert resume.check_data(cfg, {"data": dataset.fingerprint()}, dataset) == []
  with pytest.raises(ConfigError, match="generator_reals None then"):
    resume.check_data(cfg, {"data": before}, dataset)


@pytest.mark.parametrize("d_steps", [1, 2])
def test_the_plain_classifier_trains_d_as_the_full_objective_does_without_g(tmp_path, monkeypatch, d_steps):
  """--unlabeled_weight=0 (the supervised baseline): `classifier_iteration` leaves D (weights, Adam, EMA,
  update count) where the full step, whose other terms weigh 0, leaves it (to round-off), over three
  iterations of k D updates with D's input noise, instance noise and shifted reals on; G is not trained and
  the iteration is counted."""
  from gan_jax import steps as steps_lib
  from gan_jax.state import init_state, make_optimizers
  cfg = ssl_config(tmp_path, unlabeled_weight=0.0, d_ema_decay=0.9, instance_noise=0.5, shift_reals=1,
                   d_steps=d_steps)
  nets = build_nets(cfg, (32, 32, 1), None, 10)
  g_tx, d_tx = make_optimizers(cfg)
  dataset = data_lib.make_dataset(cfg)
  batches = [jax.tree.map(lambda *a: jnp.stack([jnp.asarray(x) for x in a]),
                          *[dataset.get_batch(i * d_steps + j, cfg.batch_size) for j in range(d_steps)])
             for i in range(3)]

  def train(classifier_only):
    monkeypatch.setattr(objectives, "classifier_only", lambda obj: classifier_only)
    step = jax.jit(steps_lib.make_steps(cfg, nets, g_tx, d_tx).train_step)
    state = init_state(cfg, nets, g_tx, d_tx)
    for b in batches:
      state, metrics = step(state, b)
    return state, metrics

  assert objectives.classifier_only(objectives.objective_from_config(cfg))
  (fast, fast_metrics), (full, full_metrics) = train(True), train(False)
  for name in ("d_params", "d_opt_state", "ema_d_params"):
    for a, b in zip(jax.tree.leaves(getattr(fast, name)), jax.tree.leaves(getattr(full, name))):
      scale = float(np.max(np.abs(b)))  # Equal but for round-off: XLA sums the bias gradients in another order.
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5 * scale, err_msg=name)
  assert int(fast.step) == int(full.step) == 3 and int(fast.d_updates) == int(full.d_updates) == 3 * d_steps
  for name in ("d_loss", "labeled_nll", "labeled_accuracy"):
    np.testing.assert_allclose(np.asarray(fast_metrics[name]), np.asarray(full_metrics[name]), rtol=1e-5,
                               err_msg=name)
  g0 = init_state(cfg, nets, g_tx, d_tx).g_params
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(fast.g_params), jax.tree.leaves(g0)))


def test_only_a_cross_entropy_alone_takes_the_classifier_path():
  """Any weight on the GAN terms, or another D term beside a 0 weight, keeps the full step."""
  base = Config(dataset="mnist5k", model="improved_gan", labeled_examples=20, unlabeled_weight=0.0)
  assert objectives.classifier_only(objectives.objective_from_config(base))
  for change in (dict(unlabeled_weight=0.1), dict(labeled_examples=0), dict(gp_weight=1.0), dict(r1_weight=1.0),
                 dict(historical_averaging=1e-3)):
    assert not objectives.classifier_only(objectives.objective_from_config(dataclasses.replace(base, **change))), change
