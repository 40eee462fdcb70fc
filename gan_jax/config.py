"""The typed configuration of one run, and its validation.

`experiments/run.py` turns absl flags into a `Config` (one flag per field, the
field's metadata gives the help text); the library never reads flags. Every bad
value is rejected by `validate` with a `ConfigError` naming the flag, the value
and what is allowed.
"""
import dataclasses
import math
import os

from gan_jax.errors import ConfigError

# The names each registry answers to, written once; tests/test_config.py checks them against the
# registries themselves (losses.LOSSES, nets.NETS, data.toy.TOY, metrics.IMAGE_METRICS, ...).
LOSS_NAMES = ("nonsaturating", "minimax", "wgan", "hinge", "lsgan")
MODEL_NAMES = ("mlp", "dcgan")
TOY_DATASETS = ("ring", "grid", "gauss1d")
IMAGE_DATASETS = ("mnist5k[:SPLIT]", "tfds:NAME[:SPLIT]", "folder:PATH")
D_ACTIVATIONS = ("relu", "leaky_relu", "maxout")
OUTPUT_ACTIVATIONS = ("linear", "tanh", "sigmoid")
LR_SCHEDULES = ("constant", "cosine")
RESOLUTIONS = (28, 32, 64)
IMAGE_METRICS = ("fid", "kid", "is", "pr", "dc", "classes")
METRIC_ALIASES = {"score": ("is",), "prdc": ("pr", "dc")}  # the names of earlier versions
EVAL_FEATURES = ("auto", "digits", "inception")
CONDITIONINGS = ("none", "concat", "acgan", "projection")
NAN_POLICIES = ("stop", "ignore")
PRECISIONS = ("f32", "bf16")


def _names(names) -> str:
  return " | ".join(names)


def _field(default, help_text, **kw):
  return dataclasses.field(default=default, metadata={"help": help_text}, **kw)


@dataclasses.dataclass(frozen=True)
class Config:
  """All settings of a run. What may change on resume: SHAPE_FIELDS, TRAJECTORY_FIELDS, FREE_FIELDS."""
  workdir: str = _field("", "Directory for metrics, samples and checkpoints (required).")
  seed: int = _field(0, "One seed fixes the whole run: init, latents, data order.")
  # Data.
  dataset: str = _field("ring", _names(TOY_DATASETS + IMAGE_DATASETS) + ".")
  data_dir: str = _field("", "tfds data_dir (where `tfds build` put the data).")
  data_scale: float = _field(1.0, "Toy data: train on x * data_scale; samples are scaled back for metrics.")
  resolution: int = _field(32, "Image side in pixels for image datasets: " + _names(map(str, RESOLUTIONS)) + ".")
  channels: int = _field(0, "Image channels: 1 or 3; 0: from the data (a folder is RGB if any image has "
                         "colour; grayscale, palette and RGBA images are converted and the log says so).")
  # Model.
  model: str = _field("mlp", _names(MODEL_NAMES) + ": the MLPs of Goodfellow et al. 2014, the DCGAN of "
                      "Radford et al. 2015.")
  latent_dim: int = _field(100, "Size of z ~ N(0, I).")
  g_hidden: tuple = _field((256, 256, 256), "MLP generator hidden widths.")
  d_hidden: tuple = _field((256, 256, 256), "MLP discriminator hidden widths.")
  d_activation: str = _field("relu", "MLP discriminator units: " + _names(D_ACTIVATIONS) + ".")
  maxout_pieces: int = _field(5, "Pieces per maxout unit.")
  d_dropout: float = _field(0.0, "Dropout rate on the MLP discriminator's inputs and hidden units.")
  g_output: str = _field("linear", "Generator output activation: " + _names(OUTPUT_ACTIVATIONS)
                         + " (images use tanh).")
  width: int = _field(64, "DCGAN base width: channels of G's last hidden layer and D's first.")
  spectral_norm: bool = _field(False, "Spectral normalisation of D's layers (Miyato et al. 2018; "
                               "replaces batch norm in the DCGAN D); power-iteration state is checkpointed.")
  bn_sync: bool = _field(True, "Batch-norm statistics over the global batch (True) or per device.")
  num_devices: int = _field(0, "Devices to train on (0: all devices of all processes).")
  pack: int = _field(1, "PacGAN packing: D judges `pack` samples at once (Lin et al. 2018).")
  virtual_batch_norm: int = _field(0, "Virtual batch norm in G (Salimans et al. 2016) with a reference batch "
                                   "of this many latents fixed at init (replaces DCGAN's batch norm); 0: off.")
  minibatch_discrimination: int = _field(0, "Minibatch discrimination kernels in D's last layer "
                                         "(Salimans et al. 2016); 0: off.")
  conditioning: str = _field("none", "Label conditioning: " + _names(CONDITIONINGS) + " (concat: one-hot "
                             "into G and D; acgan: auxiliary classifier; projection: projection D). Needs a "
                             "labelled dataset.")
  acgan_weight: float = _field(1.0, "Weight of the AC-GAN class log-likelihood terms.")
  # Objective and optimisation.
  loss: str = _field("nonsaturating", _names(LOSS_NAMES) + ".")
  d_steps: int = _field(1, "k: discriminator steps per generator step.")
  share_fakes: bool = _field(False, "The last D step and the G step use the same G(z) (one G forward "
                             "per iteration, the reference DCGAN loop); off: each step draws its own z.")
  label_smoothing: float = _field(0.0, "One-sided label smoothing: real targets 1 - s.")
  feature_matching: bool = _field(False, "Feature-matching generator loss ||E f(x) - E f(G(z))||^2 on D's "
                                  "last hidden layer (Salimans et al. 2016) instead of --loss's G loss.")
  historical_averaging: float = _field(0.0, "Historical averaging weight w: each player's cost gains "
                                       "w ||theta - mean of its past theta||^2 (Salimans et al. 2016); 0: off.")
  weight_clip: float = _field(0.0, "WGAN weight clipping: D's weights clipped to [-c, c] after each "
                              "update (Arjovsky et al. 2017: 0.01); 0: off.")
  gp_weight: float = _field(0.0, "WGAN-GP gradient penalty weight lambda (10 in the paper); 0: off.")
  r1_weight: float = _field(0.0, "R1 penalty weight gamma: adds gamma/2 E||grad D(x_real)||^2; 0: off.")
  batch_size: int = _field(64, "Global batch size (all devices together).")
  train_steps: int = _field(10000, "Generator steps to train for.")
  lr_g: float = _field(2e-4, "Generator Adam learning rate.")
  lr_d: float = _field(2e-4, "Discriminator Adam learning rate.")
  beta1: float = _field(0.5, "Adam beta1 (DCGAN: 0.5).")
  beta2: float = _field(0.999, "Adam beta2.")
  lr_schedule: str = _field("constant", _names(LR_SCHEDULES) + " (cosine: decay to 0 at train_steps).")
  ema_decay: float = _field(0.0, "EMA of G's weights for samples and evaluation; 0 turns it off.")
  steps_per_call: str = _field("auto", "Training steps per jitted call (a lax.scan over steps): a number, or "
                               "auto (100; 1 for conv nets on CPU, where a scan over conv steps compiles for "
                               "minutes). Evaluation, checkpoint and log intervals shorten a call where needed.")
  precision: str = _field("f32", "Compute precision: " + _names(PRECISIONS) + " (bf16: convolutions, matmuls "
                          "and activations in bfloat16; parameters, optimiser state, batch-norm statistics, "
                          "losses and gradient penalties in float32).")
  # Evaluation, logging, checkpoints.
  eval_every: int = _field(1000, "Steps between evaluations (metrics.jsonl, samples).")
  eval_samples: int = _field(2500, "Generator samples per evaluation (PacGAN protocol: 2,500).")
  eval_metrics: str = _field("", "Image metrics at each eval, comma-separated: " + ", ".join(IMAGE_METRICS)
                             + " (fid; kid in units of 1e-3; is, the Inception Score; pr, precision and recall; "
                             "dc, density and coverage; classes, the digit-class histogram).")
  eval_features: str = _field("auto", "Feature network of the image metrics: " + _names(EVAL_FEATURES) + " (auto: "
                              "the shipped digit CNN for 1-channel data, pytorch-fid's Inception for RGB).")
  inception_weights: str = _field("", "pytorch-fid's pt_inception-2015-12-05-6726825d.pth ('': where pytorch-fid "
                                  "keeps it, ~/.cache/torch/hub/checkpoints/); read safely once, then cached.")
  kid_subset_size: int = _field(1000, "KID subset size (torch-fidelity's 1,000; 100 subsets); --eval_samples "
                                "must be at least this.")
  theory_samples: int = _field(100_000, "Toy data: G samples per evaluation for jsd, value and value_at_optimum, "
                               "and D's surface in the pictures (0: off). The JSD's stated error holds from 100,000.")
  log_every: int = _field(100, "Steps between console progress lines.")
  checkpoint_every: int = _field(1000, "Steps between checkpoints.")
  keep_checkpoints: int = _field(2, "Newest checkpoints kept.")
  checkpoint_timeout: int = _field(1200, "Seconds a checkpoint save may wait for the other processes of a "
                                   "multi-process job before the run stops with an error naming the directory.")
  nan_policy: str = _field("stop", "On a non-finite loss or gradient: " + _names(NAN_POLICIES) +
                           " (stop: keep the last good checkpoint newest).")
  # Resuming.
  restart: bool = _field(False, "Start from step 0 although the workdir holds a run: its outputs are moved "
                         "to WORKDIR/previous_<time>/ (kept, never deleted).")
  allow_config_change: bool = _field(False, "Resume although flags that change the run's trajectory (seed, "
                                     "losses, learning rates, batch size, ...) differ from the checkpoint's; "
                                     "the changes are recorded in WORKDIR/config_history.jsonl.")

  @property
  def is_toy(self) -> bool:
    return self.dataset in TOY_DATASETS

  @property
  def eval_metric_names(self) -> tuple:
    """--eval_metrics as registry names, in order, earlier names (score, prdc) translated."""
    names = []
    for name in (n.strip() for n in self.eval_metrics.split(",") if n.strip()):
      for n in METRIC_ALIASES.get(name, (name,)):
        if n not in names:
          names.append(n)
    return tuple(names)

  def feature_network(self, channels: int) -> str:
    """'digits' or 'inception': --eval_features, or by the data's channels when auto."""
    if self.eval_features != "auto":
      return self.eval_features
    return "digits" if channels == 1 else "inception"


def _require(ok: bool, flag: str, value, allowed: str):
  if not ok:
    raise ConfigError(flag, value, allowed)


def _one_of(cfg: Config, flag: str, choices):
  value = getattr(cfg, flag)
  _require(value in choices, flag, value, f"valid choices: {', '.join(map(str, choices))}")


def _positive(cfg: Config, *flags):
  for flag in flags:
    value = getattr(cfg, flag)
    _require(value > 0, flag, value, "must be a positive number")


def _in(cfg: Config, flag: str, low: float, high: float, closed_low=True):
  value = getattr(cfg, flag)
  ok = (low <= value if closed_low else low < value) and value < high
  _require(ok, flag, value, f"must lie in {'[' if closed_low else '('}{low:g}, {high:g})")


def _check_names(cfg: Config):
  for flag, names in (("loss", LOSS_NAMES), ("model", MODEL_NAMES), ("d_activation", D_ACTIVATIONS),
                      ("g_output", OUTPUT_ACTIVATIONS), ("lr_schedule", LR_SCHEDULES),
                      ("nan_policy", NAN_POLICIES), ("conditioning", CONDITIONINGS), ("precision", PRECISIONS)):
    _one_of(cfg, flag, names)
  ds = cfg.dataset
  ok_ds = ds in TOY_DATASETS or ds.split(":")[0] == "mnist5k" or (
      ds.startswith("tfds:") and len(ds) > 5) or (ds.startswith("folder:") and len(ds) > 7)
  _require(ok_ds, "dataset", ds, "valid choices: " + ", ".join(TOY_DATASETS + IMAGE_DATASETS))
  if not cfg.is_toy:
    _one_of(cfg, "resolution", RESOLUTIONS)
  _require(cfg.channels in (0, 1, 3), "channels", cfg.channels, "0 (from the data), 1 or 3")
  if cfg.model == "dcgan":
    _require(not cfg.is_toy, "model", cfg.model, f"dcgan needs an image dataset, not --dataset={ds}")
  _require(cfg.conditioning == "none" or cfg.pack == 1, "conditioning", cfg.conditioning,
           f"label conditioning works with --pack=1 (got --pack={cfg.pack})")


def _check_numbers(cfg: Config):
  for field in dataclasses.fields(Config):  # inf and nan are no learning rate, weight or scale
    value = getattr(cfg, field.name)
    if isinstance(value, float):
      _require(math.isfinite(value), field.name, value, "must be a finite number")
  spc = str(cfg.steps_per_call)
  _require(spc == "auto" or (spc.isdigit() and int(spc) > 0), "steps_per_call", spc,
           "a positive number of steps, or auto")
  _positive(cfg, "batch_size", "train_steps", "d_steps", "latent_dim", "width", "pack", "eval_every",
            "eval_samples", "log_every", "checkpoint_every", "keep_checkpoints", "checkpoint_timeout", "maxout_pieces",
            "lr_g", "lr_d",
            "data_scale")
  _require(cfg.seed >= 0, "seed", cfg.seed, "must be >= 0")
  _require(cfg.num_devices >= 0, "num_devices", cfg.num_devices, "must be 0 (all) or positive")
  for flag in ("gp_weight", "r1_weight", "weight_clip", "historical_averaging", "acgan_weight",
               "virtual_batch_norm", "minibatch_discrimination"):
    _require(getattr(cfg, flag) >= 0, flag, getattr(cfg, flag), "must be >= 0 (0 turns it off)")
  for flag in ("label_smoothing", "d_dropout", "ema_decay", "beta1"):
    _in(cfg, flag, 0.0, 1.0)
  _in(cfg, "beta2", 0.0, 1.0, closed_low=False)  # beta2 = 0 divides by |g_t|: Adam blows up
  for flag in ("g_hidden", "d_hidden"):
    value = getattr(cfg, flag)
    _require(len(value) > 0 and all(int(w) > 0 for w in value), flag, ",".join(map(str, value)),
             "a comma-separated list of positive widths")
  _require(cfg.batch_size % cfg.pack == 0, "pack", cfg.pack, f"must divide --batch_size={cfg.batch_size}")


# The fewest samples each image metric can be computed from (kid: --kid_subset_size).
MIN_EVAL_SAMPLES = {"fid": 2, "is": 10, "pr": 6, "dc": 6, "classes": 1}


def _check_evaluation(cfg: Config):
  _one_of(cfg, "eval_features", EVAL_FEATURES)
  _positive(cfg, "kid_subset_size")
  _require(cfg.theory_samples == 0 or cfg.theory_samples >= 1000, "theory_samples", cfg.theory_samples,
           "0 (off) or at least 1000")
  for name in cfg.eval_metric_names:
    _require(name in IMAGE_METRICS and not cfg.is_toy, "eval_metrics", cfg.eval_metrics,
             f"valid for image data: {', '.join(IMAGE_METRICS)} (toy runs always report modes)")
    need = cfg.kid_subset_size if name == "kid" else MIN_EVAL_SAMPLES[name]
    _require(cfg.eval_samples >= need, "eval_samples", cfg.eval_samples,
             f"--eval_metrics={cfg.eval_metrics} needs at least {need} samples for {name}"
             + (" (--kid_subset_size)" if name == "kid" else ""))
  _require("classes" not in cfg.eval_metric_names or cfg.eval_features != "inception", "eval_metrics",
           cfg.eval_metrics, "classes is the digit CNN's class histogram: drop it or use --eval_features=digits")


def _check_workdir(cfg: Config):
  path = cfg.workdir
  _require(bool(path), "workdir", path, "required: a directory for this run's outputs")
  if "://" in path:
    return
  _require(not os.path.exists(path) or os.path.isdir(path), "workdir", path,
           "is a file, not a directory: pass a directory (it is created if missing)")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(os.path.abspath(existing))
  _require(os.access(existing, os.W_OK | os.X_OK), "workdir", path,
           f"{existing} is not writable: pass a --workdir you can write to")


def validate(cfg: Config) -> Config:
  """Returns `cfg` unchanged if every field is usable; raises `ConfigError` otherwise."""
  _check_workdir(cfg)
  _check_names(cfg)
  _check_numbers(cfg)
  _check_evaluation(cfg)
  return cfg


# What may change when a run resumes from its checkpoint; every field is in exactly one group
# (tests/test_config.py checks it).
# Fields that fix the shapes of the state: a checkpoint cannot be resumed with other values.
SHAPE_FIELDS = ("model", "dataset", "resolution", "channels", "latent_dim", "g_hidden", "d_hidden",
                "d_activation", "maxout_pieces", "width", "pack", "g_output", "spectral_norm",
                "virtual_batch_norm", "minibatch_discrimination", "conditioning")
# Fields that change what the run computes from here on: refused unless --allow_config_change, and
# then recorded in WORKDIR/config_history.jsonl.
TRAJECTORY_FIELDS = ("seed", "data_scale", "d_dropout", "bn_sync", "acgan_weight", "loss", "d_steps",
                     "share_fakes", "label_smoothing", "feature_matching", "weight_clip", "gp_weight",
                     "r1_weight", "batch_size", "lr_g", "lr_d", "beta1", "beta2", "lr_schedule", "ema_decay",
                     "precision")
# Fields that change neither (where the outputs go, logging, evaluation, checkpoints, devices).
FREE_FIELDS = ("workdir", "data_dir", "num_devices", "steps_per_call", "eval_every", "eval_samples", "theory_samples",
               "eval_metrics", "eval_features", "inception_weights", "kid_subset_size", "log_every", "checkpoint_every", "keep_checkpoints", "checkpoint_timeout",
               "nan_policy", "restart",
               "allow_config_change")
# Fields whose group depends on the values: historical_averaging adds state when it turns on or
# off (shape) and only reweighs a penalty otherwise (trajectory); train_steps sets the length of a
# cosine schedule (trajectory) and nothing else (free).
CONDITIONAL_FIELDS = ("historical_averaging", "train_steps")


def resume_change(field: str, saved, current, cfg: "Config") -> str:
  """'shape', 'trajectory' or 'free': what resuming a checkpoint whose `field` was `saved` means."""
  if field == "historical_averaging":
    return "shape" if (saved > 0) != (current > 0) else "trajectory"
  if field == "train_steps":
    return "trajectory" if cfg.lr_schedule == "cosine" else "free"
  for group, fields in (("shape", SHAPE_FIELDS), ("trajectory", TRAJECTORY_FIELDS), ("free", FREE_FIELDS)):
    if field in fields:
      return group
  raise KeyError(f"field {field!r} is in no resume group of gan_jax/config.py")


def resume_changes(saved: dict, cfg: "Config") -> dict:
  """{'shape': [...], 'trajectory': [...]}: (field, saved value, current value) that differ."""
  current = to_dict(cfg)
  out = {"shape": [], "trajectory": []}
  for field, value in current.items():
    old = saved.get(field, value)
    if field in saved and old != value:
      group = resume_change(field, old, value, cfg)
      if group != "free":
        out[group].append((field, old, value))
  return out


def to_dict(cfg: Config) -> dict:
  """JSON-ready: tuples become lists."""
  d = dataclasses.asdict(cfg)
  return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def config_from_dict(d: dict) -> Config:
  """The inverse of `to_dict`; keys that are not fields (from other versions) are ignored."""
  fields = {f.name: f for f in dataclasses.fields(Config)}
  values = {k: tuple(v) if isinstance(fields[k].default, tuple) else v for k, v in d.items() if k in fields}
  return Config(**values)
