"""Pure training steps: `d_step(state, batch)`, `g_step(state)`, `train_step(state, batches)`.

Each is a pure function of pytrees; randomness comes from `state.rng` folded
with the step counters, so a step is reproducible from the state alone.
Run per device under `jax.shard_map` (see `make_train_fn`): `batch` is then the
device's slice of the global batch, and gradients, metrics and batch-norm
running statistics are averaged over the `axis_name` axis with `lax.pmean`
(pmap-style SPMD). With `axis_name=None` the same functions run on one device.
"""
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import PartitionSpec as P

from gan_jax import losses, regularizers
from gan_jax.nets import GANNets
from gan_jax.nets.layers import pack_samples
from gan_jax.state import GANState

DATA_AXIS = "data"
GUARDED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")  # Must stay finite.


class StepFns(NamedTuple):
  d_step: Callable   # (state, batch) -> (state, metrics); batch leaves [B_local, ...]
  g_step: Callable   # (state, batch=None) -> (state, metrics); the batch only for feature matching
  train_step: Callable  # (state, batches) -> (state, metrics); batches leaves [k, B_local, ...]


def _apply(module, params, collections, inputs, train, rng=None, **kwargs):
  """Applies a Flax module to `inputs` (a tuple); returns (output, updated collections)."""
  variables = {"params": params, **collections}
  rngs = {"dropout": rng} if rng is not None else None
  if train and collections:
    return module.apply(variables, *inputs, train=True, rngs=rngs, mutable=list(collections), **kwargs)
  return module.apply(variables, *inputs, train=train, rngs=rngs, **kwargs), collections


def _pmean(tree, axis_name):
  return tree if axis_name is None else lax.pmean(tree, axis_name)


def _device_key(key, axis_name):
  """A key that differs across devices (dropout); equal to `key` on one device."""
  return key if axis_name is None else jax.random.fold_in(key, lax.axis_index(axis_name))


def _local_rows(draw, local_batch: int, axis_name: Optional[str]):
  """This device's rows of `draw(global_batch)`: the same global draw whatever the device count."""
  if axis_name is None:
    return draw(local_batch)
  global_rows = draw(local_batch * lax.axis_size(axis_name))
  return lax.dynamic_slice_in_dim(global_rows, lax.axis_index(axis_name) * local_batch, local_batch)


def sample_latents(key, local_batch: int, latent_dim: int, axis_name: Optional[str] = None):
  """z ~ N(0, I), [local_batch, latent_dim]: this device's rows of one global draw.

  Drawing the global batch and slicing makes the latents, and so training, the
  same whatever the number of devices.
  """
  return _local_rows(lambda n: jax.random.normal(key, (n, latent_dim)), local_batch, axis_name)


def sample_labels(key, local_batch: int, num_classes: int, axis_name: Optional[str] = None):
  """y ~ Uniform{0, ..., C-1}, int32 [local_batch] (the conditional G's labels), like `sample_latents`."""
  return _local_rows(lambda n: jax.random.randint(key, (n,), 0, num_classes), local_batch, axis_name)


def make_steps(cfg, nets: GANNets, g_tx, d_tx, axis_name: Optional[str] = None,
               num_devices: int = 1) -> StepFns:
  """Builds the pure step functions for one config."""
  loss = losses.get_loss(cfg.loss)
  local_batch = cfg.batch_size // num_devices
  G, D = nets.generator, nets.discriminator
  conditional = nets.num_classes > 0
  acgan = cfg.conditioning == "acgan"

  def fake_inputs(key_z, n):
    """(z [n, latent], labels [n] or None) for G."""
    z = sample_latents(key_z, n, nets.latent_dim, axis_name)
    labels = (sample_labels(jax.random.fold_in(key_z, 1), n, nets.num_classes, axis_name)
              if conditional else None)
    return z, labels

  def discriminate(d_params, d_collections, x, labels, key):
    """((logits [B'], features, class logits or None), collections): D on PacGAN-packed x."""
    return _apply(D, d_params, d_collections, (pack_samples(x, cfg.pack), labels), True,
                  _device_key(key, axis_name), features=True)

  def d_update(state: GANState, x_real, y_real, x_fake, y_fake, key):
    """Descends the discriminator loss (-V(D, G) for the GAN losses) in D's weights."""
    key_real, key_fake, key_gp = jax.random.split(key, 3)
    x_fake = lax.stop_gradient(x_fake)
    if not conditional:
      y_real = None

    def loss_fn(d_params):
      (real_logits, _, real_cls), cols = discriminate(d_params, state.d_collections, x_real, y_real, key_real)
      (fake_logits, _, fake_cls), cols = discriminate(d_params, cols, x_fake, y_fake, key_fake)
      d_loss = loss.d_loss(real_logits, fake_logits, cfg.label_smoothing)
      extra = {}
      if acgan:  # D maximises L_S + L_C: the class log-likelihood of reals and fakes.
        extra["class_nll"] = losses.class_nll(real_cls, y_real) + losses.class_nll(fake_cls, y_fake)
        d_loss = d_loss + cfg.acgan_weight * extra["class_nll"]
      if cfg.gp_weight or cfg.r1_weight:
        # D on its packed input, batch statistics of this step frozen (no running-stat update).
        def critic(v):
          return _apply(D, d_params, cols, (v, y_real), True, _device_key(key_real, axis_name))[0]
        if cfg.gp_weight:
          extra["gp"] = regularizers.gradient_penalty(
              critic, pack_samples(x_real, cfg.pack), pack_samples(x_fake, cfg.pack),
              _device_key(key_gp, axis_name))
          d_loss = d_loss + cfg.gp_weight * extra["gp"]
        if cfg.r1_weight:
          extra["r1"] = regularizers.r1_penalty(critic, pack_samples(x_real, cfg.pack))
          d_loss = d_loss + 0.5 * cfg.r1_weight * extra["r1"]
      if cfg.historical_averaging:
        extra["d_hist_avg"] = regularizers.historical_average_penalty(d_params, state.d_param_avg)
        d_loss = d_loss + cfg.historical_averaging * extra["d_hist_avg"]
      return d_loss, (cols, real_logits, fake_logits, extra)

    (d_loss, (cols, real_logits, fake_logits, extra)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.d_params)
    grads = _pmean(grads, axis_name)
    updates, d_opt_state = d_tx.update(grads, state.d_opt_state, state.d_params)
    metrics = _pmean({
        "d_loss": d_loss,
        "value": losses.value_function(real_logits, fake_logits),
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
        **extra,
    }, axis_name)
    metrics["d_grad_norm"] = optax.tree.norm(grads)
    d_params = optax.apply_updates(state.d_params, updates)
    if cfg.weight_clip:
      d_params = regularizers.clip_weights(d_params, cfg.weight_clip)
    d_updates = state.d_updates + 1
    new_state = state.replace(
        d_params=d_params, d_opt_state=d_opt_state,
        d_collections=_pmean(cols, axis_name), d_updates=d_updates)
    if cfg.historical_averaging:  # Mean of theta_0 .. theta_{d_updates}.
      new_state = new_state.replace(
          d_param_avg=regularizers.update_average(state.d_param_avg, d_params, d_updates + 1))
    return new_state, metrics

  def d_step(state: GANState, batch):
    """One discriminator update on `batch` ({'x', 'label'}) and fresh fakes G(z); G is unchanged."""
    key = jax.random.fold_in(jax.random.fold_in(state.rng, 0), state.d_updates)
    key_z, key_d = jax.random.split(key)
    x_real = batch["x"]
    z, y_fake = fake_inputs(key_z, x_real.shape[0])
    x_fake, _ = _apply(G, state.g_params, state.g_collections, (z, y_fake), True)
    return d_update(state, x_real, batch.get("label"), x_fake, y_fake, key_d)

  def generator_forward(state: GANState):
    """(x_fake, labels, vjp of G at its params, G's updated collections, dropout key) for this G step."""
    key = jax.random.fold_in(jax.random.fold_in(state.rng, 1), state.step)
    key_z, key_drop = jax.random.split(key)
    z, y_fake = fake_inputs(key_z, local_batch)
    x_fake, g_vjp, g_cols = jax.vjp(lambda p: _apply(G, p, state.g_collections, (z, y_fake), True),
                                    state.g_params, has_aux=True)
    return x_fake, y_fake, g_vjp, g_cols, key_drop

  def g_update(state: GANState, x_fake, y_fake, g_vjp, g_cols, key_drop, batch=None):
    """Descends the generator loss: dL/dx through D (at its current weights), then back through G.

    The loss is `cfg.loss`'s (or feature matching against `batch`'s reals), plus
    AC-GAN's class term on the fakes; historical averaging adds its own gradient.
    """
    if cfg.feature_matching:
      if batch is None:
        raise ValueError("feature matching needs the real batch: g_step(state, batch)")
      y_real = batch.get("label") if conditional else None
      (_, real_features, _), _ = discriminate(state.d_params, state.d_collections, batch["x"], y_real,
                                              jax.random.fold_in(key_drop, 1))
      real_features = lax.stop_gradient(real_features)

    def loss_fn(x):
      (fake_logits, fake_features, fake_cls), _ = discriminate(state.d_params, state.d_collections, x,
                                                               y_fake, key_drop)
      g_loss = (losses.feature_matching_loss(real_features, fake_features) if cfg.feature_matching
                else loss.g_loss(fake_logits))
      if acgan:  # G maximises L_C - L_S: its fakes should be classified as their labels.
        g_loss = g_loss + cfg.acgan_weight * losses.class_nll(fake_cls, y_fake)
      return g_loss, fake_logits

    (g_loss, fake_logits), dx = jax.value_and_grad(loss_fn, has_aux=True)(x_fake)
    grads = g_vjp(dx)[0]
    metrics = {"g_loss": g_loss, "d_fake_g": jnp.mean(jax.nn.sigmoid(fake_logits))}
    if cfg.historical_averaging:
      penalty, penalty_grads = jax.value_and_grad(regularizers.historical_average_penalty)(
          state.g_params, state.g_param_avg)
      grads = jax.tree.map(lambda g, p: g + cfg.historical_averaging * p, grads, penalty_grads)
      metrics["g_hist_avg"] = penalty
    grads = _pmean(grads, axis_name)
    updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    ema = optax.incremental_update(g_params, state.ema_g_params, 1.0 - cfg.ema_decay)
    metrics = _pmean(metrics, axis_name)
    metrics["g_grad_norm"] = optax.tree.norm(grads)
    new_state = state.replace(
        g_params=g_params, g_opt_state=g_opt_state, g_collections=_pmean(g_cols, axis_name),
        ema_g_params=ema, step=state.step + 1)
    if cfg.historical_averaging:
      new_state = new_state.replace(
          g_param_avg=regularizers.update_average(state.g_param_avg, g_params, new_state.step + 1))
    return new_state, metrics

  def g_step(state: GANState, batch=None):
    """One generator update with the configured generator loss; updates the EMA of G."""
    return g_update(state, *generator_forward(state), batch=batch)

  def train_step(state: GANState, batches):
    """k = cfg.d_steps discriminator steps on batches[0..k-1], then one generator step.

    With cfg.share_fakes the last D step judges the very fakes the G step then
    improves (one G forward per iteration, as in the reference DCGAN loop);
    otherwise each step draws its own latents. Feature matching compares with
    the reals of the last D step.
    """
    d_metrics = {}
    last = cfg.d_steps - 1 if cfg.share_fakes else cfg.d_steps
    batch_at = lambda i: jax.tree.map(lambda a: a[i], batches)  # noqa: E731
    for i in range(last):
      state, d_metrics = d_step(state, batch_at(i))
    real = batch_at(cfg.d_steps - 1) if cfg.feature_matching else None
    if not cfg.share_fakes:
      state, g_metrics = g_step(state, real)
      return state, {**d_metrics, **g_metrics}
    x_fake, y_fake, g_vjp, g_cols, key_drop = generator_forward(state)
    key_d = jax.random.fold_in(jax.random.fold_in(state.rng, 0), state.d_updates)
    shared = batch_at(last)
    state, d_metrics = d_update(state, shared["x"], shared.get("label"), x_fake, y_fake, key_d)
    state, g_metrics = g_update(state, x_fake, y_fake, g_vjp, g_cols, key_drop, batch=real)
    return state, {**d_metrics, **g_metrics}

  return StepFns(d_step, g_step, train_step)


def make_train_fn(cfg, nets: GANNets, g_tx, d_tx, mesh, steps_per_call: int):
  """A jitted, data-parallel `(state, batches) -> (state, metrics)` over `mesh`'s 'data' axis.

  batches leaves: [steps_per_call, k, B_global, ...], sharded on the batch axis.
  The state is replicated (P()) and donated. With steps_per_call > 1 the steps
  run in a `lax.scan` (one dispatch for many small steps; not for conv nets on
  XLA:CPU, see BUILD.md). Metrics are those of the last step, or of the first
  step with a non-finite loss or gradient; `step_in_call` (1-based) says which.
  """
  steps = make_steps(cfg, nets, g_tx, d_tx, DATA_AXIS, mesh.size)

  def run(state, batches):
    if steps_per_call == 1:
      state, metrics = steps.train_step(state, jax.tree.map(lambda a: a[0], batches))
      return state, {**metrics, "step_in_call": jnp.ones((), jnp.int32)}
    state, metrics = lax.scan(steps.train_step, state, batches)
    # Report the last step, or the first whose losses or gradients are not finite.
    bad = ~jnp.all(jnp.stack([jnp.isfinite(metrics[k]) for k in GUARDED if k in metrics]), axis=0)
    index = jnp.where(jnp.any(bad), jnp.argmax(bad), steps_per_call - 1)
    return state, {**jax.tree.map(lambda m: m[index], metrics), "step_in_call": index + 1}

  sharded = jax.shard_map(run, mesh=mesh, in_specs=(P(), P(None, None, DATA_AXIS)),
                          out_specs=(P(), P()), check_vma=False)
  return jax.jit(sharded, donate_argnums=0)


def cycled_labels(n: int, num_classes: int):
  """Classes 0, 1, ..., C-1, 0, 1, ... for n samples [n]: a conditional G's default labels.

  Draw the labels of a whole sample set at once (then slice), so that chunked
  generation still covers the classes evenly.
  """
  return jnp.arange(n, dtype=jnp.int32) % num_classes


def make_generate_fn(nets: GANNets):
  """jitted (params, collections, z [N, latent], labels [N] = None) -> x [N, *data_shape].

  G in inference mode. A conditional G without labels draws the classes in turn
  (`cycled_labels`: label i % C for row i of this call).
  """

  def generate(params, collections, z, labels=None):
    if nets.num_classes and labels is None:
      labels = cycled_labels(z.shape[0], nets.num_classes)
    return _apply(nets.generator, params, collections, (z, labels), False)[0]

  return jax.jit(generate)
