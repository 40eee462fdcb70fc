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
