"""The training state: one pytree holding everything a resumed run needs."""
from typing import Any

import flax
import flax.struct
import jax
import jax.numpy as jnp
import optax

from gan_jax.nets import GANNets

PyTree = Any


@flax.struct.dataclass
class GANState:
  """Pure-array pytree; `d_step`/`g_step` map it to a new one.

  step:         generator updates so far (int32 scalar); also the schedule's clock.
  d_updates:    discriminator updates so far (k per generator step).
  g_params, d_params:            network weights.
  g_collections, d_collections:  other Flax collections (batch_stats), {} for MLPs.
  g_opt_state, d_opt_state:      optax states, one per player.
  ema_g_params: exponential moving average of g_params (equal to them when ema_decay=0),
                the generator used for samples and evaluation.
  rng:          uint32[2] base key; each step folds in its own counter.
  g_param_avg, d_param_avg: with --historical_averaging, the mean of every parameter
                value each player has had (initial one included); None otherwise.
  ema_g_collections: with --ema_statistics=ema, the EMA of g_collections (batch-norm statistics) at
                the decay of ema_g_params, for G_ema's inference; None otherwise.
  ema_d_params: with --d_ema_decay, the EMA of d_params (the semi-supervised classifier's evaluation
                weights); None otherwise.
  lecam_ema:    with --lecam_weight, float32 [2]: the (not yet debiased) moving averages of D's mean real and
                fake logits (`regularizers.lecam_anchors`); None otherwise.
  """
  step: jax.Array
  d_updates: jax.Array
  g_params: PyTree
  g_collections: PyTree
  g_opt_state: PyTree
  d_params: PyTree
  d_collections: PyTree
  d_opt_state: PyTree
  ema_g_params: PyTree
  rng: jax.Array
  g_param_avg: PyTree = None
  d_param_avg: PyTree = None
  ema_g_collections: PyTree = None
  ema_d_params: PyTree = None
  lecam_ema: PyTree = None


# Learning-rate schedules: (peak rate, the player's updates in the whole run) -> optax schedule.
SCHEDULES = {
    "constant": lambda lr, updates: optax.constant_schedule(lr),
    "cosine": lambda lr, updates: optax.cosine_decay_schedule(lr, updates),  # to 0 at the last update
    "linear": lambda lr, updates: optax.linear_schedule(lr, 0.0, updates),  # SNGAN's (Chainer's LinearShift)
}


UNROLL_EPS_ROOT = 1e-16


def learning_rate(cfg, peak: float, updates_per_step: int):
  """A player's rate at its update t: --lr_warmup iterations of linear warm-up, lr_t = peak (t + 1) / W
  (W = lr_warmup x the player's updates per iteration; the first update at peak / W, the W-th at peak), then
  --lr_schedule over the remaining updates of the run."""
  updates, warmup = cfg.train_steps * updates_per_step, cfg.lr_warmup * updates_per_step
  schedule = SCHEDULES[cfg.lr_schedule](peak, updates - warmup)
  if not warmup:
    return schedule
  ramp = optax.linear_schedule(peak / warmup, peak, warmup - 1) if warmup > 1 else optax.constant_schedule(peak)
  return optax.join_schedules([ramp, schedule], [warmup])


def make_optimizers(cfg):
  """Adam for each player (DCGAN: 2e-4, beta1 0.5); each schedule counts its player's updates. Each
  player's update is m_hat / (sqrt(v_hat + eps_root) + 1e-8), eps_root from --adam_eps_root_g / _d. With
  --unroll_steps and no --adam_eps_root_d, D's is UNROLL_EPS_ROOT: G differentiates D's update, and sqrt
  has no derivative at a zero second moment."""
  g_tx = optax.adam(learning_rate(cfg, cfg.lr_g, cfg.g_steps), b1=cfg.beta1, b2=cfg.beta2,
                    eps_root=cfg.adam_eps_root_g)
  d_tx = optax.adam(learning_rate(cfg, cfg.lr_d, cfg.d_steps), b1=cfg.beta1, b2=cfg.beta2,
                    eps_root=cfg.adam_eps_root_d or (UNROLL_EPS_ROOT if cfg.unroll_steps else 0.0))
  return g_tx, d_tx


def _split_variables(variables):
  variables = flax.core.unfreeze(variables)
  params = variables.pop("params")
  return params, variables


def create_state(key, nets: GANNets, g_tx, d_tx, historical_averaging: bool = False,
                 ema_collections: bool = False, d_init_images=None, ema_d: bool = False,
                 lecam: bool = False) -> GANState:
  """Initialises both networks and optimisers from `key` alone (`jax.random.PRNGKey(seed)` for a run;
  under `jax.vmap`, a stack of keys gives a stack of independent runs). `historical_averaging`,
  `ema_collections`, `ema_d`, `lecam`: keep the parameter averages, the EMA of G's collections, D's EMA, LeCam's
  moving averages. `d_init_images` [n, ...]:
  the real images a data-dependent init of D reads (`init_images`; None: zeros, for shapes)."""
  key_g, key_d, key_run = jax.random.split(key, 3)
  n = nets.discriminator.pack  # the smallest batch D takes
  z = jnp.zeros((n, nets.latent_dim), jnp.float32)
  x = jnp.zeros((n, *nets.data_shape), jnp.float32) if d_init_images is None else jnp.asarray(d_init_images)
  g_labels = jnp.zeros((n,), jnp.int32) if nets.num_classes else None  # (label conditioning implies pack 1)
  d_labels = jnp.zeros((x.shape[0] // n,), jnp.int32) if nets.num_classes else None
  g_params, g_collections = _split_variables(
      nets.generator.init({"params": key_g}, z, g_labels, train=False))
  d_params, d_collections = _split_variables(
      nets.discriminator.init({"params": key_d}, x, d_labels, train=False))
  copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731
  return GANState(
      step=jnp.zeros((), jnp.int32), d_updates=jnp.zeros((), jnp.int32),
      g_params=g_params, g_collections=g_collections, g_opt_state=g_tx.init(g_params),
      d_params=d_params, d_collections=d_collections, d_opt_state=d_tx.init(d_params),
      ema_g_params=copy(g_params), rng=key_run,
      g_param_avg=copy(g_params) if historical_averaging else None,
      d_param_avg=copy(d_params) if historical_averaging else None,
      ema_g_collections=copy(g_collections) if ema_collections else None,
      ema_d_params=copy(d_params) if ema_d else None, lecam_ema=jnp.zeros((2,), jnp.float32) if lecam else None)


def init_images(cfg, dataset):
  """The training images D is initialised on: the first `init_rows` (nets.ModelSpec) of the run's stream,
  float32 [n, ...]; None for a model initialised on zeros."""
  from gan_jax.nets import MODELS
  rows = MODELS.get(cfg.model).init_rows
  return dataset.get_batch(0, min(rows, dataset.num_examples))["x"] if rows else None


def state_from_config(cfg, key, nets: GANNets, g_tx, d_tx, d_init_images=None) -> GANState:
  """`create_state(key, ...)` keeping what cfg's options need (parameter averages, G's collection EMA, D's
  EMA, LeCam's moving averages)."""
  return create_state(key, nets, g_tx, d_tx, cfg.historical_averaging > 0, cfg.ema_statistics == "ema",
                      d_init_images, cfg.d_ema_decay > 0, lecam=cfg.lecam_weight > 0)


def init_state(cfg, nets: GANNets, g_tx, d_tx, d_init_images=None) -> GANState:
  """The fresh state of a run: `state_from_config` from `cfg.seed` (and `init_images` for a data-dependent
  init)."""
  return state_from_config(cfg, jax.random.PRNGKey(cfg.seed), nets, g_tx, d_tx, d_init_images)


def count_params(tree: PyTree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))
