"""Gradient penalties against closed forms, their weights in D's loss, spectral norm in D, and a WGAN-GP run."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import regularizers, train
from gan_jax.data import make_dataset
from gan_jax.nets import build_nets
from gan_jax.state import init_state, make_optimizers
from gan_jax.steps import make_steps
from tests.conftest import toy_config


def linear_critic(w):
  return lambda x: x.reshape(x.shape[0], -1) @ w


@pytest.mark.parametrize("scale,expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(scale, expected):
  w = jnp.array([0.6, 0.8, 0.0]) * scale  # ||w|| = scale: grad norm is scale everywhere
  x_real = jax.random.normal(jax.random.key(0), (16, 3))
  x_fake = jax.random.normal(jax.random.key(1), (16, 3))
  gp = regularizers.gradient_penalty(linear_critic(w), x_real, x_fake, jax.random.key(2))
  np.testing.assert_allclose(gp, expected, atol=1e-6)


def test_r1_of_a_quadratic_critic():
  # D(x) = 1/2 ||x||^2: grad = x, so R1 = E||x||^2.
  x = jax.random.normal(jax.random.key(0), (32, 4))
  r1 = regularizers.r1_penalty(lambda v: 0.5 * jnp.sum(v ** 2, axis=1), x)
  np.testing.assert_allclose(r1, jnp.mean(jnp.sum(x ** 2, axis=1)), rtol=1e-5)


def test_penalty_is_taken_at_the_interpolates_with_per_example_gradients():
  """D(x) = 1/2 ||x||^2 per example: grad = x_hat, so the penalty is E[(||x_hat|| - 1)^2] with
  x_hat = e x_real + (1 - e) x_fake, e ~ U[0, 1] per example; real and fake far apart, so taking the
  penalty at the reals, the fakes or a fixed mixture gives other values."""
  key = jax.random.key(1)
  x_real = jax.random.normal(jax.random.key(0), (8, 2)) + jnp.array([5.0, 0.0])
  x_fake = jax.random.normal(jax.random.key(2), (8, 2)) - jnp.array([0.0, 5.0])
  critic = lambda v: 0.5 * jnp.sum(v ** 2, axis=1)  # noqa: E731
  gp = regularizers.gradient_penalty(critic, x_real, x_fake, key)
  eps = np.asarray(jax.random.uniform(key, (8, 1)), np.float64)
  x_hat = eps * np.asarray(x_real, np.float64) + (1 - eps) * np.asarray(x_fake, np.float64)
  expected = np.mean((np.linalg.norm(x_hat, axis=1) - 1) ** 2)
  np.testing.assert_allclose(gp, expected, rtol=1e-5)
  for wrong in (x_real, x_fake, 0.5 * (x_real + x_fake)):
    assert abs(np.mean((np.linalg.norm(np.asarray(wrong), axis=1) - 1) ** 2) - expected) > 0.1 * expected


def _one_d_step(cfg, state, batch, num_classes=0, **overrides):
  from tests.step_math import sgd_setup
  nets = build_nets(dataclasses.replace(cfg, **overrides), (2,), num_classes=num_classes)
  return jax.jit(sgd_setup(dataclasses.replace(cfg, **overrides), nets)[1].d_step)(state, batch)[1]


@pytest.mark.parametrize("flag,metric,factor", [("gp_weight", "gp", 1.0), ("r1_weight", "r1", 0.5)])
def test_penalty_enters_d_loss_with_its_weight(tmp_path, flag, metric, factor):
  """d_loss(lambda) - d_loss(0) = lambda * GP, and gamma / 2 * R1 (Mescheder et al. 2018, eq. 9)."""
  from tests.step_math import sgd_setup
  cfg = toy_config(tmp_path, loss="wgan", pack=2, **{flag: 1.0})
  state = sgd_setup(cfg, build_nets(cfg, (2,)))[0]
  batch = jax.tree.map(jnp.asarray, make_dataset(cfg).get_batch(0, cfg.batch_size))
  on = _one_d_step(cfg, state, batch, **{flag: 3.0})
  off = _one_d_step(cfg, state, batch, **{flag: 0.0})
  assert on[metric] > 1e-3
  np.testing.assert_allclose(on["d_loss"] - off["d_loss"], 3.0 * factor * on[metric], rtol=1e-4)


def test_conditional_gradient_penalty_is_taken_on_interpolates_with_the_real_labels(tmp_path):
  """Projection D: the penalty's critic is D(., y_real) at x_hat = e x + (1 - e) G(z)."""
  from gan_jax.steps import step_keys
  from tests.step_math import discriminate, fakes, sgd_setup
  cfg = toy_config(tmp_path, loss="wgan", gp_weight=10.0, conditioning="projection")
  nets = build_nets(cfg, (2,), num_classes=8)
  state = sgd_setup(cfg, nets)[0]
  batch = jax.tree.map(jnp.asarray, make_dataset(cfg).get_batch(0, cfg.batch_size))
  metrics = _one_d_step(cfg, state, batch, num_classes=8)
  x_fake, _ = fakes(nets, state, cfg.batch_size, "d")
  key_gp = jax.random.split(step_keys(state).d_update, 3)[2]
  critic = lambda labels: lambda v: discriminate(nets, state, v, labels)[0]  # noqa: E731
  expected = regularizers.gradient_penalty(critic(batch["label"]), batch["x"], x_fake, key_gp)
  np.testing.assert_allclose(metrics["gp"], expected, rtol=1e-5)
  other = regularizers.gradient_penalty(critic((batch["label"] + 3) % 8), batch["x"], x_fake, key_gp)
  assert abs(float(other) - float(expected)) > 1e-4 * abs(float(expected))


@pytest.mark.integration
def test_wgan_gp_trains_200_ring_steps_finite(tmp_path):
  overrides = dict(loss="wgan", gp_weight=10.0, lr_d=1e-4, beta1=0.0, beta2=0.9, d_steps=5)
  train.train_and_evaluate(toy_config(tmp_path, train_steps=200, steps_per_call=100, eval_every=100,
                                      checkpoint_every=200, **overrides))
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert all(np.isfinite(r["gp"]) and np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  assert all(r["gp"] > 0 for r in rows)


def test_spectral_norm_divides_every_d_layer_by_its_top_singular_value(tmp_path):
  """After enough D steps (one power iteration each) every layer of D, the head included, carries the
  top singular value of its kernel: D's weights are divided by it."""
  cfg = toy_config(tmp_path, spectral_norm=True, loss="hinge", lr_d=1e-7)
  nets = build_nets(cfg, (2,))
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  steps = make_steps(cfg, nets, g_tx, d_tx)
  d_step = jax.jit(steps.d_step)
  for i in range(80):
    state, _ = d_step(state, jax.tree.map(jnp.asarray, make_dataset(cfg).get_batch(i, cfg.batch_size)))
  # batch_stats [..., 'SpectralNorm_i', '<layer>/kernel/sigma'] belongs to params [..., '<layer>', 'kernel'].
  found = 0
  for path, sigma in jax.tree_util.tree_flatten_with_path(state.d_collections["batch_stats"])[0]:
    name = path[-1].key
    if not name.endswith("/kernel/sigma"):
      continue
    parent = [p.key for p in path[:-2]]
    kernel = state.d_params
    for key in parent + [name.split("/")[0], "kernel"]:
      kernel = kernel[key]
    np.testing.assert_allclose(float(sigma), np.linalg.svd(np.asarray(kernel), compute_uv=False)[0], rtol=2e-3)
    found += 1
  assert found == len(cfg.d_hidden) + 1  # hidden layers and the head


@pytest.mark.integration
def test_spectral_norm_state_is_checkpointed_so_resume_is_exact(tmp_path):
  kw = dict(loss="hinge", spectral_norm=True, steps_per_call=2, eval_every=2, checkpoint_every=2)
  train.train_and_evaluate(toy_config(tmp_path / "straight", train_steps=6, **kw))
  train.train_and_evaluate(toy_config(tmp_path / "resumed", train_steps=2, **kw))
  train.train_and_evaluate(toy_config(tmp_path / "resumed", train_steps=6, **kw))
  from gan_jax import restore
  a, b = (restore.load_run(str(tmp_path / n))[2] for n in ("straight", "resumed"))
  assert "batch_stats" in a.d_collections
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


SN_CASES = [("mlp", "relu", "none"), ("mlp", "maxout", "projection"), ("mlp", "relu", "acgan"),
            ("mlp", "relu", "concat"), ("dcgan", "relu", "projection"), ("dcgan", "relu", "acgan"),
            ("dcgan", "relu", "none")]


@pytest.mark.parametrize("model,activation,conditioning", SN_CASES, ids=["-".join(c) for c in SN_CASES])
def test_spectral_norm_reaches_every_kernel_of_d(tmp_path, model, activation, conditioning):
  """A spectrally normalised kernel W enters D as W / sigma(W): scaling it by 3 changes nothing. Every
  parameter of rank >= 2 of D (the projection embedding, the AC-GAN head, maxout's pieces and the
  minibatch-discrimination tensor included) is scaled in turn, and D's logits and class logits stay."""
  shape = (2,) if model == "mlp" else (28, 28, 1)
  cfg = toy_config(tmp_path, spectral_norm=True, model=model, d_activation=activation, conditioning=conditioning,
                   minibatch_discrimination=3 if model == "mlp" else 0, width=8, d_hidden=(16, 16))
  nets = build_nets(cfg, shape, num_classes=4 if conditioning != "none" else 0)
  state = init_state(cfg, nets, *make_optimizers(cfg))
  x = jax.random.normal(jax.random.PRNGKey(1), (6, *shape))
  labels = jnp.arange(6) % 4 if nets.num_classes else None

  def d(params):
    out = nets.discriminator.apply({"params": params, **state.d_collections}, x, labels, train=False, features=True)
    return out[0], out[2]

  reference = d(state.d_params)
  kernels = [p for p, leaf in jax.tree_util.tree_flatten_with_path(state.d_params)[0] if leaf.ndim >= 2]
  assert len(kernels) >= 3
  for path in kernels:
    scaled = jax.tree_util.tree_map_with_path(lambda p, v, path=path: v * 3.0 if p == path else v, state.d_params)
    for got, want in zip(d(scaled), reference):
      if want is not None:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


@pytest.mark.integration
def test_a_spectral_norm_checkpoint_of_the_earlier_layout_is_refused_with_one_line(tmp_path):
  """An earlier gan-jax left the projection embedding unnormalised: its checkpoints lack that layer's
  power-iteration state. Resuming one is refused naming why, and nothing in the workdir changes."""
  from gan_jax import checkpoint as ckpt_lib
  from gan_jax import restore
  from gan_jax.errors import CheckpointError
  kw = dict(dataset="grid", spectral_norm=True, conditioning="projection", **{"train_steps": 4, "steps_per_call": 2,
                                                                            "eval_every": 2, "checkpoint_every": 2})
  train.train_and_evaluate(toy_config(tmp_path, **kw))
  _, _, state, _, meta = restore.load_run(str(tmp_path))
  stats = dict(state.d_collections["batch_stats"])
  head = dict(stats["DiscriminatorHead_0"])
  del head[next(k for k, v in head.items() if any(n.startswith("Embed_0/") for n in v))]  # the embedding's state
  old = state.replace(d_collections={"batch_stats": {**stats, "DiscriminatorHead_0": head}})
  saver = ckpt_lib.Checkpointer(str(tmp_path), 3)
  saver.save(6, old, {**meta, "step": 6})
  saver.close()
  before = sorted(os.listdir(tmp_path / "checkpoints"))
  with pytest.raises(CheckpointError, match=r"checkpoints/6 cannot be resumed here: it was written by an earlier "
                                            r"gan-jax whose --spectral_norm left the projection embedding.*Embed_0"):
    train.train_and_evaluate(toy_config(tmp_path, **{**kw, "train_steps": 8}))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == before and not (tmp_path / "checkpoints_corrupt").exists()


def test_lecam_penalty_is_its_formula():
  """E relu(D(x) - a_F)^2 + E relu(a_R - D(G(z)))^2 by hand, rows on both sides of each anchor (a planted
  two-sided square, or swapped anchors, fail)."""
  real, fake = np.array([2.0, -1.0, 0.5, -0.3]), np.array([-3.0, 1.0, 0.0, 0.6])
  anchors = np.array([0.7, -0.4])  # (a_R, a_F)
  expected = np.mean(np.maximum(real - anchors[1], 0) ** 2) + np.mean(np.maximum(anchors[0] - fake, 0) ** 2)
  got = regularizers.lecam_penalty(jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32),
                                   jnp.asarray(anchors, jnp.float32))
  np.testing.assert_allclose(float(got), expected, rtol=1e-6)
  np.testing.assert_allclose(expected, (2.4 ** 2 + 0.9 ** 2 + 0.1 ** 2) / 4 + (3.7 ** 2 + 0.7 ** 2 + 0.1 ** 2) / 4)


def test_lecam_anchors_are_the_zero_debiased_moving_averages():
  """ema_t = d ema_{t-1} + (1 - d) m_t from 0, anchors ema_t / (1 - d^t): the first update's anchors are its own
  batch means, then the debiased average of all so far (a planted missing debias fails the first)."""
  means = np.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0], [2.0, 2.0]])
  ema, reference = jnp.zeros(2, jnp.float32), np.zeros(2)
  for t, m in enumerate(means, start=1):
    ema, anchors = regularizers.lecam_anchors(ema, jnp.int32(t), jnp.asarray(m, jnp.float32), 0.9)
    reference = 0.9 * reference + 0.1 * m
    np.testing.assert_allclose(np.asarray(ema), reference, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(anchors), reference / (1 - 0.9 ** t), rtol=1e-5)
    weights = 0.9 ** np.arange(t)[::-1]
    np.testing.assert_allclose(np.asarray(anchors), weights @ means[:t] / weights.sum(), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(regularizers.lecam_anchors(jnp.zeros(2), jnp.int32(1),
                                                                   jnp.asarray(means[0], jnp.float32), 0.99)[1]),
                             means[0], rtol=1e-5)


def test_lecam_enters_d_loss_with_its_weight_and_anchors_held_fixed(tmp_path):
  """L_D(lambda) - L_D(0) = lambda * penalty(D's logits, anchors of the moving averages through this batch),
  the new moving averages returned, and the gradient is that of the penalty with the anchors constant (a
  planted gradient through the anchors fails)."""
  from gan_jax import losses, objectives
  cfg = toy_config(tmp_path)
  d = build_nets(cfg, (2,)).discriminator
  rng = np.random.default_rng(0)
  x_real, x_fake = (jnp.asarray(rng.normal(size=(16, 2)), jnp.float32) for _ in range(2))
  params = d.init(jax.random.PRNGKey(0), x_real, None, train=False)["params"]
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  ema0 = jnp.asarray([0.3, -0.2], jnp.float32)
  base = objectives.Objective(losses.get_loss("nonsaturating"))
  on = dataclasses.replace(base, lecam_weight=2.5, lecam_decay=0.9, lecam_ema=ema0, lecam_count=jnp.int32(3))

  def objective(obj):
    return jax.value_and_grad(lambda p: objectives.discriminator_objective(
        obj, d, p, {}, None, (x_real, None), (x_fake, None), keys), has_aux=True)(params)

  (total_on, (_, real, fake, terms, ema)), grads_on = objective(on)
  (total_off, (*_, ema_off)), grads_off = objective(base)
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  expected_ema = 0.9 * np.asarray(ema0) + 0.1 * np.array([real.mean(), fake.mean()])
  anchors = expected_ema / (1 - 0.9 ** 3)
  penalty = np.mean(np.maximum(real - anchors[1], 0) ** 2) + np.mean(np.maximum(anchors[0] - fake, 0) ** 2)
  assert ema_off is None and penalty > 1e-2
  np.testing.assert_allclose(np.asarray(ema), expected_ema, rtol=1e-5)
  np.testing.assert_allclose(float(terms["lecam"]), penalty, rtol=1e-5)
  np.testing.assert_allclose(float(total_on - total_off), 2.5 * penalty, rtol=1e-5)
  fixed = jnp.asarray(anchors, jnp.float32)
  penalty_grads = jax.grad(lambda p: regularizers.lecam_penalty(
      objectives.discriminate(d, p, {}, x_real, None, keys[0])[0][0],
      objectives.discriminate(d, p, {}, x_fake, None, keys[1])[0][0], fixed))(params)
  for a, b, c in zip(jax.tree.leaves(grads_on), jax.tree.leaves(grads_off), jax.tree.leaves(penalty_grads)):
    np.testing.assert_allclose(np.asarray(a - b), 2.5 * np.asarray(c), rtol=1e-4, atol=1e-6)


def test_consistency_enters_d_loss_with_its_weight_and_black_shifts_per_image(tmp_path):
  """bCR: L_D(lambda) - L_D(0) = lambda [mean (D(x) - D(T x))^2 + mean (D(G(z)) - D(T G(z)))^2], T x shifted by
  hand (numpy, black shifted in) by the shifts drawn from each pass's key, and the gradient is the penalty's
  through both passes (a planted gray fill, a stop_gradient on either pass, or one batch's shifts reused for
  the other fail)."""
  from gan_jax import augment, losses, objectives
  cfg = toy_config(tmp_path)
  d = build_nets(cfg, (8, 8, 1)).discriminator
  rng = np.random.default_rng(0)
  x_real, x_fake = (jnp.asarray(rng.uniform(-1, 1, size=(16, 8, 8, 1)), jnp.float32) for _ in range(2))
  params = d.init(jax.random.PRNGKey(0), x_real, None, train=False)["params"]
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  base = objectives.Objective(losses.get_loss("nonsaturating"))
  on = dataclasses.replace(base, consistency_weight=2.5)

  def objective(obj):
    return jax.value_and_grad(lambda p: objectives.discriminator_objective(
        obj, d, p, {}, None, (x_real, None), (x_fake, None), keys), has_aux=True)(params)

  def shifted_by_hand(x, key):  # out[i, j] = x[i + s_h, j + s_w] inside the image, else -1
    shift = np.asarray(augment.translation_params(jax.random.fold_in(key, objectives.CONSISTENCY_SALT), x.shape))
    assert np.abs(shift).max() == 1 and len(np.unique(shift, axis=0)) > 3  # round(8 / 8) = 1 px, per image
    x, out = np.asarray(x), np.full(x.shape, -1.0, np.float32)
    for b, (sh, sw) in enumerate(shift):
      for i in range(8):
        for j in range(8):
          if 0 <= i + sh < 8 and 0 <= j + sw < 8:
            out[b, i, j] = x[b, i + sh, j + sw]
    return jnp.asarray(out)

  shifted = [shifted_by_hand(x_real, keys[0]), shifted_by_hand(x_fake, keys[1])]

  def penalty(p):
    def logits(x, key):
      return objectives.discriminate(d, p, {}, x, None, key)[0][0]
    key_r, key_f = (jax.random.fold_in(k, objectives.CONSISTENCY_SALT) for k in keys[:2])
    return (jnp.mean(jnp.square(logits(x_real, keys[0]) - logits(shifted[0], key_r)))
            + jnp.mean(jnp.square(logits(x_fake, keys[1]) - logits(shifted[1], key_f))))

  (total_on, (*_, terms, _)), grads_on = objective(on)
  (total_off, _), grads_off = objective(base)
  expected, penalty_grads = jax.value_and_grad(penalty)(params)
  assert float(expected) > 1e-3
  np.testing.assert_allclose(float(terms["consistency"]), float(expected), rtol=1e-5)
  np.testing.assert_allclose(float(total_on - total_off), 2.5 * float(expected), rtol=1e-4)
  for a, b, c in zip(jax.tree.leaves(grads_on), jax.tree.leaves(grads_off), jax.tree.leaves(penalty_grads)):
    np.testing.assert_allclose(np.asarray(a - b), 2.5 * np.asarray(c), rtol=1e-4, atol=1e-6)


@pytest.mark.integration
def test_lecam_on_eight_devices_equals_one_and_off_adds_no_state(tmp_path):
  """The anchors average the global batch: one iteration on 8 devices gives the penalty and moving averages of
  one device (a planted per-device mean fails); off, the state holds no moving averages."""
  from tests.test_sharding import one_step_on
  cfg = toy_config(tmp_path, batch_size=64, lecam_weight=0.5)
  (m1, s1), (m8, s8) = one_step_on(cfg, 1), one_step_on(cfg, 8)
  np.testing.assert_allclose(m8["lecam"], m1["lecam"], rtol=1e-5)
  np.testing.assert_allclose(np.asarray(s8.lecam_ema), np.asarray(s1.lecam_ema), rtol=1e-5)
  assert float(np.abs(np.asarray(s1.lecam_ema)).min()) > 0
  assert one_step_on(dataclasses.replace(cfg, lecam_weight=0.0), 1)[1].lecam_ema is None


@pytest.mark.integration
def test_a_lecam_run_resumes_exactly(tmp_path):
  """The moving averages travel in the checkpoint: 20 + 20 iterations end bitwise where 40 do."""
  from tests.test_checkpoint import assert_same_state
  kw = dict(train_steps=40, steps_per_call=10, eval_every=20, checkpoint_every=10, d_steps=2, lecam_weight=0.5,
            lecam_decay=0.9)
  train.train_and_evaluate(toy_config(tmp_path / "straight", **kw))
  train.train_and_evaluate(toy_config(tmp_path / "resumed", **{**kw, "train_steps": 20}))
  train.train_and_evaluate(toy_config(tmp_path / "resumed", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 40)
