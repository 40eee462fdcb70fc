"""Pure d_step / g_step: what each changes, finiteness, determinism, one compile."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import config as config_lib
from gan_jax.data import make_dataset, stacked_batches
from gan_jax.errors import ConfigError
from gan_jax.nets import build_nets
from gan_jax.state import init_state, make_optimizers
from gan_jax.steps import make_steps
from tests.conftest import toy_config


def tree_equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  """Equal up to float reassociation (one fused jit against several)."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol),
               a, b)


@pytest.fixture(params=["mlp", "dcgan"])
def setup(request, tmp_path):
  if request.param == "mlp":
    cfg = toy_config(tmp_path, batch_size=16)
    shape = (2,)
  else:
    cfg = toy_config(tmp_path, model="dcgan", dataset="mnist5k", resolution=28, width=8,
                     batch_size=8, latent_dim=16)
    shape = (28, 28, 1)
  nets = build_nets(cfg, shape)
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  steps = make_steps(cfg, nets, g_tx, d_tx)
  batch = {"x": jax.random.normal(jax.random.key(0), (cfg.batch_size, *shape)),
           "label": jnp.zeros((cfg.batch_size,), jnp.int32)}
  return cfg, state, steps, batch


def test_d_step_changes_only_the_discriminator(setup):
  _, state, steps, batch = setup
  new, metrics = jax.jit(steps.d_step)(state, batch)
  for name in ("g_params", "g_collections", "g_opt_state", "ema_g_params", "step", "rng"):
    assert tree_equal(getattr(state, name), getattr(new, name)), name
  assert not tree_equal(state.d_params, new.d_params)
  assert not tree_equal(state.d_opt_state, new.d_opt_state)
  assert int(new.d_updates) == 1
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())


def test_g_step_changes_only_the_generator(setup):
  _, state, steps, _ = setup
  new, metrics = jax.jit(steps.g_step)(state)
  for name in ("d_params", "d_collections", "d_opt_state", "d_updates", "rng"):
    assert tree_equal(getattr(state, name), getattr(new, name)), name
  assert not tree_equal(state.g_params, new.g_params)
  assert not tree_equal(state.g_opt_state, new.g_opt_state)
  assert int(new.step) == 1
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())


def test_step_keys_fold_in_the_counters(setup):
  """The same weights at a later counter draw other latents: the key folds in the counter."""
  _, state, steps, batch = setup
  _, ma = jax.jit(steps.d_step)(state, batch)
  _, mc = jax.jit(steps.d_step)(state.replace(d_updates=state.d_updates + 1), batch)
  assert float(mc["d_fake"]) != float(ma["d_fake"])
  _, ga = jax.jit(steps.g_step)(state)
  _, gc = jax.jit(steps.g_step)(state.replace(step=state.step + 1))
  assert float(ga["g_loss"]) != float(gc["g_loss"])


def _ring_steps(tmp_path, **overrides):
  cfg = toy_config(tmp_path, batch_size=16, **overrides)
  nets = build_nets(cfg, (2,))
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  batches = stacked_batches(make_dataset(cfg), 0, 1, cfg.d_steps, cfg.batch_size)
  return cfg, state, make_steps(cfg, nets, g_tx, d_tx), jax.tree.map(lambda a: jnp.asarray(a[0]), batches)


def test_train_step_is_k_d_steps_on_their_own_batches_then_a_g_step(tmp_path):
  """train_step == d_step(batch 0) .. d_step(batch k-1), then g_step, chained by hand."""
  cfg, state, steps, batches = _ring_steps(tmp_path, d_steps=3)
  new, metrics = jax.jit(steps.train_step)(state, batches)
  assert int(new.d_updates) == 3 and int(new.step) == 1
  by_hand = state
  for i in range(cfg.d_steps):
    by_hand, d_metrics = jax.jit(steps.d_step)(by_hand, jax.tree.map(lambda a: a[i], batches))
  by_hand, g_metrics = jax.jit(steps.g_step)(by_hand)
  assert_trees_close(new, by_hand)  # Adam's first steps move weights by ~lr = 2e-4: far above atol
  assert_trees_close(metrics, {**d_metrics, **g_metrics})


@pytest.mark.parametrize("share", [False, True])
def test_every_d_step_of_an_iteration_reads_its_own_batch(tmp_path, share):
  """Changing any one of the k batches changes the result: no D step reuses another's batch."""
  _, state, steps, batches = _ring_steps(tmp_path, d_steps=2, share_fakes=share)
  step = jax.jit(steps.train_step)
  base, _ = step(state, batches)
  for i in range(2):
    other = jax.tree.map(lambda a: a, batches)
    other["x"] = batches["x"].at[i].set(batches["x"][i] + 0.5)
    moved, _ = step(state, other)
    assert not tree_equal(base.d_params, moved.d_params), i


def test_jitted_step_compiles_once(setup):
  _, state, steps, batch = setup
  traces = []

  def counted(state, batch):
    traces.append(1)
    return steps.d_step(state, batch)

  fn = jax.jit(counted)
  for _ in range(3):
    state, _ = fn(state, batch)
  assert len(traces) == 1


@pytest.mark.parametrize("loss_name", ["nonsaturating", "minimax", "wgan", "lsgan"])
def test_g_step_gradient_equals_direct_differentiation(tmp_path, loss_name):
  """The vjp-based G update equals jax.grad of g_loss(D(G(z))) with respect to G's weights.

  With SGD(1.0) the update is exactly -grad, so a scaled or wrong gradient cannot hide behind
  Adam's sign-like first step; the reported g_grad_norm is that gradient's norm.
  """
  from gan_jax import losses
  from gan_jax.steps import sample_latents, step_keys
  from tests.step_math import sgd_setup
  cfg = toy_config(tmp_path, batch_size=16, pack=2, loss=loss_name)
  nets = build_nets(cfg, (2,))
  state, steps = sgd_setup(cfg, nets)
  new, metrics = jax.jit(steps.g_step)(state)
  z = sample_latents(step_keys(state).g_latents, 16, nets.latent_dim)

  def loss(p):
    x = nets.generator.apply({"params": p}, z)  # D judges packed pairs of these
    return losses.get_loss(loss_name).g_loss(nets.discriminator.apply({"params": state.d_params}, x))

  grad = jax.grad(loss)(state.g_params)
  step = jax.tree.map(lambda a, b: a - b, state.g_params, new.g_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), step, grad)
  np.testing.assert_allclose(metrics["g_grad_norm"], optax.tree.norm(grad), rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], loss(state.g_params), rtol=1e-5)


def test_d_step_gradient_equals_direct_differentiation(tmp_path):
  """D's update is -grad of d_loss(D(x), D(G(z))) (SGD(1.0)); d_loss and d_grad_norm are reported."""
  from gan_jax import losses
  from tests.step_math import fakes, sgd_setup
  cfg = toy_config(tmp_path, batch_size=16, pack=2, label_smoothing=0.1)
  nets = build_nets(cfg, (2,))
  state, steps = sgd_setup(cfg, nets)
  batch = jax.tree.map(jnp.asarray, make_dataset(cfg).get_batch(0, 16))
  new, metrics = jax.jit(steps.d_step)(state, batch)
  x_fake, _ = fakes(nets, state, 16, "d")

  def loss(p):
    d = lambda x: nets.discriminator.module.apply({"params": p}, x.reshape(8, 4))  # packed pairs  # noqa: E731
    return losses.discriminator_loss(d(batch["x"]), d(x_fake), 0.1)

  grad = jax.grad(loss)(state.d_params)
  step = jax.tree.map(lambda a, b: a - b, state.d_params, new.d_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), step, grad)
  np.testing.assert_allclose(metrics["d_grad_norm"], optax.tree.norm(grad), rtol=1e-5)
  np.testing.assert_allclose(metrics["d_loss"], loss(state.d_params), rtol=1e-5)


def test_ema_of_g_follows_its_formula(tmp_path):
  """theta_ema <- d theta_ema + (1 - d) theta, with theta the weights after this G update."""
  cfg, state, steps, _ = _ring_steps(tmp_path, ema_decay=0.9)
  state = state.replace(ema_g_params=jax.tree.map(lambda p: p * 0 + 1.0, state.g_params))
  new, _ = jax.jit(steps.g_step)(state)
  expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, state.ema_g_params, new.g_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new.ema_g_params, expected)


@pytest.mark.parametrize("share", [False, True])
def test_share_fakes_counts_and_reuses_the_generator_forward(tmp_path, share, monkeypatch):
  from gan_jax import steps as steps_lib
  cfg = toy_config(tmp_path, d_steps=2, batch_size=16, share_fakes=share)
  nets = build_nets(cfg, (2,))
  g_tx, d_tx = make_optimizers(cfg)
  state = init_state(cfg, nets, g_tx, d_tx)
  generator_calls = []
  apply = steps_lib.apply_module

  def counting_apply(module, *args, **kwargs):
    generator_calls.append(module is nets.generator)
    return apply(module, *args, **kwargs)

  monkeypatch.setattr(steps_lib, "apply_module", counting_apply)
  steps = make_steps(cfg, nets, g_tx, d_tx)
  batches = stacked_batches(make_dataset(cfg), 0, 1, cfg.d_steps, cfg.batch_size)
  new, _ = jax.jit(steps.train_step)(state, jax.tree.map(lambda a: a[0], batches))
  assert int(new.d_updates) == 2 and int(new.step) == 1
  # Generator forwards per iteration: 2 D steps + 1 G step without sharing; the last D step shares with.
  assert sum(generator_calls) == (2 if share else 3)


def test_adam_eps_root_flags_damp_each_players_first_step_by_their_own_root(tmp_path):
  """Adam's first update is lr * g / (sqrt(g^2 + eps_root) + 1e-8) per coordinate (m_hat = g, v_hat = g^2):
  at g = 1e-4 and eps_root = 1e-8 that is lr / sqrt(2), at eps_root = 0 lr; each player reads its own flag."""
  g = jnp.full((3,), 1e-4)
  for roots in ((1e-8, 0.0), (0.0, 1e-8)):
    cfg = toy_config(tmp_path, lr_g=0.1, lr_d=0.1, adam_eps_root_g=roots[0], adam_eps_root_d=roots[1])
    for tx, root in zip(make_optimizers(cfg), roots):
      update, _ = tx.update(g, tx.init(g), g)
      expected = -0.1 * 1e-4 / (np.sqrt(1e-8 + root) + 1e-8)
      np.testing.assert_allclose(np.asarray(update), expected, rtol=1e-5)  # float32 g^2


@pytest.mark.parametrize("flag", ["adam_eps_root_g", "adam_eps_root_d"])
def test_a_negative_adam_eps_root_is_refused(tmp_path, flag):
  with pytest.raises(ConfigError, match=rf"--{flag}=-1e-08: must lie in \[0, 1\)"):
    config_lib.validate(toy_config(tmp_path, **{flag: -1e-8}))


@pytest.mark.parametrize("schedule,d_steps", [("constant", 1), ("linear", 2)])
def test_the_warm_up_ramps_each_players_rate_then_hands_over_to_the_schedule(tmp_path, schedule, d_steps):
  """--lr_warmup=W: a player with u updates per iteration and T = train_steps x u updates in all steps at
  lr (t + 1) / (W u) for its updates t < W u, then at the schedule's rate over the T - W u updates left
  (linear: lr (1 - (t - W u) / (T - W u)))."""
  from gan_jax.state import learning_rate
  cfg = toy_config(tmp_path, lr_warmup=5, train_steps=25, lr_schedule=schedule, d_steps=d_steps, lr_g=0.3, lr_d=0.2)
  lr, warm, total = 0.1, 5 * d_steps, 25 * d_steps
  rate = learning_rate(cfg, lr, d_steps)
  for t in range(total + 2):
    after = 1.0 if schedule == "constant" else max(0.0, 1 - (t - warm) / (total - warm))
    expected = lr * (t + 1) / warm if t < warm else lr * after
    np.testing.assert_allclose(float(rate(t)), expected, rtol=1e-5, atol=1e-9, err_msg=f"update {t}")
  assert learning_rate(toy_config(tmp_path, lr_schedule=schedule), lr, 1)(0) == lr  # 0: no warm-up
  g = jnp.ones((3,))  # Adam's first update is -rate(0) g / |g|: both players start at 1/W of their rate
  for tx, rate0 in zip(make_optimizers(cfg), (0.3 / 5, 0.2 / warm)):
    np.testing.assert_allclose(np.asarray(tx.update(g, tx.init(g), g)[0]), -rate0, rtol=1e-5)


@pytest.mark.parametrize("warmup,schedule,message", [(-1, "constant", "must be >= 0"),
                                                      (10, "cosine", "must be under --train_steps=10")])
def test_a_warm_up_below_zero_or_past_a_decaying_run_is_refused(tmp_path, warmup, schedule, message):
  with pytest.raises(ConfigError, match=rf"--lr_warmup={warmup}: {message}"):
    config_lib.validate(toy_config(tmp_path, lr_warmup=warmup, lr_schedule=schedule, train_steps=10))
