"""Independent re-computations of what one training step sees, for tests that check a step's numbers.

A step's randomness is documented: it comes from `state.rng` folded with the step counters
(`steps.step_keys`). These helpers rebuild that step's fakes and apply D directly, so a test can
compute a loss term by hand and compare it with the metric the jitted step reports.
"""
import jax
import optax

from gan_jax.state import init_state
from gan_jax.steps import make_steps, sample_labels, sample_latents, step_keys


def sgd_setup(cfg, nets):
  """(state, steps) with SGD(1.0) for both players: a step moves the weights by exactly -grad."""
  tx = optax.sgd(1.0)
  return init_state(cfg, nets, tx, tx), make_steps(cfg, nets, tx, tx)


def apply_train(module, params, collections, *inputs, **kwargs):
  """module in train mode; collections are read, their updates dropped."""
  variables = {"params": params, **collections}
  if collections:
    return module.apply(variables, *inputs, train=True, mutable=list(collections), **kwargs)[0]
  return module.apply(variables, *inputs, train=True, **kwargs)


def fakes(nets, state, n, player):
  """(x_fake [n, ...], labels [n] or None) that the next d_step ('d') or g_step ('g') draws."""
  keys = step_keys(state)
  key_z = keys.d_latents if player == "d" else keys.g_latents
  z = sample_latents(key_z, n, nets.latent_dim)
  labels = sample_labels(jax.random.fold_in(key_z, 1), n, nets.num_classes) if nets.num_classes else None
  return apply_train(nets.generator, state.g_params, state.g_collections, z, labels), labels


def discriminate(nets, state, x, labels):
  """(logits, features, class logits) of D in train mode on samples x (D packs them itself)."""
  return apply_train(nets.discriminator, state.d_params, state.d_collections, x, labels, features=True)
