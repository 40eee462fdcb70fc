"""Pure d_step / g_step: what each changes, finiteness, determinism, one compile."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax.data import make_dataset, stacked_batches
from gan_jax.nets import build_nets
from gan_jax.state import create_state, make_optimizers
from gan_jax.steps import make_steps
from tests.conftest import toy_config


def tree_equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


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
  state = create_state(cfg, nets, g_tx, d_tx)
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


def test_steps_are_pure_and_deterministic(setup):
  _, state, steps, batch = setup
  a, ma = jax.jit(steps.d_step)(state, batch)
  b, mb = jax.jit(steps.d_step)(state, batch)
  assert tree_equal(a, b) and tree_equal(ma, mb)
  # The same weights at a later counter draw other latents: the key folds in the counter.
  _, mc = jax.jit(steps.d_step)(state.replace(d_updates=state.d_updates + 1), batch)
  assert float(mc["d_fake"]) != float(ma["d_fake"])


def test_train_step_runs_k_discriminator_steps(tmp_path):
  cfg = toy_config(tmp_path, d_steps=3, batch_size=16)
  nets = build_nets(cfg, (2,))
  g_tx, d_tx = make_optimizers(cfg)
  state = create_state(cfg, nets, g_tx, d_tx)
  steps = make_steps(cfg, nets, g_tx, d_tx)
  batches = stacked_batches(make_dataset(cfg), 0, 1, cfg.d_steps, cfg.batch_size)
  new, _ = jax.jit(steps.train_step)(state, jax.tree.map(lambda a: a[0], batches))
  assert int(new.d_updates) == 3 and int(new.step) == 1


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


def test_g_step_gradient_equals_direct_differentiation(tmp_path):
  """The vjp-based G update equals jax.grad of g_loss(D(G(z))) with respect to G's weights."""
  from gan_jax import losses
  from gan_jax.steps import sample_latents
  cfg = toy_config(tmp_path, batch_size=16, pack=2)
  nets = build_nets(cfg, (2,))
  g_tx, d_tx = make_optimizers(cfg)
  state = create_state(cfg, nets, g_tx, d_tx)
  new, _ = jax.jit(make_steps(cfg, nets, g_tx, d_tx).g_step)(state)
  key_z, _ = jax.random.split(jax.random.fold_in(jax.random.fold_in(state.rng, 1), state.step))
  z = sample_latents(key_z, 16, nets.latent_dim)

  def loss(p):
    x = nets.generator.apply({"params": p}, z).reshape(8, 4)  # packed pairs
    return losses.nonsaturating_generator_loss(nets.discriminator.apply({"params": state.d_params}, x))

  updates, _ = g_tx.update(jax.grad(loss)(state.g_params), state.g_opt_state, state.g_params)
  expected = optax.apply_updates(state.g_params, updates)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), new.g_params, expected)


@pytest.mark.parametrize("share", [False, True])
def test_share_fakes_counts_and_reuses_the_generator_forward(tmp_path, share, monkeypatch):
  from gan_jax import steps as steps_lib
  cfg = toy_config(tmp_path, d_steps=2, batch_size=16, share_fakes=share)
  nets = build_nets(cfg, (2,))
  g_tx, d_tx = make_optimizers(cfg)
  state = create_state(cfg, nets, g_tx, d_tx)
  generator_calls = []
  apply = steps_lib._apply

  def counting_apply(module, *args, **kwargs):
    generator_calls.append(module is nets.generator)
    return apply(module, *args, **kwargs)

  monkeypatch.setattr(steps_lib, "_apply", counting_apply)
  steps = make_steps(cfg, nets, g_tx, d_tx)
  batches = stacked_batches(make_dataset(cfg), 0, 1, cfg.d_steps, cfg.batch_size)
  new, _ = jax.jit(steps.train_step)(state, jax.tree.map(lambda a: a[0], batches))
  assert int(new.d_updates) == 2 and int(new.step) == 1
  # Generator forwards per iteration: 2 D steps + 1 G step without sharing; the last D step shares with.
  assert sum(generator_calls) == (2 if share else 3)
