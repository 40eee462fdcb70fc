"""The tricks of "Improved Techniques for Training GANs" and label conditioning: math and training."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses, regularizers, train
from gan_jax.config import ConfigError, validate
from gan_jax.nets import build_nets
from gan_jax.nets.layers import DiscriminatorHead, MinibatchDiscrimination, VirtualBatchNorm, concat_labels
from gan_jax.state import init_state, make_optimizers
from gan_jax.generate import Generator, generate_samples, make_generate_fn
from gan_jax.steps import make_steps
from tests.conftest import toy_config
from tests.step_math import discriminate, fakes, sgd_setup


# --- virtual batch norm ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4,), (3, 3, 4)], ids=["dense", "conv"])
def test_vbn_example_output_does_not_depend_on_the_rest_of_its_batch(shape):
  r = 6
  layer = VirtualBatchNorm(r)
  ref = jax.random.normal(jax.random.PRNGKey(0), (r, *shape))
  batch_a = jax.random.normal(jax.random.PRNGKey(1), (5, *shape))
  batch_b = batch_a.at[1:].set(10.0 * jax.random.normal(jax.random.PRNGKey(2), (4, *shape)) + 3.0)
  params = layer.init(jax.random.PRNGKey(3), jnp.concatenate([ref, batch_a]))
  params = jax.tree.map(lambda p: p + 0.3, params)  # non-trivial scale and bias
  out_a = layer.apply(params, jnp.concatenate([ref, batch_a]))
  out_b = layer.apply(params, jnp.concatenate([ref, batch_b]))
  np.testing.assert_allclose(out_a[r], out_b[r], rtol=1e-6, atol=1e-6)  # example 0: unchanged
  np.testing.assert_allclose(out_a[:r], out_b[:r], rtol=1e-6, atol=1e-6)  # the reference too
  assert not np.allclose(out_a[r + 1:], out_b[r + 1:])  # the changed examples do change
  # Batch norm, by contrast, moves example 0 when the rest of the batch changes.
  bn = lambda x: (x - x.mean(0)) / jnp.sqrt(x.var(0) + 1e-5)  # noqa: E731
  assert not np.allclose(bn(batch_a)[0], bn(batch_b)[0], atol=1e-3)


def test_vbn_matches_its_formula():
  r = 4
  layer = VirtualBatchNorm(r)
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (r + 3, 5)), np.float64) * 2 + 1
  params = layer.init(jax.random.PRNGKey(1), jnp.asarray(x, jnp.float32))
  out = np.asarray(layer.apply(params, jnp.asarray(x, jnp.float32)))
  ref = x[:r]
  # Reference rows: plain batch norm with the reference statistics.
  np.testing.assert_allclose(out[:r], (ref - ref.mean(0)) / np.sqrt(ref.var(0) + 1e-5), atol=1e-4)
  # Example i: the statistics of the reference batch with x_i added (R + 1 values).
  for i in range(r, r + 3):
    both = np.concatenate([ref, x[i:i + 1]])
    np.testing.assert_allclose(out[i], (x[i] - both.mean(0)) / np.sqrt(both.var(0) + 1e-5), atol=1e-4)


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_vbn_generator_sample_independent_of_its_batch(tmp_path, model):
  overrides = dict(virtual_batch_norm=8)
  shape = (2,)
  if model == "dcgan":
    overrides.update(model="dcgan", dataset="mnist5k", width=8, latent_dim=16, g_output="tanh")
    shape = (32, 32, 1)
  cfg = toy_config(tmp_path, **overrides)
  nets = build_nets(cfg, shape)
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  assert state.g_collections["vbn_reference"]["z"].shape == (8, cfg.latent_dim)
  generate = make_generate_fn(nets)
  z = jax.random.normal(jax.random.PRNGKey(0), (6, cfg.latent_dim))
  z2 = z.at[1:].set(jax.random.normal(jax.random.PRNGKey(1), (5, cfg.latent_dim)) * 3)
  a = generate(state.g_params, state.g_collections, z)
  b = generate(state.g_params, state.g_collections, z2)
  assert a.shape == (6, *shape)
  np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-5)
  assert not np.allclose(a[1:], b[1:])
  np.testing.assert_allclose(generate(state.g_params, state.g_collections, z[:1])[0], a[0], atol=1e-5)


# --- minibatch discrimination, projection, concatenation ------------------------------------------

def test_minibatch_discrimination_matches_a_loop():
  layer = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
  h = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
  params = layer.init(jax.random.PRNGKey(1), h)
  out = np.asarray(layer.apply(params, h), np.float64)
  t = np.asarray(params["params"]["kernel"], np.float64).reshape(4, 3, 2)
  m = np.einsum("nf,fbc->nbc", np.asarray(h, np.float64), t)
  expected = np.zeros((5, 3))
  for i in range(5):
    for j in range(5):
      if j != i:
        expected[i] += np.exp(-np.abs(m[i] - m[j]).sum(-1))
  np.testing.assert_allclose(out[:, :4], h, rtol=1e-6)
  np.testing.assert_allclose(out[:, 4:], expected, rtol=1e-5)
  # Identical examples see each other with c = 1: o = n - 1.
  same = layer.apply(params, jnp.tile(h[:1], (5, 1)))
  np.testing.assert_allclose(same[:, 4:], 4.0, rtol=1e-6)


def test_projection_head_adds_the_class_embedding_inner_product():
  head = DiscriminatorHead("projection", num_classes=3)
  h = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
  y = jnp.array([0, 2, 1, 2])
  params = head.init(jax.random.PRNGKey(1), h, y)
  logit, cls = head.apply(params, h, y)
  p = params["params"]
  expected = h @ p["Dense_0"]["kernel"][:, 0] + p["Dense_0"]["bias"][0] + jnp.sum(
      p["Embed_0"]["embedding"][y] * h, -1)
  np.testing.assert_allclose(logit, expected, rtol=1e-5, atol=1e-6)
  assert cls is None
  _, cls = DiscriminatorHead("acgan", num_classes=3).apply(
      DiscriminatorHead("acgan", num_classes=3).init(jax.random.PRNGKey(1), h, y), h, y)
  assert cls.shape == (4, 3)


def test_concat_labels_appends_one_hot_vectors_and_maps():
  x = jnp.ones((2, 3))
  np.testing.assert_array_equal(concat_labels(x, jnp.array([1, 0]), 2), [[1, 1, 1, 0, 1], [1, 1, 1, 1, 0]])
  maps = concat_labels(jnp.zeros((2, 4, 4, 1)), jnp.array([2, 0]), 3)
  assert maps.shape == (2, 4, 4, 4)
  np.testing.assert_array_equal(maps[0, 1, 2], [0, 0, 0, 1])
  np.testing.assert_array_equal(maps[1, 3, 3], [0, 1, 0, 0])


def test_conditional_generator_follows_its_labels(tmp_path):
  cfg = toy_config(tmp_path, conditioning="concat")
  nets = build_nets(cfg, (2,), num_classes=8)
  state = init_state(cfg, nets, *make_optimizers(cfg))
  generate = make_generate_fn(nets)
  z = jnp.tile(jax.random.normal(jax.random.PRNGKey(0), (1, 2)), (8, 1))
  by_label = generate(state.g_params, state.g_collections, z, jnp.arange(8))
  assert len({tuple(np.round(np.asarray(v), 6)) for v in by_label}) == 8  # same z, 8 labels, 8 outputs
  np.testing.assert_allclose(generate(state.g_params, state.g_collections, z), by_label, atol=1e-6)


def test_conditioning_needs_labels_and_pack_1(tmp_path):
  with pytest.raises(ConfigError, match="labelled dataset"):
    build_nets(toy_config(tmp_path, conditioning="acgan"), (2,), num_classes=0)
  with pytest.raises(ConfigError, match="--pack=1"):
    validate(toy_config(tmp_path, conditioning="projection", pack=2))
  with pytest.raises(ConfigError, match="conditioning"):
    validate(toy_config(tmp_path, conditioning="hstack"))


# --- losses and regularizers ----------------------------------------------------------------------

def test_feature_matching_loss_is_the_squared_distance_of_feature_means():
  real = jnp.array([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
  fake = jnp.array([[0.0, 0.0], [0.0, 2.0], [0.0, 1.0]])  # mean (0, 1)
  assert float(losses.feature_matching_loss(real, fake)) == pytest.approx(4.0 + 4.0)
  # Different examples with the same mean: zero, however unlike the examples are.
  assert float(losses.feature_matching_loss(real, jnp.array([[2.0, 3.0], [2.0, 3.0]]))) == 0.0
  maps = jnp.ones((3, 2, 2, 4))
  assert float(losses.feature_matching_loss(maps, 0.5 * maps)) == pytest.approx(16 * 0.25)


def test_class_nll_is_the_cross_entropy():
  logits = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
  assert float(losses.class_nll(logits, jnp.array([0, 2]))) == pytest.approx(
      -(np.log(0.5) + np.log(0.8)) / 2, rel=1e-6)


def test_historical_average_penalty_and_running_mean():
  params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
  avg = {"a": jnp.array([0.0, 0.0]), "b": jnp.array(1.0)}
  assert float(regularizers.historical_average_penalty(params, avg)) == pytest.approx(1 + 4 + 4)
  grads = jax.grad(regularizers.historical_average_penalty)(params, avg)
  np.testing.assert_allclose(grads["a"], [2.0, 4.0])  # 2 (theta - mean)
  values = [np.float32(v) for v in (4.0, -2.0, 7.0, 1.5)]
  mean = jnp.asarray(values[0])
  for count, v in enumerate(values[1:], start=2):
    mean = regularizers.update_average(mean, jnp.asarray(v), jnp.asarray(count))
  assert float(mean) == pytest.approx(np.mean(values), rel=1e-6)


def _steps(cfg, shape=(2,), num_classes=0):
  nets = build_nets(cfg, shape, num_classes=num_classes)
  g_tx, d_tx = make_optimizers(cfg)
  return init_state(cfg, nets, g_tx, d_tx), make_steps(cfg, nets, g_tx, d_tx)


def _ring_batch(cfg, index):
  from gan_jax.data import make_dataset
  return jax.tree.map(jnp.asarray, make_dataset(cfg).get_batch(index, cfg.batch_size))


def test_historical_average_is_the_mean_of_every_past_parameter_value(tmp_path):
  cfg = toy_config(tmp_path, historical_averaging=0.01, lr_g=1e-2, lr_d=1e-2)
  state, steps = _steps(cfg)
  d_seen, g_seen = [state.d_params], [state.g_params]
  d_step, g_step = jax.jit(steps.d_step), jax.jit(steps.g_step)
  for i in range(4):
    state, metrics = d_step(state, _ring_batch(cfg, i))
    d_seen.append(state.d_params)
    state, metrics = g_step(state)
    g_seen.append(state.g_params)
  assert metrics["g_hist_avg"] > 0
  for seen, avg in ((d_seen, state.d_param_avg), (g_seen, state.g_param_avg)):
    expected = jax.tree.map(lambda *v: np.mean(np.stack(v), 0), *seen)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6), avg, expected)


def test_weight_clipping_bounds_every_discriminator_weight(tmp_path):
  cfg = toy_config(tmp_path, loss="wgan", weight_clip=0.01)
  state, steps = _steps(cfg)
  assert max(float(jnp.abs(p).max()) for p in jax.tree.leaves(state.d_params)) > 0.01
  state, _ = jax.jit(steps.d_step)(state, _ring_batch(cfg, 0))
  assert max(float(jnp.abs(p).max()) for p in jax.tree.leaves(state.d_params)) == pytest.approx(0.01)


def _sgd(cfg, num_classes=0):
  nets = build_nets(cfg, (2,), num_classes=num_classes)
  state, steps = sgd_setup(cfg, nets)
  return nets, state, steps


def test_feature_matching_g_loss_is_that_of_d_features_of_reals_and_fakes(tmp_path):
  cfg = toy_config(tmp_path, feature_matching=True)
  nets, state, steps = _sgd(cfg)
  with pytest.raises(ValueError, match="real batch"):
    steps.g_step(state)
  batch = _ring_batch(cfg, 0)
  _, metrics = jax.jit(steps.g_step)(state, batch)
  x_fake, _ = fakes(nets, state, cfg.batch_size, "g")
  _, real_features, _ = discriminate(nets, state, batch["x"], None)
  _, fake_features, _ = discriminate(nets, state, x_fake, None)
  expected = losses.feature_matching_loss(real_features, fake_features)
  np.testing.assert_allclose(metrics["g_loss"], expected, rtol=1e-5)
  fake_logits = discriminate(nets, state, x_fake, None)[0]
  assert abs(float(expected) - float(losses.nonsaturating_generator_loss(fake_logits))) > 1e-3


def _d_and_g_metrics(cfg, state, batch, num_classes=0, **overrides):
  """(d_step metrics, g_step metrics, states) of one D and one G step of `state` under cfg + overrides."""
  _, _, steps = _sgd(dataclasses.replace(cfg, **overrides), num_classes)
  d_state, d_metrics = jax.jit(steps.d_step)(state, batch)
  g_state, g_metrics = jax.jit(steps.g_step)(state, batch if cfg.feature_matching else None)
  return d_metrics, g_metrics, d_state, g_state


def test_acgan_class_terms_are_the_cross_entropies_of_d_class_logits(tmp_path):
  """D: -log P(y|x) of the reals with their own labels + of the fakes with theirs; G: of its fakes."""
  cfg = toy_config(tmp_path, conditioning="acgan")
  nets, state, _ = _sgd(cfg, num_classes=8)
  batch = _ring_batch(cfg, 0)
  d1, g1, _, _ = _d_and_g_metrics(cfg, state, batch, 8, acgan_weight=1.0)
  d0, g0, _, _ = _d_and_g_metrics(cfg, state, batch, 8, acgan_weight=0.0)
  d3, g3, _, _ = _d_and_g_metrics(cfg, state, batch, 8, acgan_weight=2.5)
  x_fake, y_fake = fakes(nets, state, cfg.batch_size, "d")
  real_cls = discriminate(nets, state, batch["x"], batch["label"])[2]
  fake_cls = discriminate(nets, state, x_fake, y_fake)[2]
  expected = losses.class_nll(real_cls, batch["label"]) + losses.class_nll(fake_cls, y_fake)
  np.testing.assert_allclose(d1["class_nll"], expected, rtol=1e-5)
  # The weight enters D's loss: d_loss(w) - d_loss(0) = w * class_nll.
  np.testing.assert_allclose(d3["d_loss"] - d0["d_loss"], 2.5 * expected, rtol=1e-4)
  # G: g_loss(w) - g_loss(0) = w * (-log P(y_fake | G(z, y_fake))) on the G step's own fakes.
  g_fake, g_labels = fakes(nets, state, cfg.batch_size, "g")
  g_term = losses.class_nll(discriminate(nets, state, g_fake, g_labels)[2], g_labels)
  np.testing.assert_allclose(g3["g_loss"] - g0["g_loss"], 2.5 * g_term, rtol=1e-4)
  np.testing.assert_allclose(g1["g_loss"] - g0["g_loss"], g_term, rtol=1e-4)


def test_conditional_d_pairs_the_reals_with_their_own_labels(tmp_path):
  cfg = toy_config(tmp_path, conditioning="projection")
  nets, state, steps = _sgd(cfg, num_classes=8)
  batch = _ring_batch(cfg, 0)
  _, metrics = jax.jit(steps.d_step)(state, batch)
  x_fake, y_fake = fakes(nets, state, cfg.batch_size, "d")
  fake_logits = discriminate(nets, state, x_fake, y_fake)[0]
  d_loss = lambda labels: losses.discriminator_loss(  # noqa: E731
      discriminate(nets, state, batch["x"], labels)[0], fake_logits)
  np.testing.assert_allclose(metrics["d_loss"], d_loss(batch["label"]), rtol=1e-5)
  assert abs(float(d_loss(batch["label"])) - float(d_loss((batch["label"] + 1) % 8))) > 1e-4


def test_historical_averaging_enters_both_players_losses_and_gradients(tmp_path):
  """cost += w ||theta - avg||^2: the loss gains w * penalty, the SGD step gains -w * 2 (theta - avg)."""
  w = 0.5
  cfg = toy_config(tmp_path, historical_averaging=w)
  _, state, _ = _sgd(cfg)
  state = state.replace(d_param_avg=jax.tree.map(lambda p: p + 0.1, state.d_params),
                        g_param_avg=jax.tree.map(lambda p: p - 0.2, state.g_params))
  batch = _ring_batch(cfg, 0)
  dw, gw, dsw, gsw = _d_and_g_metrics(cfg, state, batch)
  d0, g0, ds0, gs0 = _d_and_g_metrics(cfg, state, batch, historical_averaging=0.0)
  n_d = sum(p.size for p in jax.tree.leaves(state.d_params))
  np.testing.assert_allclose(dw["d_hist_avg"], 0.01 * n_d, rtol=1e-4)
  np.testing.assert_allclose(dw["d_loss"] - d0["d_loss"], w * dw["d_hist_avg"], rtol=1e-4)
  # theta - avg = -0.1 (D), +0.2 (G): the penalty's gradient 2 w (theta - avg) joins the step.
  for new_w, new_0, delta in ((dsw.d_params, ds0.d_params, 0.1), (gsw.g_params, gs0.g_params, -0.2)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a - b, 2 * w * delta, rtol=1e-3, atol=1e-6),
                 new_w, new_0)


# --- every trick takes a finite step; three of them train for 200 steps ---------------------------

TRICKS = {
    "vbn": dict(virtual_batch_norm=16),
    "feature_matching": dict(feature_matching=True),
    "minibatch_discrimination": dict(minibatch_discrimination=8),
    "historical_averaging": dict(historical_averaging=0.01),
    "concat": dict(conditioning="concat"),
    "acgan": dict(conditioning="acgan"),
    "projection": dict(conditioning="projection"),
    "wgan_clip": dict(loss="wgan", weight_clip=0.01, d_steps=5, beta1=0.0, beta2=0.9),
    "smoothing_ttur_k2": dict(label_smoothing=0.1, lr_d=4e-4, lr_g=1e-4, d_steps=2),
    "lsgan_ema_pack": dict(loss="lsgan", ema_decay=0.99, pack=2),
}


@pytest.mark.parametrize("overrides", list(TRICKS.values()), ids=list(TRICKS))
def test_every_trick_takes_a_finite_training_step_that_moves_both_players(tmp_path, overrides):
  from gan_jax.data import make_dataset, stacked_batches
  cfg = toy_config(tmp_path, **overrides)
  dataset = make_dataset(cfg)
  state, steps = _steps(cfg, num_classes=dataset.num_classes if cfg.conditioning != "none" else 0)
  batches = jax.tree.map(lambda a: jnp.asarray(a[0]), stacked_batches(dataset, 0, 1, cfg.d_steps, cfg.batch_size))
  new, metrics = jax.jit(steps.train_step)(state, batches)
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values()), metrics
  for old, moved in ((state.g_params, new.g_params), (state.d_params, new.d_params)):
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(moved)))


LONG_RUNS = ("vbn", "acgan", "wgan_clip")


@pytest.mark.integration
@pytest.mark.parametrize("name", LONG_RUNS)
def test_tricks_train_200_ring_steps_finite(tmp_path, name):
  cfg = toy_config(tmp_path, train_steps=200, steps_per_call=100, eval_every=100, checkpoint_every=200,
                   **TRICKS[name])
  train.train_and_evaluate(cfg)
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [100, 200]
  for r in rows:
    assert all(np.isfinite(r[k]) for k in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")), r
  samples = np.load(tmp_path / "eval" / "final_samples.npy")
  assert samples.shape == (200, 2) and np.all(np.isfinite(samples))


@pytest.mark.integration
def test_conditional_dcgan_with_every_trick_trains_and_resumes(tmp_path):
  """Projection D + VBN + minibatch discrimination + feature matching + historical averaging on mnist5k."""
  from gan_jax import restore
  cfg = toy_config(tmp_path, model="dcgan", dataset="mnist5k", width=8, latent_dim=16, g_output="tanh",
                   batch_size=16, train_steps=2, steps_per_call=1, eval_every=2, checkpoint_every=1,
                   log_every=1, eval_samples=64, conditioning="projection", virtual_batch_norm=8,
                   minibatch_discrimination=4, feature_matching=True, historical_averaging=0.01)
  train.train_and_evaluate(cfg)
  _, nets, state, step, _ = restore.load_run(str(tmp_path))
  assert step == 2 and nets.num_classes == 10 and state.g_param_avg is not None
  x = generate_samples(nets, state, 20)
  assert x.shape == (20, 32, 32, 1) and np.all(np.isfinite(x))
  threes, fours = (generate_samples(nets, state, 20, label=c) for c in (3, 4))
  np.testing.assert_allclose(threes[3], x[3], atol=1e-5)  # same z; row 3 of the default is class 3
  assert not np.allclose(threes, fours)
  import subprocess
  import sys
  from tests.conftest import REPO
  bad = subprocess.run([sys.executable, f"{REPO}/experiments/sample.py", f"--workdir={tmp_path}", "--label=10"],
                       capture_output=True, text=True)
  assert bad.returncode == 2 and "--label=10: must lie in [0, 10)" in bad.stderr
  more = dataclasses.replace(cfg, train_steps=3)
  train.train_and_evaluate(more)  # resumes from step 2 with the same state structure
  assert restore.load_run(str(tmp_path))[3] == 3


def test_conditional_samples_cycle_the_classes_across_chunks(tmp_path):
  """Generation draws labels for the whole sample set, so chunks keep the classes even."""
  from gan_jax import tasks, writers
  from gan_jax.data import make_dataset
  cfg = toy_config(tmp_path, conditioning="concat", eval_samples=20)
  dataset = make_dataset(cfg)
  nets = build_nets(cfg, (2,), num_classes=dataset.num_classes)
  state = init_state(cfg, nets, *make_optimizers(cfg))
  evaluator = train.Evaluator(cfg, nets, tasks.make_task(cfg, dataset), str(tmp_path),
                              writers.MetricWriter(str(tmp_path), enabled=False))
  whole = make_generate_fn(nets)(state.ema_g_params, state.g_collections, jnp.asarray(evaluator.z))
  np.testing.assert_allclose(evaluator.samples(state), whole, atol=1e-6)
  np.testing.assert_allclose(Generator(nets, chunk=3)(state, evaluator.z), whole, atol=1e-6)  # 3 does not divide 8


def test_evaluation_and_sampling_use_the_ema_generator(tmp_path):
  """Samples come from ema_g_params: zero EMA weights give a zero linear output, G's own weights do not."""
  from gan_jax import tasks, writers
  from gan_jax.data import make_dataset
  cfg = toy_config(tmp_path, eval_samples=20, ema_decay=0.5, data_scale=0.5)
  dataset = make_dataset(cfg)
  nets = build_nets(cfg, (2,))
  state = init_state(cfg, nets, *make_optimizers(cfg))
  state = state.replace(ema_g_params=jax.tree.map(jnp.zeros_like, state.g_params))
  evaluator = train.Evaluator(cfg, nets, tasks.make_task(cfg, dataset), str(tmp_path),
                              writers.MetricWriter(str(tmp_path), enabled=False))
  np.testing.assert_array_equal(evaluator.samples(state), 0.0)
  np.testing.assert_array_equal(generate_samples(nets, state, 20), 0.0)
  swapped = state.replace(ema_g_params=state.g_params)
  from_g = make_generate_fn(nets)(state.g_params, state.g_collections, jnp.asarray(evaluator.z))
  assert np.abs(np.asarray(from_g)).max() > 1e-3
  # Toy samples are reported in data units: G's output divided by the training scale.
  np.testing.assert_allclose(evaluator.samples(swapped), np.asarray(from_g) / 0.5, rtol=1e-6)
  batch = dataset.get_batch(3, 8)
  x, _ = dataset.mixture.sample(np.random.default_rng([cfg.seed, 3]), 8)
  np.testing.assert_array_equal(batch["x"], x * np.float32(0.5))
