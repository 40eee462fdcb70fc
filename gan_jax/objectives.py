"""The terms of D's and G's objectives, as pure functions of the networks' weights and inputs.

The split of stylegan2-ada's `training/loss.py` (Dmain, Dreg, Gmain): the step (`steps.py`) draws
the fakes and applies the updates; this module says what each player minimises.

  L_D = d_loss(D(x), D(G(z)))                              adversarial, `--loss`, one-sided smoothing
        + acgan_weight * [CE(C(x), y) + CE(C(G(z)), y_z)]   AC-GAN class term (Odena et al. 2017)
        + gp_weight * E[(||grad D(x_hat)||_2 - 1)^2]        WGAN-GP (Gulrajani et al. 2017)
        + r1_weight / 2 * E[||grad D(x)||_2^2]              R1 (Mescheder et al. 2018)
        + lecam_weight * [E relu(D(x) - a_F)^2 + E relu(a_R - D(G(z)))^2]   LeCam (Tseng et al. 2021)
        + consistency_weight * [E (D(x) - D(T x))^2 + E (D(G(z)) - D(T G(z)))^2]   bCR (Zhao et al. 2020)
        + historical_averaging * ||theta_D - mean theta_D||^2   (Salimans et al. 2016)
  semi-supervised (--labeled_examples; Salimans et al. 2016, sec. 5), D's logit l = logsumexp of its K class
  logits: L_D = CE(C(x_l), y_l) over the labelled batch + unlabeled_weight * 1/2 d_loss(l(x), l(G(z)))
  L_G = g_loss(D(G(z)))  or  ||E f(x) - E f(G(z))||^2       feature matching (Salimans et al. 2016)
        + acgan_weight * CE(C(G(z)), y_z)
        + historical_averaging * ||theta_G - mean theta_G||^2  (its gradient: `historical_average`)

D takes samples as G makes them (PacGAN packing happens inside D); the input-gradient penalties
differentiate D at its own (packed) inputs. Instance noise (--instance_noise; Sonderby et al. 2017, arXiv:1610.04490;
Arjovsky & Bottou 2017): every image D judges in training, real, fake or labelled, gets x + sigma_t * N(0, I),
sigma_t = sigma_0 clip((T - t) / (T - S), 0, 1) at iteration t (`at_iteration`; sigma_0 for the first S
iterations, then falling linearly to 0 at T), so the players' distributions overlap early on.
"""
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
from jax import lax

from gan_jax import augment, losses, regularizers
from gan_jax.nets import apply_module


@dataclasses.dataclass(frozen=True)
class Objective:
  """Which terms the players' objectives hold, and their weights (0 turns a term off)."""
  loss: losses.GANLoss
  label_smoothing: float = 0.0
  acgan_weight: Optional[float] = None  # None: no auxiliary classifier
  gp_weight: float = 0.0
  r1_weight: float = 0.0
  historical_averaging: float = 0.0
  feature_matching: bool = False
  augment: tuple = ()  # DiffAugment's policy (gan_jax/augment.py): what D sees of every image; () off
  semi_supervised: bool = False  # D a K+1-class classifier with a labelled batch beside the GAN game
  unlabeled_weight: float = 1.0
  shift_fakes: int = 0  # G's fakes shifted by up to this many pixels before D judges them (0: off)
  instance_noise: float = 0.0  # sigma_0 of the instance noise (0: off)
  instance_noise_steps: int = 0  # T: the iteration at which sigma reaches 0 (0: sigma_0 throughout)
  instance_noise_hold: int = 0  # S < T: the iterations sigma_0 is held before it falls
  noise_std: Optional[jax.Array] = None  # sigma_t of this iteration (`at_iteration`); None: no noise
  lecam_weight: float = 0.0  # LeCam's lambda (0: off)
  lecam_decay: float = 0.99  # the decay of its moving averages
  lecam_ema: Optional[jax.Array] = None  # float32 [2], the moving averages before this D update (`at_update`)
  lecam_count: Optional[jax.Array] = None  # this D update's number, 1-based (for the debiasing)
  consistency_weight: float = 0.0  # bCR's lambda (lambda_real = lambda_fake; 0: off)


AUGMENT_SALT = 0x0A06  # folded into a pass's key for its augmentation parameters (off: no key changes)
NOISE_SALT = 0x0A07  # folded into a pass's key for its instance noise (off: no key changes)
CONSISTENCY_SALT = 0x0BC2  # folded into a pass's key for bCR's shifts and its shifted pass (off: no key changes)
LABELED_SALT = 0x1AB  # folded into the real pass's key for the labelled batch's pass (semi-supervised only)


def at_iteration(obj: Objective, step) -> Objective:
  """`obj` at iteration `step` (traced): noise_std = sigma_0 clip((T - step) / (T - S), 0, 1) (sigma_0 with
  T = 0), or `obj` itself without instance noise."""
  if not obj.instance_noise:
    return obj
  end, hold = obj.instance_noise_steps, obj.instance_noise_hold
  decay = jnp.clip((end - step) / (end - hold), 0.0, 1.0) if end else 1.0
  return dataclasses.replace(obj, noise_std=obj.instance_noise * jnp.asarray(decay, jnp.float32))


def at_update(obj: Objective, state) -> Objective:
  """`obj` at D's next update from `state`: `at_iteration(obj, state.step)` with LeCam's moving averages."""
  obj = at_iteration(obj, state.step)
  if state.lecam_ema is None:
    return obj
  return dataclasses.replace(obj, lecam_ema=state.lecam_ema, lecam_count=state.d_updates + 1)


def lecam_term(obj: Objective, real_logits, fake_logits, axis_name=None):
  """(LeCam's penalty at this update, the moving averages after it): the anchors include this update's batch
  means (all devices'), as the paper's code has them."""
  means = lax.stop_gradient(jnp.stack([jnp.mean(real_logits), jnp.mean(fake_logits)]).astype(jnp.float32))
  if axis_name is not None:
    means = lax.pmean(means, axis_name)
  ema, anchors = regularizers.lecam_anchors(obj.lecam_ema, obj.lecam_count, means, obj.lecam_decay)
  return regularizers.lecam_penalty(real_logits, fake_logits, anchors), ema


def consistency_term(discriminator, params, collections, x, labels, logits, key):
  """bCR's term for one batch (Zhao et al. 2020, "Improved consistency regularization for GANs", Algorithm 1):
  E_i (logits_i - D(T x)_i)^2, D's logits [B/pack] of x [B, ...] against those of T x, T a shift by up to
  round(H / 8) pixels along each axis (`augment.translation_params`), black shifted in, drawn per image from
  `key`; the gradient reaches D through both passes, as in the paper. The shifted pass's batch statistics
  are not kept."""
  key = jax.random.fold_in(key, CONSISTENCY_SALT)
  shifted = augment.translation(x, augment.translation_params(key, x.shape), fill=augment.BLACK)
  (shifted_logits, _, _), _ = discriminate(discriminator, params, collections, shifted, labels, key)
  return jnp.mean(jnp.square(logits - shifted_logits))


def augmented(obj: Objective, x, key):
  """x as D sees it: DiffAugment of `obj.augment` with parameters drawn from `key`, then the instance noise
  x + noise_std * N(0, I) drawn from `key` (x itself when both are off)."""
  if obj.augment:
    x = augment.diff_augment(x, jax.random.fold_in(key, AUGMENT_SALT), obj.augment)
  return x if obj.noise_std is None else instance_noise(x, obj.noise_std, jax.random.fold_in(key, NOISE_SALT))


def instance_noise(x, std, key):
  """x + std * eps, eps ~ N(0, I) of x's shape drawn from `key` (in float32, returned in x's dtype)."""
  return (x + std * jax.random.normal(key, x.shape, jnp.float32)).astype(x.dtype)


def shifted_fakes(x, shift):
  """G's fakes as D judges them under --shift_fakes: x [B, H, W, C] shifted by shift int [B, 2] (the reals'
  law, `steps.shifted_reals`), black shifted in; x itself when shift is None."""
  return x if shift is None else augment.translation(x, shift, fill=augment.BLACK)


def objective_from_config(cfg) -> Objective:
  return Objective(
      loss=losses.get_loss(cfg.loss), label_smoothing=cfg.label_smoothing,
      acgan_weight=cfg.acgan_weight if cfg.conditioning == "acgan" else None,
      gp_weight=cfg.gp_weight, r1_weight=cfg.r1_weight, historical_averaging=cfg.historical_averaging,
      feature_matching=cfg.feature_matching, semi_supervised=cfg.labeled_examples > 0,
      unlabeled_weight=cfg.unlabeled_weight, shift_fakes=cfg.shift_reals if cfg.shift_fakes else 0,
      instance_noise=cfg.instance_noise, instance_noise_steps=cfg.instance_noise_steps,
      instance_noise_hold=cfg.instance_noise_hold, lecam_weight=cfg.lecam_weight, lecam_decay=cfg.lecam_decay,
      consistency_weight=cfg.consistency_weight,
      augment=tuple(p for p in augment.POLICIES if p in cfg.diffaugment.split(",")) if cfg.diffaugment else ())


def classifier_only(obj: Objective) -> bool:
  """True when L_D is the labelled cross-entropy alone: --labeled_examples with --unlabeled_weight=0 and no
  other term of D's (the plain classifier baseline), so nothing of G's fakes or the unlabelled reals reaches
  D's gradient."""
  return (obj.semi_supervised and obj.unlabeled_weight == 0 and obj.acgan_weight is None
          and not (obj.gp_weight or obj.r1_weight or obj.lecam_weight or obj.consistency_weight
                   or obj.historical_averaging))


def discriminate(discriminator, params, collections, x, labels, key):
  """D in train mode on samples x [B, ...]: ((logits [B/pack], features, class logits or None), collections)."""
  return apply_module(discriminator, params, collections, (x, labels), True, key, features=True)


def input_critic(discriminator, params, collections, labels, key):
  """v -> D's logits at D's own (packed) input v, with the batch statistics of this step frozen.

  Always in float32, whatever --precision: the penalties differentiate D twice, where bfloat16
  round-off is large enough to blow up (a known NaN of mixed-precision WGAN-GP).
  """
  module = discriminator.module
  if getattr(module, "dtype", None) is not None:
    module = module.clone(dtype=None)
  return lambda v: apply_module(module, params, collections, (v.astype(jnp.float32), labels), True, key)[0]


def d_penalties(obj: Objective, discriminator, params, collections, x_real, y_real, x_fake, keys):
  """{'gp': ..., 'r1': ...} for the penalties that are on; `keys` = (dropout key, interpolation key)."""
  terms = {}
  if obj.gp_weight or obj.r1_weight:
    critic = input_critic(discriminator, params, collections, y_real, keys[0])
    real_in = discriminator.inputs(x_real)
    if obj.gp_weight:
      terms["gp"] = regularizers.gradient_penalty(critic, real_in, discriminator.inputs(x_fake), keys[1])
    if obj.r1_weight:
      terms["r1"] = regularizers.r1_penalty(critic, real_in)
  return terms


def labeled_terms(obj: Objective, discriminator, params, collections, labeled, key):
  """({'labeled_nll': CE of D's class logits on the labelled batch, 'labeled_accuracy'}, collections).

  labeled: (x [B, ...], labels [B]): only these rows reach the cross-entropy (the GAN batch's labels never do).
  """
  x, labels = labeled
  key = jax.random.fold_in(key, LABELED_SALT)
  (_, _, class_logits), collections = discriminate(discriminator, params, collections, augmented(obj, x, key),
                                                   None, key)
  accuracy = lax.stop_gradient(jnp.mean((jnp.argmax(class_logits, axis=-1) == labels).astype(jnp.float32)))
  return {"labeled_nll": losses.class_nll(class_logits, labels), "labeled_accuracy": accuracy}, collections


def discriminator_objective(obj: Objective, discriminator, params, collections, param_avg,
                            real, fake, keys, labeled=None, fake_shift=None, axis_name=None):
  """L_D at D's weights `params`: (L_D, (collections, real logits, fake logits, {term: value}, LeCam's moving
  averages after this update or None)).

  real, fake: (x [B, ...], labels [B] or None). The gradient in `params` is D's; the fakes are G's outputs,
  differentiable as they come (an unrolled G differentiates D's update through them, `unrolled.py`).
  keys: (real pass, fake pass, interpolation), each already distinct per device.
  labeled: the semi-supervised objective's labelled batch (x, labels), or None.
  fake_shift: int [B, 2], the fakes' shifts under --shift_fakes, or None.
  axis_name: the device axis LeCam's batch means are taken over.
  """
  (x_real, y_real), (x_fake, y_fake) = real, fake
  x_real = augmented(obj, x_real, keys[0])  # the penalties see these too
  x_fake = augmented(obj, shifted_fakes(x_fake, fake_shift), keys[1])
  (real_logits, _, real_cls), cols = discriminate(discriminator, params, collections, x_real, y_real, keys[0])
  (fake_logits, _, fake_cls), cols = discriminate(discriminator, params, cols, x_fake, y_fake, keys[1])
  terms, weights = {}, {}
  if obj.acgan_weight is not None:  # D maximises L_S + L_C: the class log-likelihood of reals and fakes.
    terms["class_nll"] = losses.class_nll(real_cls, y_real) + losses.class_nll(fake_cls, y_fake)
    weights["class_nll"] = obj.acgan_weight
  terms.update(d_penalties(obj, discriminator, params, cols, x_real, y_real, x_fake, (keys[0], keys[2])))
  weights.update(gp=obj.gp_weight, r1=0.5 * obj.r1_weight)
  if obj.historical_averaging:
    terms["d_hist_avg"] = regularizers.historical_average_penalty(params, param_avg)
    weights["d_hist_avg"] = obj.historical_averaging
  lecam_ema = None
  if obj.lecam_weight:
    terms["lecam"], lecam_ema = lecam_term(obj, real_logits, fake_logits, axis_name)
    weights["lecam"] = obj.lecam_weight
  if obj.consistency_weight:
    terms["consistency"] = (consistency_term(discriminator, params, cols, x_real, y_real, real_logits, keys[0])
                            + consistency_term(discriminator, params, cols, x_fake, y_fake, fake_logits, keys[1]))
    weights["consistency"] = obj.consistency_weight
  total = obj.loss.d_loss(real_logits, fake_logits, obj.label_smoothing)
  if obj.semi_supervised:
    supervised, cols = labeled_terms(obj, discriminator, params, cols, labeled, keys[0])
    terms.update(supervised)
    weights.update(labeled_nll=1.0, labeled_accuracy=0.0)
    total = 0.5 * obj.unlabeled_weight * total
  for name, value in terms.items():
    total = total + weights[name] * value
  return total, (cols, real_logits, fake_logits, terms, lecam_ema)


def generator_objective(obj: Objective, discriminator, d_params, d_collections, x_fake, y_fake,
                        real_features, key, axis_name=None, fake_shift=None):
  """L_G as a function of the fakes x_fake [B, ...] (D fixed): (L_G, fake logits).

  real_features: D's features of the real batch, for feature matching (else None); axis_name: the
  device axis its batch means are taken over; fake_shift: as in `discriminator_objective`.
  """
  x_judged = augmented(obj, shifted_fakes(x_fake, fake_shift), key)
  (fake_logits, fake_features, fake_cls), _ = discriminate(discriminator, d_params, d_collections, x_judged,
                                                          y_fake, key)
  if obj.feature_matching:
    g_loss = losses.feature_matching_loss(real_features, fake_features, axis_name)
  else:
    g_loss = obj.loss.g_loss(fake_logits)
  if obj.acgan_weight is not None:  # G maximises L_C - L_S: its fakes should be classified as their labels.
    g_loss = g_loss + obj.acgan_weight * losses.class_nll(fake_cls, y_fake)
  return g_loss, fake_logits


def real_features(obj: Objective, discriminator, d_params, d_collections, x_real, y_real, key):
  """D's last hidden features of the reals as D sees them (`augmented`), held fixed (feature matching's target)."""
  (_, features, _), _ = discriminate(discriminator, d_params, d_collections, augmented(obj, x_real, key), y_real,
                                     key)
  return lax.stop_gradient(features)


def historical_average(obj: Objective, params, param_avg):
  """(||theta - avg||^2, w * its gradient 2 w (theta - avg)) for a player whose gradient arrives by vjp."""
  penalty, grads = jax.value_and_grad(regularizers.historical_average_penalty)(params, param_avg)
  return penalty, jax.tree.map(lambda g: obj.historical_averaging * g, grads)
