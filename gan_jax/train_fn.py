"""The jitted, data-parallel, NaN-guarded train function of a run: `make_train_fn(ctx, mesh, ...)`.

Built from a `StepContext` alone (never the config), so a replica axis (several runs stacked under
`jax.vmap`) can wrap the step without knowing where its settings came from.
"""
import functools

import jax
import jax.numpy as jnp
from jax import lax

from gan_jax.nets import MODELS
from gan_jax.sharding import BATCH_SPEC, DATA_AXIS, P
from gan_jax.state import GANState
from gan_jax.steps import StepContext, make_context, train_step

GUARDED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")  # Must stay finite.
AUTO_STEPS_PER_CALL = 100


def steps_per_call(cfg, platform: str) -> int:
  """--steps_per_call as a number: `auto` scans 100 steps per call, except models the registry calls
  convolutional on XLA:CPU (one step per call: a scan over DCGAN steps compiles for minutes there,
  see BUILD.md)."""
  if str(cfg.steps_per_call) != "auto":
    return int(cfg.steps_per_call)
  return 1 if (platform == "cpu" and MODELS.get(cfg.model).convolutional) else AUTO_STEPS_PER_CALL


def finite(metrics):
  """True when every guarded loss and gradient norm is finite (a scalar)."""
  return jnp.all(jnp.stack([jnp.isfinite(metrics[k]) for k in GUARDED if k in metrics]))


def guarded_train_step(ctx: StepContext, state: GANState, bad_step, batches, freeze: bool = True):
  """train_step that never lets a non-finite step through: (state, bad_step, metrics, finite).

  bad_step (int32 scalar) is 0 until a step's guarded metrics are not finite, then that step's
  number (1-based, the step counter it would have reached). With `freeze`, the state stays at the
  last finite step from then on, so nothing non-finite can be saved and the loop can read the
  verdict at its next boundary instead of after every step.
  """
  new, metrics = train_step(ctx, state, batches)
  ok = finite(metrics)
  if freeze:
    keep = ok & (bad_step == 0)
    new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)
  bad_step = jnp.where((bad_step == 0) & ~ok, state.step + 1, bad_step)
  return new, bad_step, metrics, ok


def per_device_fn(ctx: StepContext, steps_per_call: int, batch_of=None, freeze: bool = True):
  """`(state, bad_step, data, inputs) -> (state, bad_step, metrics)` of one device, unjitted: the body
  `make_train_fn` shards (and `replicas.make_replica_train_fn` maps over runs). Arguments as there."""
  batch_of = batch_of or (lambda data, inputs: inputs)

  def one(data, carry, inputs):
    state, bad_step = carry
    state, bad_step, metrics, ok = guarded_train_step(ctx, state, bad_step, batch_of(data, inputs), freeze)
    return (state, bad_step), (metrics, ok)

  def run(state: GANState, bad_step, data, inputs):
    if steps_per_call == 1:
      (state, bad_step), (metrics, _) = one(data, (state, bad_step), jax.tree.map(lambda a: a[0], inputs))
      return state, bad_step, metrics
    (state, bad_step), (metrics, ok) = lax.scan(functools.partial(one, data), (state, bad_step), inputs)
    index = jnp.where(jnp.all(ok), steps_per_call - 1, jnp.argmin(ok))
    return state, bad_step, jax.tree.map(lambda m: m[index], metrics)

  return run


def make_train_fn(ctx: StepContext, mesh, steps_per_call: int, batch_of=None, freeze: bool = True):
  """A jitted, data-parallel `(state, bad_step, data, inputs) -> (state, bad_step, metrics)`.

  ctx: the step's context with `axis_name` the mesh's data axis and `local_batch` the device's rows.
  inputs: leaves [steps_per_call, k, B_global, ...] sharded on the batch axis; `batch_of(data,
  inputs_of_one_step)` makes a step's {'x', 'label'} from them (by default the inputs are the
  batches). data: arrays every call takes (a dataset resident on the devices), replicated.
  The state is replicated (P()) and donated; with `freeze` (--nan_policy=stop) `guarded_train_step`
  keeps it finite, and bad_step carries the first non-finite step across calls. With
  steps_per_call > 1 the steps run in a `lax.scan` (one dispatch for many steps; not for conv nets
  on XLA:CPU, see BUILD.md). Metrics are those of the last step, or of the first non-finite step of
  this call.
  """
  run = per_device_fn(ctx, steps_per_call, batch_of, freeze)
  sharded = jax.shard_map(run, mesh=mesh, in_specs=(P(), P(), P(), BATCH_SPEC), out_specs=(P(), P(), P()),
                          check_vma=False)
  return jax.jit(sharded, donate_argnums=0)


def train_fn_from_config(cfg, nets, g_tx, d_tx, mesh, steps_per_call: int, batch_of=None):
  """`make_train_fn` for one run's config: its StepContext on the mesh's data axis, frozen on a
  non-finite step under --nan_policy=stop."""
  ctx = make_context(cfg, nets, g_tx, d_tx, DATA_AXIS, mesh.size)
  return make_train_fn(ctx, mesh, steps_per_call, batch_of, freeze=cfg.nan_policy == "stop")
