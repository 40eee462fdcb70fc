"""Unrolled GANs (Metz et al. 2017; NIPS 2016 tutorial, sec. 5.1.1): G judged by D after K simulated updates.

  theta_D^0 = theta_D,   theta_D^{k+1} = theta_D^k + U(dL_D/d theta_D (theta_D^k, x, G(z)), opt state^k),
  L_G^unrolled(theta_G) = L_G(theta_G, theta_D^K(theta_G, theta_D)),

U being D's own optimiser (`ctx.d_tx`, its state carried through the K updates). G's gradient
differentiates through the K updates (theta_D^K depends on theta_G through the fakes each simulated update
judges), unless `stop_gradient` is set (the paper's first-order variant: G judged by theta_D^K, its
dependence on theta_G dropped). The K updates use the G update's own fakes and the iteration's last real
batch, each update with its own dropout keys, as Metz's code reuses one minibatch. The simulated D (its
weights, optimiser state, batch statistics) never leaves this function: D's real update is unchanged.
Combines with packing, spectral norm (its power-iteration vectors are carried), batch-norm statistics,
label smoothing, AC-GAN, weight clipping, bfloat16 and data-parallel devices (the simulated gradients are
averaged like the real ones); validation refuses the gradient penalties, R1, feature matching and
historical averaging with it.
"""
import functools

import jax
import optax
from jax import lax

from gan_jax import objectives, regularizers


def simulated_discriminator(ctx, state, fake, real, key, pmean):
  """(theta_D^K, D's collections after the K updates): ctx.unroll_steps updates of D from `state`.

  fake: (x [B, ...], labels or None), differentiable: theta_D^K is a function of x. real: (x, labels).
  pmean: the device average of a gradient tree (identity on one device).
  """
  loss_fn = functools.partial(objectives.discriminator_objective, objectives.at_iteration(ctx.objective, state.step),
                              ctx.nets.discriminator)
  d_params, opt_state, cols = state.d_params, state.d_opt_state, state.d_collections
  for k in range(ctx.unroll_steps):
    keys = tuple(jax.random.split(jax.random.fold_in(key, k), 3))
    grads, (cols, *_) = jax.grad(loss_fn, has_aux=True)(d_params, cols, state.d_param_avg, real, fake, keys)
    updates, opt_state = ctx.d_tx.update(pmean(grads), opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    if ctx.weight_clip:
      d_params = regularizers.clip_weights(d_params, ctx.weight_clip)
  cols = pmean(cols)
  if ctx.unroll_stop_gradient:
    d_params, cols = lax.stop_gradient((d_params, cols))
  return d_params, cols
