"""Penalties on the discriminator's input gradient.

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
