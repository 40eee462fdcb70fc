"""Unrolled GANs (Metz et al. 2017): the K = 1 gradient of a tiny game by hand, D untouched, flags refused."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import losses, objectives, steps
from gan_jax.errors import ConfigError
from gan_jax.nets import GANNets, build_nets
from gan_jax.nets.layers import PackedDiscriminator
from gan_jax.state import create_state, init_state, make_optimizers
from gan_jax.steps import StepContext, g_gradients, generator_forward, make_steps
from gan_jax.validation import validate
from tests.conftest import toy_config


class ConstantG(nn.Module):
  """G(z) = theta for every z: [B, 1]."""

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    theta = self.param("theta", nn.initializers.zeros, (1,))
    return jnp.broadcast_to(theta, (z.shape[0], 1))


class LinearD(nn.Module):
  """l(x) = w x: logits [B] (features: the inputs)."""

  @nn.compact
  def __call__(self, x, labels=None, train=True, features=False):
    w = self.param("w", nn.initializers.zeros, (1,))
    logits = w * x[:, 0]
    return (logits, x, None) if features else logits


def sig(v):
  return 1.0 / (1.0 + np.exp(-v))


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_one_unrolled_sgd_step_gives_the_hand_derived_generator_gradient(stop_gradient):
  """D's logit w x, G(z) = theta, reals all a, non-saturating losses, one simulated SGD step of size eta:
    dL_D/dw = -a sigma(-w a) + theta sigma(w theta),   w1 = w - eta dL_D/dw,
    L_G = -log sigma(w1 theta),   dL_G/dtheta = -sigma(-w1 theta) (w1 + theta dw1/dtheta),
    dw1/dtheta = -eta [sigma(w theta) + w theta sigma(w theta) sigma(-w theta)]  (0 with the stop-gradient)."""
  a, theta, w, eta, batch = 1.5, 0.4, 0.7, 0.3, 4
  nets = GANNets(ConstantG(), PackedDiscriminator(LinearD()), latent_dim=1, data_shape=(1,))
  ctx = StepContext(nets=nets, g_tx=optax.sgd(1.0), d_tx=optax.sgd(eta),
                    objective=objectives.Objective(losses.get_loss("nonsaturating")), local_batch=batch,
                    unroll_steps=1, unroll_stop_gradient=stop_gradient)
  state = create_state(jax.random.key(0), nets, ctx.g_tx, ctx.d_tx)
  state = state.replace(g_params={"theta": jnp.array([theta])}, d_params={"w": jnp.array([w])})
  reals = {"x": jnp.full((batch, 1), a), "label": jnp.zeros((batch,), jnp.int32)}
  grads, _ = g_gradients(ctx, state, generator_forward(ctx, state), reals)
  w1 = w - eta * (-a * sig(-w * a) + theta * sig(w * theta))
  dw1 = 0.0 if stop_gradient else -eta * (sig(w * theta) + w * theta * sig(w * theta) * sig(-w * theta))
  expected = -sig(-w1 * theta) * (w1 + theta * dw1)
  np.testing.assert_allclose(grads["theta"], [expected], rtol=1e-5)


def _ring_setup(tmp_path, **overrides):
  cfg = validate(toy_config(tmp_path, batch_size=16, **overrides), workdir=False)
  nets = build_nets(cfg, (2,))
  g_tx, d_tx = make_optimizers(cfg)
  return cfg, init_state(cfg, nets, g_tx, d_tx), make_steps(cfg, nets, g_tx, d_tx)


def test_the_unrolled_copy_leaves_d_untouched_and_changes_g(tmp_path):
  batches = {"x": jax.random.normal(jax.random.key(1), (1, 16, 2)), "label": jnp.zeros((1, 16), jnp.int32)}
  _, state, plain = _ring_setup(tmp_path, unroll_steps=0)
  _, state5, unrolled = _ring_setup(tmp_path, unroll_steps=5)
  after, _ = jax.jit(plain.train_step)(state, batches)
  after5, metrics = jax.jit(unrolled.train_step)(state5, batches)
  for name in ("d_params", "d_opt_state", "d_collections", "d_updates"):  # D's real update is unchanged
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9), getattr(after, name),
                 getattr(after5, name))
  assert int(after5.d_updates) == 1
  moved = [float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(after.g_params),
                                                         jax.tree.leaves(after5.g_params))]
  assert max(moved) > 1e-6 and np.isfinite(metrics["g_loss"])


def test_k0_is_the_plain_step_the_unrolled_code_is_never_traced(tmp_path, monkeypatch):
  """K = 0 gives bitwise the step without unrolling: its G loss is built against D's current weights and
  the simulation (unrolled.simulated_discriminator) is never traced; K = 1 traces it (the guard works)."""
  def simulated(*args, **kwargs):
    raise AssertionError("the unrolled simulation was traced")
  monkeypatch.setattr(steps.unrolled, "simulated_discriminator", simulated)
  batches = {"x": jax.random.normal(jax.random.key(1), (1, 16, 2)), "label": jnp.zeros((1, 16), jnp.int32)}
  _, state, plain = _ring_setup(tmp_path, unroll_steps=0)
  after, metrics = jax.jit(plain.train_step)(state, batches)
  assert np.isfinite(metrics["g_loss"]) and int(after.step) == 1
  _, state1, unrolled1 = _ring_setup(tmp_path, unroll_steps=1)
  with pytest.raises(AssertionError, match="unrolled simulation was traced"):
    jax.jit(unrolled1.train_step)(state1, batches)


@pytest.mark.parametrize("flag,value", [("gp_weight", 10.0), ("r1_weight", 1.0), ("feature_matching", True),
                                        ("historical_averaging", 0.01), ("lecam_weight", 0.3)])
def test_unrolling_refuses_what_it_cannot_simulate(tmp_path, flag, value):
  with pytest.raises(ConfigError, match=f"unroll_steps.*--{flag}"):
    validate(toy_config(tmp_path, unroll_steps=3, **{flag: value}), workdir=False)
