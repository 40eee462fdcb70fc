"""GAN objectives as pure functions of discriminator logits.

D(x) = sigmoid(l(x)). Every log-probability goes through `jax.nn.log_sigmoid`,
so logits of +-100 give finite values and finite gradients:
  log D(x)     = log_sigmoid(l),
  log(1 - D(x)) = log_sigmoid(-l).

Shapes: `real_logits` is [B] or [B, 1] for data x ~ p_data, `fake_logits` the
same for G(z), z ~ p_z. Every loss returns a scalar (a mean over the batch).
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


def value_function(real_logits, fake_logits):
  """V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1)."""
  return (jnp.mean(jax.nn.log_sigmoid(real_logits))
          + jnp.mean(jax.nn.log_sigmoid(-fake_logits)))


def discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
  """-V(D, G): the cross-entropy D minimises, with one-sided label smoothing.

  Real targets are 1 - label_smoothing, fake targets stay 0 (Salimans et al.
  2016; NIPS 2016 tutorial, sec. 4.2): smoothing the fake side would move D*.
  """
  target = 1.0 - label_smoothing
  real = target * jax.nn.log_sigmoid(real_logits) + (1.0 - target) * jax.nn.log_sigmoid(-real_logits)
  return -(jnp.mean(real) + jnp.mean(jax.nn.log_sigmoid(-fake_logits)))


def minimax_generator_loss(fake_logits):
  """E_z[log(1 - D(G(z)))]: the saturating loss of the original minimax game.

  Its gradient vanishes as D(G(z)) -> 0, i.e. early in training.
  """
  return jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def nonsaturating_generator_loss(fake_logits):
  """-E_z[log D(G(z))]: same fixed point as the minimax loss, strong gradients early."""
  return -jnp.mean(jax.nn.log_sigmoid(fake_logits))


ML_LOGIT_CLAMP = 80.0  # exp(80) = 5.5e34: float32 and bfloat16 both reach 3.4e38


def maximum_likelihood_generator_loss(fake_logits):
  """J(G) = -1/2 E_z exp(sigma^-1(D(G(z)))) = -1/2 E_z exp(l(G(z))) (Goodfellow 2014, "On distinguishability
  criteria"; NIPS 2016 tutorial, sec. 3.2.4, eq. 10 and Figure 16).

  With D at its optimum, exp(l*(x)) = p_data(x) / p_g(x), and the expected gradient of J(G) with D held fixed
  is 1/2 the gradient of KL(p_data || p_g): the maximum-likelihood direction. Computed in float32 with the
  logit clamped at ML_LOGIT_CLAMP = 80 (exact below it; above it the value is -1/2 exp(80) and the
  gradient 0), so logits of +-100 give finite values and gradients in float32 and bfloat16.
  """
  logits = jnp.minimum(jnp.asarray(fake_logits, jnp.float32), ML_LOGIT_CLAMP)
  return -0.5 * jnp.mean(jnp.exp(logits))


def wasserstein_critic_loss(real_logits, fake_logits, label_smoothing=0.0):
  """E[f(G(z))] - E[f(x)] (Arjovsky et al. 2017): minus the Kantorovich-Rubinstein estimate of W1.

  `label_smoothing` has no meaning for a critic and is ignored.
  """
  del label_smoothing
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_generator_loss(fake_logits):
  """-E[f(G(z))]."""
  return -jnp.mean(fake_logits)


def hinge_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
  """E[max(0, 1 - f(x))] + E[max(0, 1 + f(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
  del label_smoothing
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def least_squares_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
  """1/2 E[(f(x) - b)^2] + 1/2 E[f(G(z))^2], b = 1 - label_smoothing (Mao et al. 2017, eq. 2, a=0, b=c=1)."""
  target = 1.0 - label_smoothing
  return 0.5 * jnp.mean((real_logits - target) ** 2) + 0.5 * jnp.mean(fake_logits ** 2)


def least_squares_generator_loss(fake_logits):
  """1/2 E[(f(G(z)) - 1)^2]."""
  return 0.5 * jnp.mean((fake_logits - 1.0) ** 2)


class GANLoss(NamedTuple):
  """A named pair: d_loss(real_logits, fake_logits, label_smoothing) and g_loss(fake_logits)."""
  d_loss: Callable
  g_loss: Callable


LOSSES = {
    "nonsaturating": GANLoss(discriminator_loss, nonsaturating_generator_loss),
    "minimax": GANLoss(discriminator_loss, minimax_generator_loss),
    "maximum_likelihood": GANLoss(discriminator_loss, maximum_likelihood_generator_loss),
    "wgan": GANLoss(wasserstein_critic_loss, wasserstein_generator_loss),
    "hinge": GANLoss(hinge_discriminator_loss, wasserstein_generator_loss),
    "lsgan": GANLoss(least_squares_discriminator_loss, least_squares_generator_loss),
}


def feature_matching_loss(real_features, fake_features, axis_name=None):
  """Feature matching (Salimans et al. 2016, sec. 3.1): ||E_x f(x) - E_z f(G(z))||_2^2.

  f: D's last hidden layer, [B, ...] (flattened per example); expectations are batch means. Under data
  parallelism (`axis_name`, rows [B_local] per device) the means are the global batch's, and the value
  is that of the global batch; what is differentiated is a per-device surrogate whose gradient,
  averaged over the devices as every gradient is, is the global loss's: with delta = mu_real - mu_fake
  held fixed, -2 delta . mean_local f(G(z)) (d/df_i = -2 delta / B_local; the device mean gives -2 delta / B).
  """
  real = real_features.reshape(real_features.shape[0], -1)
  fake = fake_features.reshape(fake_features.shape[0], -1)
  if axis_name is None:
    return jnp.sum(jnp.square(jnp.mean(real, axis=0) - jnp.mean(fake, axis=0)))
  local = jnp.mean(fake, axis=0)
  delta = jax.lax.stop_gradient(jax.lax.pmean(jnp.mean(real, axis=0) - local, axis_name))
  return jnp.sum(jnp.square(delta)) - 2.0 * jnp.sum(delta * (local - jax.lax.stop_gradient(local)))


def class_nll(class_logits, labels):
  """AC-GAN's class term (Odena et al. 2017, eq. 3): -E[log P(C = c | X)], [B, C], [B] -> scalar."""
  log_p = jax.nn.log_softmax(class_logits)
  return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))


def get_loss(name: str) -> GANLoss:
  """Looks a loss pair up in `LOSSES`; a KeyError lists the valid names."""
  try:
    return LOSSES[name]
  except KeyError:
    raise KeyError(f"unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}") from None
