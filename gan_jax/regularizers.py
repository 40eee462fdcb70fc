"""Regularizers: penalties on D's input gradient, LeCam, historical averaging, weight clipping.

`critic(x) -> logits [B]` is D as a function of its (packed) input x [B, ...].
Per-example input gradients come from the gradient of sum_i critic(x)_i, exact when D treats
examples independently (no batch norm in D, as Gulrajani et al. require for WGAN-GP).
"""
import jax
import jax.numpy as jnp


def _input_gradient_norms(critic, x):
  grads = jax.grad(lambda v: jnp.sum(critic(v)))(x)
  return jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1) + 1e-12)


def gradient_penalty(critic, x_real, x_fake, key):
  """WGAN-GP (Gulrajani et al. 2017, eq. 3): E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = e x + (1-e) G(z), e ~ U[0, 1]."""
  eps = jax.random.uniform(key, (x_real.shape[0],) + (1,) * (x_real.ndim - 1))
  x_hat = eps * x_real + (1.0 - eps) * x_fake
  return jnp.mean((_input_gradient_norms(critic, x_hat) - 1.0) ** 2)


def r1_penalty(critic, x_real):
  """R1 (Mescheder et al. 2018, eq. 9 without gamma/2): E[||grad_x D(x)||^2] on real data."""
  return jnp.mean(_input_gradient_norms(critic, x_real) ** 2)


def lecam_penalty(real_logits, fake_logits, anchors):
  """LeCam regularisation (Tseng et al. 2021, eq. 3, as their code's `lecam_reg`): with anchors (alpha_R, alpha_F),
  the moving averages of D's mean real and fake logits, E[relu(D(x) - alpha_F)^2] + E[relu(alpha_R - D(G(z)))^2]:
  D's logits are pulled towards the other player's anchor."""
  return (jnp.mean(jnp.square(jax.nn.relu(real_logits - anchors[1])))
          + jnp.mean(jnp.square(jax.nn.relu(anchors[0] - fake_logits))))


def lecam_anchors(ema, count, means, decay: float):
  """(raw EMA, anchors) after the count-th update (1-based): ema <- decay ema + (1 - decay) means, means = [mean
  real logit, mean fake logit] of this update's batch; anchors = ema / (1 - decay^count), the zero-debiased EMA
  (the StyleGAN2 code of Tseng et al.: decay 0.99, zero_debias=True), so the first update's are its own means."""
  ema = decay * ema + (1.0 - decay) * means
  return ema, ema / (1.0 - jnp.power(jnp.float32(decay), count.astype(jnp.float32)))


def historical_average_penalty(params, average):
  """Historical averaging (Salimans et al. 2016, sec. 3.3): ||theta - (1/t) sum_i theta[i]||^2.

  `average` holds the mean of the player's past parameter values (`update_average`);
  the caller multiplies by the weight and adds it to the player's cost.
  """
  return sum(jnp.sum(jnp.square(p - a)) for p, a in zip(jax.tree.leaves(params), jax.tree.leaves(average)))


def update_average(average, params, count):
  """Running mean: the mean of `count` values, given that of the first count - 1 and the newest."""
  return jax.tree.map(lambda a, p: a + (p - a) / count.astype(p.dtype), average, params)


def clip_weights(params, clip: float):
  """WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1): every weight into [-c, c]."""
  return jax.tree.map(lambda p: jnp.clip(p, -clip, clip), params)
