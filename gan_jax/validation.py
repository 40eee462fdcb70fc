"""`validate(cfg)`: every value a run cannot use is rejected with a ConfigError naming the flag, the
value and what is allowed, before anything is read or written. Names are checked against the
registries (models, datasets, metrics), and what a model, dataset or metric declares there (the data a
model takes, the samples and features a metric needs) is enforced here."""
import dataclasses
import math
import os
import re

from gan_jax import config as config_lib
from gan_jax import data, metrics, nets
from gan_jax.config import Config
from gan_jax.errors import ConfigError

_COUNT = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also admits '²', which int() refuses


def require(ok: bool, flag: str, value, allowed: str):
  if not ok:
    raise ConfigError(flag, value, allowed)


def _one_of(cfg: Config, flag: str, choices):
  value = getattr(cfg, flag)
  require(value in choices, flag, value, f"valid choices: {', '.join(map(str, choices))}")


def _positive(cfg: Config, *flags):
  for flag in flags:
    value = getattr(cfg, flag)
    require(value > 0, flag, value, "must be a positive number")


def _in(cfg: Config, flag: str, low: float, high: float, closed_low=True):
  value = getattr(cfg, flag)
  ok = (low <= value if closed_low else low < value) and value < high
  require(ok, flag, value, f"must lie in {'[' if closed_low else '('}{low:g}, {high:g})")


def _check_names(cfg: Config):
  for flag, names in (("loss", config_lib.LOSS_NAMES), ("d_activation", config_lib.D_ACTIVATIONS),
                      ("g_activation", config_lib.G_ACTIVATIONS), ("mlp_bias_init", config_lib.MLP_BIAS_INITS),
                      ("g_output", config_lib.OUTPUT_ACTIVATIONS), ("lr_schedule", config_lib.LR_SCHEDULES),
                      ("nan_policy", config_lib.NAN_POLICIES), ("conditioning", config_lib.CONDITIONINGS),
                      ("compute_dtype", config_lib.COMPUTE_DTYPES), ("ema_statistics", config_lib.EMA_STATISTICS),
                      ("replica_mode", config_lib.REPLICA_MODES), ("upsample", config_lib.UPSAMPLINGS),
                      ("latent_distribution", nets.LATENT_DISTRIBUTIONS)):
    _one_of(cfg, flag, names)
  spec = cfg.dataset_spec  # a ConfigError for an unknown name or argument
  model = nets.MODELS.get(cfg.model)
  require(spec.kind in model.data, "model", cfg.model,
          f"{cfg.model} takes {' or '.join(model.data)} data, not --dataset={cfg.dataset} ({spec.kind} data)")
  if not cfg.is_toy:
    _one_of(cfg, "resolution", config_lib.RESOLUTIONS)
    require(not model.resolutions or cfg.resolution in model.resolutions, "resolution", cfg.resolution,
            f"--model={cfg.model} is built for {' or '.join(map(str, model.resolutions))} px")
  for flag in model.refuses:
    require(not getattr(cfg, flag), flag, getattr(cfg, flag), f"--model={cfg.model} does not implement it; leave it off")
  require(not (cfg.diffaugment and cfg.is_toy), "diffaugment", cfg.diffaugment,
          f"augments images, and --dataset={cfg.dataset} holds points")
  require(not (cfg.shift_reals and cfg.is_toy), "shift_reals", cfg.shift_reals,
          f"shifts images, and --dataset={cfg.dataset} holds points")
  require(not (cfg.consistency_weight and cfg.is_toy), "consistency_weight", cfg.consistency_weight,
          f"compares D on shifted images, and --dataset={cfg.dataset} holds points")
  require(0 <= cfg.shift_reals <= cfg.resolution // 4 or cfg.is_toy, "shift_reals", cfg.shift_reals,
          f"a shift of 0 (off) to a quarter of the image side ({cfg.resolution // 4} px at --resolution={cfg.resolution})")
  require(not cfg.shift_fakes or cfg.shift_reals > 0, "shift_fakes", cfg.shift_fakes,
          "shifts the fakes as --shift_reals shifts the reals: set --shift_reals=N (N >= 1)")
  require(cfg.instance_noise_steps >= 0, "instance_noise_steps", cfg.instance_noise_steps,
          "must be >= 0 (0: the same std throughout)")
  require(not cfg.instance_noise_steps or cfg.instance_noise > 0, "instance_noise_steps", cfg.instance_noise_steps,
          "anneals the instance noise: set --instance_noise=STD")
  require(0 <= cfg.instance_noise_hold < max(cfg.instance_noise_steps, 1), "instance_noise_hold",
          cfg.instance_noise_hold, "holds the instance noise before it falls to 0 at --instance_noise_steps=T: "
          "0 <= S < T")
  require(cfg.shift_ramp >= 0, "shift_ramp", cfg.shift_ramp, "must be >= 0 (0: every real shifted from the start)")
  require(not cfg.shift_ramp or cfg.shift_reals > 0, "shift_ramp", cfg.shift_ramp,
          "ramps up the shifts of --shift_reals: set --shift_reals=N (N >= 1)")
  require(not (cfg.shift_fakes and cfg.unroll_steps), "shift_fakes", cfg.shift_fakes,
          "does not combine with --unroll_steps (the simulated D updates judge unshifted fakes)")
  require(cfg.channels in (0, 1, 3), "channels", cfg.channels, "0 (from the data), 1 or 3")
  require(cfg.conditioning == "none" or cfg.pack == 1, "conditioning", cfg.conditioning,
          f"label conditioning works with --pack=1 (got --pack={cfg.pack})")
  require(cfg.conditioning == "none" or spec.num_classes != 0, "conditioning", cfg.conditioning,
          f"needs a labelled dataset, and --dataset={cfg.dataset} has no labels; use --conditioning=none")


SEMI_SUPERVISED_LOSSES = ("nonsaturating", "minimax", "maximum_likelihood")  # D's loss: the cross-entropy


def _check_semi_supervised(cfg: Config):
  """--labeled_examples: a labelled image dataset, an unconditional G, D's cross-entropy, no packing or unrolling."""
  require(cfg.labeled_examples >= 0, "labeled_examples", cfg.labeled_examples, "must be >= 0 (0 turns it off)")
  require(cfg.unlabeled_weight >= 0, "unlabeled_weight", cfg.unlabeled_weight, "must be >= 0")
  if not cfg.labeled_examples:
    return
  spec, flag, n = cfg.dataset_spec, "labeled_examples", cfg.labeled_examples
  require(not cfg.is_toy and spec.num_classes != 0, flag, n,
          f"needs a labelled image dataset, and --dataset={cfg.dataset} is not one (mnist5k, a labelled tfds dataset, "
          "a folder of class subfolders)")
  require(cfg.conditioning == "none", flag, n, f"D's K+1 classes replace label conditioning: drop "
          f"--conditioning={cfg.conditioning} (G stays unconditional, as in Salimans et al. 2016)")
  require(cfg.pack == 1, flag, n, f"D classifies single images: use --pack=1 (got --pack={cfg.pack})")
  require(cfg.loss in SEMI_SUPERVISED_LOSSES, flag, n, f"the K+1 classifier's GAN term is the cross-entropy of "
          f"--loss={' | '.join(SEMI_SUPERVISED_LOSSES)}, not --loss={cfg.loss}")
  require(not cfg.unroll_steps, flag, n, "does not combine with --unroll_steps (the unrolled D would need the "
          "labelled batch)")


UNROLL_REFUSES = ("gp_weight", "r1_weight", "lecam_weight", "feature_matching", "historical_averaging")
UNROLL_COMBINES = ("--pack", "--spectral_norm", "batch norm", "--label_smoothing", "--conditioning",
                   "--weight_clip", "--compute_dtype", "--d_steps/--g_steps", "--share_fakes", "many devices")


def _check_numbers(cfg: Config):
  for field in dataclasses.fields(Config):  # inf and nan are no learning rate, weight or scale
    value = getattr(cfg, field.name)
    if isinstance(value, float):
      require(math.isfinite(value), field.name, value, "must be a finite number")
  spc = str(cfg.steps_per_call)
  require(spc == "auto" or (_COUNT.fullmatch(spc) is not None and int(spc) > 0), "steps_per_call", spc,
          "a positive number of steps, or auto")
  _positive(cfg, "batch_size", "train_steps", "d_steps", "g_steps", "latent_dim", "width", "pack", "eval_every",
            "eval_samples", "log_every", "checkpoint_every", "keep_checkpoints", "checkpoint_timeout",
            "maxout_pieces", "lr_g", "lr_d", "data_scale")
  require(cfg.seed >= 0, "seed", cfg.seed, "must be >= 0")
  seeds = ",".join(map(str, cfg.seeds))
  require(all(s >= 0 for s in cfg.seeds) and len(set(cfg.seeds)) == len(cfg.seeds), "seeds", seeds,
          "distinct seeds >= 0, comma-separated")
  require(not (cfg.seeds and cfg.seed), "seeds", seeds, f"replaces --seed={cfg.seed}: pass one of them")
  if cfg.sweep:
    try:
      name, _ = config_lib.parse_sweep(cfg.sweep)
    except ValueError as e:
      raise ConfigError("sweep", cfg.sweep, str(e)) from None
    require(name != "acgan_weight" or cfg.conditioning == "acgan", "sweep", cfg.sweep,
            "acgan_weight weighs the AC-GAN terms: needs --conditioning=acgan")
  require(cfg.num_devices >= 0, "num_devices", cfg.num_devices, "must be 0 (all) or positive")
  for flag in ("d_input_noise", "instance_noise", "gp_weight", "r1_weight", "lecam_weight", "consistency_weight",
               "weight_clip", "historical_averaging", "acgan_weight", "virtual_batch_norm", "minibatch_discrimination"):
    require(getattr(cfg, flag) >= 0, flag, getattr(cfg, flag), "must be >= 0 (0 turns it off)")
  for flag in ("label_smoothing", "d_dropout", "ema_decay", "d_ema_decay", "beta1", "adam_eps_root_g",
               "adam_eps_root_d"):
    _in(cfg, flag, 0.0, 1.0)
  _in(cfg, "lecam_decay", 0.0, 1.0)
  _in(cfg, "beta2", 0.0, 1.0, closed_low=False)  # beta2 = 0 divides by |g_t|: Adam blows up
  for flag in ("g_hidden", "d_hidden"):
    value = getattr(cfg, flag)
    require(len(value) > 0 and all(int(w) > 0 for w in value), flag, ",".join(map(str, value)),
            "a comma-separated list of positive widths")
  require(cfg.batch_size % cfg.pack == 0, "pack", cfg.pack, f"must divide --batch_size={cfg.batch_size}")
  require(cfg.d_width >= 0, "d_width", cfg.d_width, "must be >= 0 (0: --width)")
  require(cfg.lr_warmup >= 0, "lr_warmup", cfg.lr_warmup, "must be >= 0 (0 turns the warm-up off)")
  require(cfg.lr_schedule == "constant" or cfg.lr_warmup < cfg.train_steps, "lr_warmup", cfg.lr_warmup,
          f"must be under --train_steps={cfg.train_steps}: --lr_schedule={cfg.lr_schedule} decays after it")
  require(cfg.unroll_steps >= 0, "unroll_steps", cfg.unroll_steps, "must be >= 0 (0 turns unrolling off)")
  if cfg.unroll_steps:
    for flag in UNROLL_REFUSES:
      require(not getattr(cfg, flag), "unroll_steps", cfg.unroll_steps,
              f"does not combine with --{flag} (unrolling would differentiate it a third time, or simulate its "
              f"state); combines with {', '.join(UNROLL_COMBINES)}")
  if cfg.diffaugment:
    policies = ("color", "translation", "cutout")  # = gan_jax.augment.POLICIES, tested
    names = cfg.diffaugment.split(",")
    require(all(n in policies for n in names) and len(set(names)) == len(names), "diffaugment", cfg.diffaugment,
            f"a comma-separated subset of {', '.join(policies)}")
    require(not cfg.feature_matching, "diffaugment", cfg.diffaugment,
            "does not combine with --feature_matching (the matched features would be of augmented reals)")
  require(cfg.g_steps == 1 or cfg.historical_averaging == 0, "g_steps", cfg.g_steps,
          "historical averaging counts one G update per iteration: use --g_steps=1 with --historical_averaging")


def check_metric(cfg: Config, name: str, num_samples: int, flag: str = "eval_samples"):
  """`name` can be computed for this run on `num_samples` samples (what its MetricSpec declares)."""
  kind = cfg.dataset_spec.kind
  valid = [s.name for s in metrics.METRICS if s.training and kind in s.data and s.applies_to(cfg.dataset)]
  require(name in metrics.METRICS, "eval_metrics", cfg.eval_metrics,
          f"unknown metric {name}; valid for {kind} data: {', '.join(valid)}")
  spec = metrics.METRICS.get(name)
  require(spec.training, "eval_metrics", cfg.eval_metrics,
          f"{name} is computed by experiments/evaluate.py only, not during training; valid: {', '.join(valid)}")
  require(kind in spec.data, "eval_metrics", cfg.eval_metrics,
          f"{name} applies to {' or '.join(spec.data)} data, and --dataset={cfg.dataset} is {kind} data"
          + (" (toy runs always report modes)" if kind == "toy" else ""))
  require(spec.applies_to(cfg.dataset), "eval_metrics", cfg.eval_metrics,
          f"{name} is a metric of --dataset={' | '.join(spec.datasets)}, not of --dataset={cfg.dataset}")
  require(spec.network is None or cfg.eval_features in ("auto", spec.network), "eval_metrics", cfg.eval_metrics,
          f"{name} needs the {spec.network} feature network: drop it or use --eval_features={spec.network}")
  require(not spec.requires or getattr(cfg, spec.requires), "eval_metrics", cfg.eval_metrics,
          f"{name} needs --{spec.requires}: drop {name} or set --{spec.requires}")
  require(metrics.HELD_OUT not in spec.needs or data.held_out_dataset(cfg.dataset) is not None, "eval_metrics",
          cfg.eval_metrics, f"{name} needs a held-out split, and --dataset={cfg.dataset} has none: drop {name}")
  need = spec.fewest_samples(cfg)
  require(num_samples >= need, flag, num_samples, f"--eval_metrics={cfg.eval_metrics} needs at least {need} "
          f"samples for {name}" + (" (--kid_subset_size)" if name == "kid" else ""))


def _check_evaluation(cfg: Config):
  _one_of(cfg, "eval_features", config_lib.EVAL_FEATURES)
  _positive(cfg, "kid_subset_size")
  require(cfg.theory_samples == 0 or cfg.theory_samples >= 1000, "theory_samples", cfg.theory_samples,
          "0 (off) or at least 1000")
  for name in cfg.eval_metric_names:
    check_metric(cfg, name, cfg.eval_samples)


def _check_workdir(cfg: Config):
  path = cfg.workdir
  require(bool(path), "workdir", path, "required: a directory for this run's outputs")
  if "://" in path:
    return
  require(not os.path.exists(path) or os.path.isdir(path), "workdir", path,
          "is a file, not a directory: pass a directory (it is created if missing)")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(os.path.abspath(existing))
  require(os.access(existing, os.W_OK | os.X_OK), "workdir", path,
          f"{existing} is not writable: pass a --workdir you can write to")


def validate(cfg: Config, workdir: bool = True) -> Config:
  """Returns `cfg` unchanged if every field is usable; raises ConfigError otherwise. `workdir=False`
  skips the workdir's checks (a run read back for sampling)."""
  if workdir:
    _check_workdir(cfg)
  _check_names(cfg)
  _check_numbers(cfg)
  _check_semi_supervised(cfg)
  _check_evaluation(cfg)
  return cfg


def _typed(field, value):
  """`value` as the field's type (an int is a float too, a list of ints a tuple); a ConfigError otherwise."""
  default = field.default
  if isinstance(default, tuple):
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    value = tuple(value) if ok else value
  elif isinstance(default, bool):
    ok = isinstance(value, bool)
  elif isinstance(default, float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    value = float(value) if ok else value
  elif field.name == "steps_per_call":  # a count or 'auto'; library callers pass ints
    ok = isinstance(value, (str, int)) and not isinstance(value, bool)
  else:
    ok = isinstance(value, type(default)) and not isinstance(value, bool)
  require(ok, field.name, repr(value), f"must be {type(default).__name__} (a {type(value).__name__} was stored)")
  return value


def config_from_record(record) -> Config:
  """The Config of a stored dict (a checkpoint's metadata), as strictly as flags: every value of the
  field's type and valid; names of earlier versions translated, unknown keys ignored."""
  require(isinstance(record, dict), "config", type(record).__name__, "a checkpoint's config is a JSON object")
  record = {config_lib.ALIASES.get(k, k): v for k, v in record.items()}
  values = {k: _typed(config_lib.FIELDS[k], v) for k, v in record.items() if k in config_lib.FIELDS}
  return validate(Config(**values), workdir=False)
