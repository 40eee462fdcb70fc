"""Pure training steps: `d_step(ctx, state, batch)`, `g_step(ctx, state, batch)`, `train_step(ctx, state, batches)`.

Each is a pure function of pytrees and a frozen `StepContext` (networks, optimisers, objective);
randomness comes from `state.rng` folded with the step counters (`step_keys`), so a step is
reproducible from the state alone. What each player minimises is in `objectives.py`.
Run per device under `jax.shard_map` (`train_fn.make_train_fn`): `batch` is then the device's slice of
the global batch, and gradients, metrics and batch-norm running statistics are averaged over the
`axis_name` axis with `lax.pmean` (pmap-style SPMD). With `axis_name=None` they run on one device.
"""
import dataclasses
import functools
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax import lax

from gan_jax import augment, losses, objectives, regularizers, unrolled
from gan_jax.nets import GANNets, apply_module, draw_latents
from gan_jax.state import GANState

class StepKeys(NamedTuple):
  """The keys of the next D update and of the next G update, from `state.rng` and the counters."""
  d_latents: jax.Array  # z (and labels) of the fakes the next d_step draws
  d_update: jax.Array   # D's dropout and the gradient penalty's interpolation weights
  g_latents: jax.Array  # z (and labels) of the next g_step's fakes
  g_dropout: jax.Array  # D's dropout in the G update


def step_keys(state, g_update: int = 0) -> StepKeys:
  """Keys of the next steps: fold_in(fold_in(rng, player), counter), player 0 = D (its counter
  `d_updates`), 1 = G (`step`), each split in two; the G keys of the (g_update + 1)-th G update of
  an iteration (--g_steps) are folded with g_update once more (the first's are not). The only place
  step keys are derived."""
  d = jax.random.split(jax.random.fold_in(jax.random.fold_in(state.rng, 0), state.d_updates))
  g_key = jax.random.fold_in(jax.random.fold_in(state.rng, 1), state.step)
  g = jax.random.split(jax.random.fold_in(g_key, g_update) if g_update else g_key)
  return StepKeys(d[0], d[1], g[0], g[1])


@dataclasses.dataclass(frozen=True)
class StepContext:
  """Everything a step needs besides the state: fixed for a run, static under jit."""
  nets: GANNets
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  objective: objectives.Objective
  local_batch: int               # this device's rows of the global batch
  d_steps: int = 1               # k D updates per iteration
  g_steps: int = 1               # G updates per iteration (after the D updates)
  share_fakes: bool = False      # the last D update and the G update judge the same G(z)
  unroll_steps: int = 0          # K: G judged by D after K simulated updates (unrolled.py)
  unroll_stop_gradient: bool = False
  ema_decay: float = 0.0
  d_ema_decay: float = 0.0       # D's EMA (kept when state.ema_d_params is not None)
  weight_clip: float = 0.0
  shift_reals: int = 0           # data augmentation: reals shifted by up to this many pixels (0: off)
  shift_ramp: int = 0            # iterations over which the share of shifted reals rises from 0 to 1 (0: all from the start)
  axis_name: Optional[str] = None  # the device axis under shard_map; None on one device


def make_context(cfg, nets: GANNets, g_tx, d_tx, axis_name: Optional[str] = None,
                 num_devices: int = 1) -> StepContext:
  return StepContext(nets=nets, g_tx=g_tx, d_tx=d_tx, objective=objectives.objective_from_config(cfg),
                     local_batch=cfg.batch_size // num_devices, d_steps=cfg.d_steps, g_steps=cfg.g_steps,
                     share_fakes=cfg.share_fakes, unroll_steps=cfg.unroll_steps,
                     unroll_stop_gradient=cfg.unroll_stop_gradient, ema_decay=cfg.ema_decay, weight_clip=cfg.weight_clip,
                     d_ema_decay=cfg.d_ema_decay, shift_reals=cfg.shift_reals, shift_ramp=cfg.shift_ramp,
                     axis_name=axis_name)


def _pmean(tree, axis_name):
  return tree if axis_name is None else lax.pmean(tree, axis_name)


def _device_key(key, axis_name):
  """A key that differs across devices (dropout); equal to `key` on one device."""
  return key if axis_name is None else jax.random.fold_in(key, lax.axis_index(axis_name))


def _d_pass_keys(key, axis_name):
  """D's update key split into its three passes' keys, and each pass's key made per-device (`_device_key`)."""
  pass_keys = jax.random.split(key, 3)
  return pass_keys, tuple(_device_key(k, axis_name) for k in pass_keys)


def _local_rows(draw, local_batch: int, axis_name: Optional[str]):
  """This device's rows of `draw(global_batch)`: the same global draw whatever the device count."""
  if axis_name is None:
    return draw(local_batch)
  global_rows = draw(local_batch * lax.axis_size(axis_name))
  return lax.dynamic_slice_in_dim(global_rows, lax.axis_index(axis_name) * local_batch, local_batch)


def sample_latents(key, local_batch: int, latent_dim: int, axis_name: Optional[str] = None,
                   distribution: str = "normal"):
  """z ~ N(0, I) (or U[-1, 1]^d), [local_batch, latent_dim]: this device's rows of one global draw.

  Drawing the global batch and slicing makes the latents, and so training, the
  same whatever the number of devices.
  """
  return _local_rows(lambda n: draw_latents(distribution, key, (n, latent_dim)), local_batch, axis_name)


def sample_shifts(key, local_batch: int, max_shift: int, axis_name: Optional[str] = None):
  """(dh, dw) ~ U{-max_shift, ..., max_shift}^2, int32 [local_batch, 2] (--shift_reals / --shift_fakes), like
  `sample_latents`: this device's rows of one global draw."""
  return _local_rows(lambda n: jax.random.randint(key, (n, 2), -max_shift, max_shift + 1), local_batch, axis_name)


def sample_labels(key, local_batch: int, num_classes: int, axis_name: Optional[str] = None):
  """y ~ Uniform{0, ..., C-1}, int32 [local_batch] (the conditional G's labels), like `sample_latents`."""
  return _local_rows(lambda n: jax.random.randint(key, (n,), 0, num_classes), local_batch, axis_name)


def fake_inputs(ctx: StepContext, key, n: int):
  """(z [n, latent], labels [n] or None): G's inputs for one step on this device's n rows."""
  nets = ctx.nets
  z = sample_latents(key, n, nets.latent_dim, ctx.axis_name, nets.latent_distribution)
  labels = (sample_labels(jax.random.fold_in(key, 1), n, nets.num_classes, ctx.axis_name)
            if nets.num_classes else None)
  return z, labels


def labeled_batch(batch):
  """The semi-supervised labelled rows of a batch (x, labels), or None (`gan_jax/data/labeled.py`)."""
  return (batch["x_labeled"], batch["label_labeled"]) if "x_labeled" in batch else None


SHIFT_FAKES_SALT = 0x5F8


def fake_shifts(ctx: StepContext, key, local_batch: int):
  """int [local_batch, 2] ~ U{-N..N}^2, N = --shift_reals, the shifts of this device's fakes under
  --shift_fakes (rows of one global draw from `key`, as the latents), or None."""
  n = ctx.objective.shift_fakes
  return sample_shifts(jax.random.fold_in(key, SHIFT_FAKES_SALT), local_batch, n, ctx.axis_name) if n else None


def d_update(ctx: StepContext, state: GANState, real, fake, key, labeled=None):
  """Descends L_D in D's weights; real, fake: (x, labels); labeled: the semi-supervised labelled rows
  (x, labels) or None; G is unchanged."""
  pass_keys, keys = _d_pass_keys(key, ctx.axis_name)
  labels = real[1] if ctx.nets.num_classes else None
  loss_fn = functools.partial(objectives.discriminator_objective, objectives.at_update(ctx.objective, state),
                              ctx.nets.discriminator, axis_name=ctx.axis_name)
  (d_loss, (cols, real_logits, fake_logits, terms, lecam_ema)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.d_params, state.d_collections, state.d_param_avg, (real[0], labels), fake, keys, labeled,
      fake_shifts(ctx, pass_keys[1], fake[0].shape[0]))
  grads = _pmean(grads, ctx.axis_name)
  metrics = _pmean({
      "d_loss": d_loss,
      "batch_value": losses.value_function(real_logits, fake_logits),  # V(D, G) on this step's batch
      "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
      "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
      **terms,
  }, ctx.axis_name)
  metrics["d_grad_norm"] = optax.tree.norm(grads)
  return _descend_d(ctx, state, grads, cols).replace(lecam_ema=lecam_ema), metrics


def _descend_d(ctx: StepContext, state: GANState, grads, cols) -> GANState:
  """D's weights after one optimiser step on `grads` (device-averaged), clipped under --weight_clip, with D's
  collections `cols`, its update counted, and its EMA and historical average moved."""
  updates, d_opt_state = ctx.d_tx.update(grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, updates)
  if ctx.weight_clip:
    d_params = regularizers.clip_weights(d_params, ctx.weight_clip)
  d_updates = state.d_updates + 1
  new_state = state.replace(d_params=d_params, d_opt_state=d_opt_state,
                            d_collections=_pmean(cols, ctx.axis_name), d_updates=d_updates)
  if state.ema_d_params is not None:  # theta_ema <- d theta_ema + (1 - d) theta
    new_state = new_state.replace(
        ema_d_params=optax.incremental_update(d_params, state.ema_d_params, 1.0 - ctx.d_ema_decay))
  if ctx.objective.historical_averaging:  # Mean of theta_0 .. theta_{d_updates}.
    new_state = new_state.replace(
        d_param_avg=regularizers.update_average(state.d_param_avg, d_params, d_updates + 1))
  return new_state


def classifier_update(ctx: StepContext, state: GANState, labeled, key):
  """One D update of the plain classifier (`objectives.classifier_only`): descends the labelled rows'
  cross-entropy alone, the gradient `d_update` takes there (L_D's other terms weigh 0), with the labelled
  pass's key `d_update` gives it from `key`, but without drawing fakes or judging the unlabelled reals."""
  key = _d_pass_keys(key, ctx.axis_name)[1][0]
  obj = objectives.at_iteration(ctx.objective, state.step)

  def loss_fn(params):
    terms, cols = objectives.labeled_terms(obj, ctx.nets.discriminator, params, state.d_collections, labeled, key)
    return terms["labeled_nll"], (cols, terms)
  (d_loss, (cols, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
  grads = _pmean(grads, ctx.axis_name)
  metrics = _pmean({"d_loss": d_loss, **terms}, ctx.axis_name)
  metrics["d_grad_norm"] = optax.tree.norm(grads)
  return _descend_d(ctx, state, grads, cols), metrics


def batch_at(batches, i: int):
  """The i-th of k stacked batches: leaves [k, B_local, ...] -> [B_local, ...]."""
  return jax.tree.map(lambda a: a[i], batches)


def classifier_iteration(ctx: StepContext, state: GANState, batches):
  """An iteration of the plain classifier: k = ctx.d_steps `classifier_update`s on the labelled rows of
  batches[0..k-1], the iteration counted; G is not trained (its loss would never reach D's)."""
  metrics = {}
  for i in range(ctx.d_steps):
    state, metrics = classifier_update(ctx, state, labeled_batch(batch_at(batches, i)), step_keys(state).d_update)
  return state.replace(step=state.step + 1), metrics


def d_step(ctx: StepContext, state: GANState, batch):
  """One discriminator update on `batch` ({'x', 'label'}) and fresh fakes G(z); G is unchanged."""
  keys = step_keys(state)
  z, y_fake = fake_inputs(ctx, keys.d_latents, batch["x"].shape[0])
  x_fake, _ = apply_module(ctx.nets.generator, state.g_params, state.g_collections, (z, y_fake), True)
  return d_update(ctx, state, (batch["x"], batch.get("label")), (x_fake, y_fake), keys.d_update,
                  labeled_batch(batch))


class GeneratorForward(NamedTuple):
  """One G forward pass, kept for the G update (and shared with the last D update)."""
  x: jax.Array          # G(z) [B_local, ...]
  labels: Optional[jax.Array]
  vjp: Callable         # dL/dx -> (dL/d g_params,)
  collections: dict     # G's collections after the pass (batch-norm running statistics)
  dropout_key: jax.Array


def generator_forward(ctx: StepContext, state: GANState, g_update: int = 0) -> GeneratorForward:
  keys = step_keys(state, g_update)
  z, y_fake = fake_inputs(ctx, keys.g_latents, ctx.local_batch)
  x_fake, g_vjp, g_cols = jax.vjp(
      lambda p: apply_module(ctx.nets.generator, p, state.g_collections, (z, y_fake), True),
      state.g_params, has_aux=True)
  return GeneratorForward(x_fake, y_fake, g_vjp, g_cols, keys.g_dropout)


def _generator_loss_fn(ctx: StepContext, obj: objectives.Objective, state: GANState, fwd: GeneratorForward, batch):
  """(x, labels, real features, key) -> (L_G, fake logits) of `obj` (the iteration's objective): against D's
  current weights, or with --unroll_steps against the D that K simulated updates on (x, labels) and `batch` make."""
  D = ctx.nets.discriminator
  if not ctx.unroll_steps:
    return functools.partial(objectives.generator_objective, obj, D, state.d_params, state.d_collections,
                             axis_name=ctx.axis_name, fake_shift=fake_shifts(ctx, fwd.dropout_key, fwd.x.shape[0]))
  real = (batch["x"], batch.get("label") if ctx.nets.num_classes else None)
  key = _device_key(jax.random.fold_in(fwd.dropout_key, 2), ctx.axis_name)

  def loss_fn(x, labels, real_features, dropout_key):
    d_params, d_cols = unrolled.simulated_discriminator(ctx, state, (x, labels), real, key,
                                                        lambda t: _pmean(t, ctx.axis_name))
    return objectives.generator_objective(obj, D, d_params, d_cols, x, labels, real_features, dropout_key,
                                          ctx.axis_name)
  return loss_fn


def generator_reals(batch):
  """The reals G's feature matching compares with: the semi-supervised batch's own ('x_generator',
  `gan_jax/data/labeled.py`), else the batch D was updated on."""
  return batch.get("x_generator", batch["x"])


def g_gradients(ctx: StepContext, state: GANState, fwd: GeneratorForward, batch=None):
  """(dL_G / d g_params, metrics): dL/dx through D (at its current weights, or unrolled), then back through G."""
  obj, D, axis = objectives.at_iteration(ctx.objective, state.step), ctx.nets.discriminator, ctx.axis_name
  real = None
  if (obj.feature_matching or ctx.unroll_steps) and batch is None:
    raise ValueError("feature matching and unrolling need the real batch: g_step(state, batch)")
  if obj.feature_matching:
    real = objectives.real_features(obj, D, state.d_params, state.d_collections, generator_reals(batch),
                                    batch.get("label") if ctx.nets.num_classes else None,
                                    _device_key(jax.random.fold_in(fwd.dropout_key, 1), axis))
  loss_fn = _generator_loss_fn(ctx, obj, state, fwd, batch)
  (g_loss, fake_logits), dx = jax.value_and_grad(loss_fn, has_aux=True)(
      fwd.x, fwd.labels, real, _device_key(fwd.dropout_key, axis))
  grads = fwd.vjp(dx)[0]
  metrics = {"g_loss": g_loss, "d_fake_g": jnp.mean(jax.nn.sigmoid(fake_logits))}
  if obj.historical_averaging:
    metrics["g_hist_avg"], penalty_grads = objectives.historical_average(obj, state.g_params, state.g_param_avg)
    grads = jax.tree.map(lambda g, p: g + p, grads, penalty_grads)
  return _pmean(grads, axis), _pmean(metrics, axis)


def g_update(ctx: StepContext, state: GANState, fwd: GeneratorForward, batch=None, advance: bool = True):
  """Descends L_G in G's weights and moves the EMA of G: theta_ema <- d theta_ema + (1 - d) theta (and of
  G's batch-norm statistics, when the state keeps it). `advance`: count the iteration (`state.step`),
  False for all but the last of --g_steps G updates."""
  grads, metrics = g_gradients(ctx, state, fwd, batch)
  updates, g_opt_state = ctx.g_tx.update(grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, updates)
  ema = optax.incremental_update(g_params, state.ema_g_params, 1.0 - ctx.ema_decay)
  metrics["g_grad_norm"] = optax.tree.norm(grads)
  collections = _pmean(fwd.collections, ctx.axis_name)
  new_state = state.replace(
      g_params=g_params, g_opt_state=g_opt_state, g_collections=collections, ema_g_params=ema,
      step=state.step + 1 if advance else state.step)
  if state.ema_g_collections is not None:  # --ema_statistics=ema
    new_state = new_state.replace(
        ema_g_collections=optax.incremental_update(collections, state.ema_g_collections, 1.0 - ctx.ema_decay))
  if ctx.objective.historical_averaging:
    new_state = new_state.replace(
        g_param_avg=regularizers.update_average(state.g_param_avg, g_params, new_state.step + 1))
  return new_state, metrics


def g_step(ctx: StepContext, state: GANState, batch=None, g_update_index: int = 0, advance: bool = True):
  """One generator update; `batch` (the reals) only for feature matching."""
  return g_update(ctx, state, generator_forward(ctx, state, g_update_index), batch, advance)


def _g_updates(ctx: StepContext, state: GANState, real, first=None):
  """The iteration's ctx.g_steps G updates (the first on the shared forward `first`, if given)."""
  metrics = {}
  for i in range(ctx.g_steps):
    advance = i == ctx.g_steps - 1
    if i == 0 and first is not None:
      state, metrics = g_update(ctx, state, first, real, advance)
    else:
      state, metrics = g_step(ctx, state, real, i, advance)
  return state, metrics


SHIFT_SALT = 0x5F7


def ramped_shifts(key, local_batch: int, max_shift: int, shifted_share=None, axis_name: Optional[str] = None):
  """`sample_shifts` with each row kept with probability `shifted_share` (a scalar in [0, 1]) and zeroed
  otherwise: int32 [local_batch, 2], this device's rows of one global draw (--shift_ramp); None: every row kept."""
  shifts = sample_shifts(key, local_batch, max_shift, axis_name)
  if shifted_share is None:
    return shifts
  kept = _local_rows(lambda n: jax.random.bernoulli(jax.random.fold_in(key, 1), shifted_share, (n, 1)), local_batch,
                     axis_name)
  return jnp.where(kept, shifts, 0)


def shifted_reals(batches, key, max_shift: int, axis_name=None, shifted_share=None):
  """Data augmentation of the reals: every image leaf ('x*') of batches [k, B_local, H, W, C] shifted by
  (dh, dw) ~ U{-max_shift, ..., max_shift}^2 (`sample_shifts`: one global draw per leaf and batch, so training
  is the same whatever the device count), black (`augment.BLACK`, the digits' background) shifted in
  (`augment.translation`); labels untouched. `shifted_share` (None: 1): each image shifted with that
  probability, else left in place (`ramped_shifts`)."""
  out = dict(batches)
  for i, name in enumerate(sorted(n for n in batches if n.startswith("x"))):
    x, leaf_key = batches[name], jax.random.fold_in(key, i)
    out[name] = jnp.stack([
        augment.translation(x[j], ramped_shifts(jax.random.fold_in(leaf_key, j), x.shape[1], max_shift, shifted_share,
                                                axis_name), fill=augment.BLACK) for j in range(x.shape[0])])
  return out


def shifted_share(ctx: StepContext, step):
  """The share of reals shifted at iteration `step`: min(1, (step + 1) / --shift_ramp), or None without a ramp."""
  return jnp.minimum(1.0, (step + 1) / ctx.shift_ramp) if ctx.shift_ramp else None


def train_step(ctx: StepContext, state: GANState, batches):
  """k = ctx.d_steps discriminator steps on batches[0..k-1], then ctx.g_steps generator steps.

  With share_fakes the last D step judges the very fakes the (first) G step then improves
  (one G forward per iteration, as in the reference DCGAN loop); otherwise each
  step draws its own latents. Feature matching compares with the reals of the last D step, and an
  unrolled G simulates D's updates on them. With ctx.shift_reals every real image of `batches` is shifted
  first (`shifted_reals`, keys from state.rng and state.step); d_step / g_step take their batch as given.
  The plain classifier (`objectives.classifier_only`) trains D alone (`classifier_iteration`).
  """
  d_metrics = {}
  if ctx.shift_reals:
    batches = shifted_reals(batches, jax.random.fold_in(jax.random.fold_in(state.rng, SHIFT_SALT), state.step),
                            ctx.shift_reals, ctx.axis_name, shifted_share(ctx, state.step))
  if objectives.classifier_only(ctx.objective):
    return classifier_iteration(ctx, state, batches)
  last = ctx.d_steps - 1 if ctx.share_fakes else ctx.d_steps
  for i in range(last):
    state, d_metrics = d_step(ctx, state, batch_at(batches, i))
  real = batch_at(batches, ctx.d_steps - 1) if ctx.objective.feature_matching or ctx.unroll_steps else None
  if not ctx.share_fakes:
    state, g_metrics = _g_updates(ctx, state, real)
    return state, {**d_metrics, **g_metrics}
  fwd = generator_forward(ctx, state)
  shared = batch_at(batches, last)
  state, d_metrics = d_update(ctx, state, (shared["x"], shared.get("label")), (fwd.x, fwd.labels),
                              step_keys(state).d_update, labeled_batch(shared))
  state, g_metrics = _g_updates(ctx, state, real, first=fwd)
  return state, {**d_metrics, **g_metrics}


class StepFns(NamedTuple):
  d_step: Callable   # (state, batch) -> (state, metrics); batch leaves [B_local, ...]
  g_step: Callable   # (state, batch=None) -> (state, metrics); the batch only for feature matching
  train_step: Callable  # (state, batches) -> (state, metrics); batches leaves [k, B_local, ...]


def make_steps(cfg, nets: GANNets, g_tx, d_tx, axis_name: Optional[str] = None,
               num_devices: int = 1) -> StepFns:
  """The pure step functions of one config, bound to its StepContext."""
  ctx = make_context(cfg, nets, g_tx, d_tx, axis_name, num_devices)
  return StepFns(*(functools.partial(f, ctx) for f in (d_step, g_step, train_step)))
