"""The typed configuration of one run.

`experiments/run.py` turns absl flags into a `Config` (one flag per field; `help_text(field)` is its
help, which for --model, --dataset and --eval_metrics lists what the registries hold). Each field
declares in its metadata what changing it on resume means (`resume`): SHAPE (the checkpoint cannot
be resumed), TRAJECTORY (refused without --allow_config_change, then recorded) or FREE, or a
function of the values for the fields whose group depends on them. The library never reads flags;
`validate` (gan_jax/validation.py) rejects every bad value with a ConfigError.
"""
import dataclasses

from gan_jax import data, metrics, nets
from gan_jax.errors import ConfigError  # noqa: F401 - what validate raises, importable from here

SHAPE, TRAJECTORY, FREE = "shape", "trajectory", "free"  # the resume policies (gan_jax/resume.py)

LOSS_NAMES = ("nonsaturating", "minimax", "maximum_likelihood", "wgan", "hinge", "lsgan")  # = tuple(losses.LOSSES), tested
D_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "maxout")
G_ACTIVATIONS = ("relu", "tanh")
MLP_BIAS_INITS = ("zeros", "fan_in_uniform")  # = gan_jax.nets.mlp.BIAS_INITS, tested
OUTPUT_ACTIVATIONS = ("linear", "tanh", "sigmoid")
LR_SCHEDULES = ("constant", "cosine", "linear")
RESOLUTIONS = (28, 32, 64)
EVAL_FEATURES = ("auto", "digits", "inception")
CONDITIONINGS = ("none", "concat", "acgan", "projection")
NAN_POLICIES = ("stop", "ignore")
COMPUTE_DTYPES = ("f32", "bf16")
EMA_STATISTICS = ("running", "ema", "standing")
REPLICA_MODES = ("auto", "vmap", "loop")
UPSAMPLINGS = ("bilinear", "nearest")  # = gan_jax.nets.resnet.UPSAMPLINGS, tested
# --sweep's fields: scalars the step reads only as numbers (learning rates, loss weights), so one
# compiled step serves every value (gan_jax/replicas.py).
SWEEPABLE = ("lr_g", "lr_d", "gp_weight", "r1_weight", "acgan_weight", "label_smoothing")
SWEEP_OFF_AT_ZERO = ("gp_weight", "r1_weight")  # 0 removes the term from the step: no sweep value
STANDING_BATCHES = 20  # batches of --batch_size latents for --ema_statistics=standing
ALIASES = {"precision": "compute_dtype"}  # flag names of earlier versions -> fields (checkpoints too)
REGISTRIES = {"model": nets.MODELS.describe, "dataset": data.DATASETS.describe, "eval_metrics": metrics.describe}


def _names(names) -> str:
  return " | ".join(names)


def _field(default, help_text, resume, **kw):
  return dataclasses.field(default=default, metadata={"help": help_text, "resume": resume}, **kw)


def _on_off_is_shape(saved, current, cfg):
  """Turning historical averaging (or D's EMA, or LeCam's anchors) on or off adds or drops state; reweighing it
  changes the trajectory."""
  del cfg
  return SHAPE if (saved > 0) != (current > 0) else TRAJECTORY


def _schedule_length(saved, current, cfg):
  """train_steps sets the length of a decaying schedule (trajectory), and nothing else (free)."""
  del saved, current
  return TRAJECTORY if cfg.lr_schedule in ("cosine", "linear") else FREE


def _ema_statistics_policy(saved, current, cfg):
  """ema adds state (the statistics' EMA); running and standing only change what G_ema samples with."""
  del cfg
  return SHAPE if (saved == "ema") != (current == "ema") else FREE


@dataclasses.dataclass(frozen=True)
class Config:
  """All settings of a run."""
  workdir: str = _field("", "Directory for metrics, samples and checkpoints (required).", FREE)
  seed: int = _field(0, "One seed fixes the whole run: init, latents, data order.", TRAJECTORY)
  seeds: tuple = _field((), "N runs in one program, e.g. 0,1,2,3,4: run K is the run of --seed=K, its outputs "
                        "in WORKDIR/seed_K/, the runs' mean +- std in WORKDIR/runs.md (gan_jax/replicas.py); "
                        "empty: one run of --seed.", SHAPE)
  sweep: str = _field("", "One scalar swept in one program, e.g. lr_d=1e-4,2e-4,4e-4 (with --seeds: every "
                      "value for every seed); sweepable: " + ", ".join(SWEEPABLE) + ".", SHAPE)
  replica_mode: str = _field("auto", "How --seeds steps its runs: " + _names(REPLICA_MODES) + " (vmap: one "
                             "batched step; loop: the runs one after another inside one jit, each its single run's step; "
                             "auto: loop on CPU, vmap on accelerators, as measured in benchmarks/results/replicas.md).",
                             TRAJECTORY)
  # Data.
  dataset: str = _field("ring", "The data:", SHAPE)
  data_dir: str = _field("", "tfds data_dir (where `tfds build` put the data).", FREE)
  data_scale: float = _field(1.0, "Toy data: train on (x - data_shift) * data_scale; samples are mapped back "
                             "for metrics.", TRAJECTORY)
  data_shift: float = _field(0.0, "Toy data: subtracted before --data_scale (e.g. the data's mean, so that D's "
                             "ReLU kinks, all at 0 when initialised, fall inside the data).", TRAJECTORY)
  resolution: int = _field(32, "Image side in pixels for image datasets: " + _names(map(str, RESOLUTIONS)) + ".",
                           SHAPE)
  channels: int = _field(0, "Image channels: 1 or 3; 0: from the data (a folder is RGB if any image has "
                         "colour; grayscale, palette and RGBA images are converted and the log says so).", SHAPE)
  # Model.
  model: str = _field("mlp", "The networks:", SHAPE)
  latent_dim: int = _field(100, "Size of z.", SHAPE)
  latent_distribution: str = _field("normal", "p_z: normal (z ~ N(0, I)) | uniform (z ~ U[-1, 1]^d, as Goodfellow et "
                                    "al. 2014 and VEEGAN's Stacked MNIST).", TRAJECTORY)
  g_hidden: tuple = _field((256, 256, 256), "MLP generator hidden widths.", SHAPE)
  d_hidden: tuple = _field((256, 256, 256), "MLP discriminator hidden widths.", SHAPE)
  g_activation: str = _field("relu", "MLP generator units: " + _names(G_ACTIVATIONS) + " (tanh: Metz et al. "
                             "2017's 2-D nets).", TRAJECTORY)
  d_activation: str = _field("relu", "MLP discriminator units: " + _names(D_ACTIVATIONS) + ".", SHAPE)
  maxout_pieces: int = _field(5, "Pieces per maxout unit.", SHAPE)
  mlp_bias_init: str = _field("zeros", "MLP G and D dense layers' initial biases: " + _names(MLP_BIAS_INITS) + " (zeros: "
                              "flax's; fan_in_uniform: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch nn.Linear's, so a "
                              "1-D input's ReLU kinks start spread over the data instead of all at 0).", TRAJECTORY)
  d_input_noise: float = _field(0.6, "improved_gan: the std of the Gaussian noise D adds to its inputs in "
                                "training (improved-gan: 0.3 on pixels in [0, 1], so 0.6 on ours in [-1, 1]).",
                                TRAJECTORY)
  d_dropout: float = _field(0.0, "Dropout rate on the MLP discriminator's inputs and hidden units.", TRAJECTORY)
  g_output: str = _field("linear", "Generator output activation: " + _names(OUTPUT_ACTIVATIONS)
                         + " (images use tanh).", SHAPE)
  width: int = _field(64, "Base width: channels of G's last hidden layer (and D's first, unless --d_width).", SHAPE)
  d_width: int = _field(0, "D's base width: channels of its first layer (0: --width; resnet: --width / 2).", SHAPE)
  upsample: str = _field("bilinear", "How the ResNet G's blocks upsample: bilinear (Mimicry's) | nearest (Chainer's "
                         "SNGAN, StudioGAN).", TRAJECTORY)
  spectral_norm: bool = _field(False, "Spectral normalisation of every layer of D (Miyato et al. 2018; the "
                               "projection embedding and the AC-GAN head included; replaces batch norm in the "
                               "DCGAN D); power-iteration state is checkpointed.", SHAPE)
  bn_sync: bool = _field(True, "Batch-norm statistics over the global batch (True) or per device.", TRAJECTORY)
  num_devices: int = _field(0, "Devices to train on (0: all devices of all processes).", FREE)
  pack: int = _field(1, "PacGAN packing: D judges `pack` samples at once (Lin et al. 2018).", SHAPE)
  virtual_batch_norm: int = _field(0, "Virtual batch norm in G (Salimans et al. 2016) with a reference batch "
                                   "of this many latents fixed at init (replaces DCGAN's batch norm); 0: off.", SHAPE)
  minibatch_discrimination: int = _field(0, "Minibatch discrimination kernels in D's last layer "
                                         "(Salimans et al. 2016); 0: off.", SHAPE)
  conditioning: str = _field("none", "Label conditioning: " + _names(CONDITIONINGS) + " (concat: one-hot "
                             "into G and D; acgan: auxiliary classifier; projection: projection D). Needs a "
                             "labelled dataset.", SHAPE)
  acgan_weight: float = _field(1.0, "Weight of the AC-GAN class log-likelihood terms.", TRAJECTORY)
  labeled_examples: int = _field(0, "Semi-supervised GAN (Salimans et al. 2016; NIPS 2016 tutorial sec. 5.4): D is "
                                 "a K+1-class classifier trained on this many labelled training examples (N/K per "
                                 "class, drawn by --seed, listed in WORKDIR/labeled_examples.json; the whole "
                                 "training set: every label) beside the GAN game on every example; G's feature "
                                 "matching reads reals of its own (improved-gan's second pass); 0: off.", SHAPE)
  unlabeled_weight: float = _field(1.0, "With --labeled_examples: L_D = L_labelled + w L_unlabelled, L_unlabelled = "
                                   "1/2 of --loss's D loss on D's real/fake logit (improved-gan's "
                                   "--unlabeled_weight); 0: a plain classifier of the labelled examples (D alone is "
                                   "trained; no fakes are drawn).", TRAJECTORY)
  # Objective and optimisation.
  loss: str = _field("nonsaturating", _names(LOSS_NAMES) + ".", TRAJECTORY)
  d_steps: int = _field(1, "k: discriminator steps per iteration.", TRAJECTORY)
  g_steps: int = _field(1, "Generator steps per iteration, after the D steps (VEEGAN's Stacked MNIST: 2).", TRAJECTORY)
  unroll_steps: int = _field(0, "Unrolled GAN (Metz et al. 2017): G's loss against D after K simulated "
                             "updates of D with its own optimiser, differentiated through; 0: off.", TRAJECTORY)
  unroll_stop_gradient: bool = _field(False, "With --unroll_steps: G judged by the unrolled D without "
                                      "differentiating through its updates (the paper's first-order variant).",
                                      TRAJECTORY)
  share_fakes: bool = _field(False, "The last D step and the G step use the same G(z) (one G forward "
                             "per iteration, the reference DCGAN loop); off: each step draws its own z.", TRAJECTORY)
  label_smoothing: float = _field(0.0, "One-sided label smoothing: real targets 1 - s.", TRAJECTORY)
  diffaugment: str = _field("", "DiffAugment (Zhao et al. 2020): any of color,translation,cutout, applied with "
                            "per-image parameters to every image D judges, real and fake, in both updates (and "
                            "to the images R1 / GP differentiate at); '': off. Image data.", TRAJECTORY)
  shift_reals: int = _field(0, "Data augmentation of the real images: every real image of a batch (the labelled "
                           "ones included) shifted by up to this many pixels along each axis, black (-1) shifted "
                           "in, a shift per image and step (in the training loop's train_step); fakes untouched, "
                           "so G learns the shifted data. 0: off. Image data.", TRAJECTORY)
  shift_ramp: int = _field(0, "With --shift_reals: over the first R iterations each real image is shifted with "
                           "probability (t + 1) / R (left in place otherwise), every image from R on; 0: every "
                           "image from the start.", TRAJECTORY)
  instance_noise: float = _field(0.0, "Instance noise (Sonderby et al. 2017; Arjovsky & Bottou 2017): every image D "
                                 "judges in training, real, fake or labelled, gets Gaussian noise of this std added, "
                                 "in both players' updates; 0: off.", TRAJECTORY)
  instance_noise_steps: int = _field(0, "With --instance_noise: the iteration T by which its std has fallen "
                                     "linearly to 0 (from --instance_noise_hold on), 0 after; 0: the same std "
                                     "throughout.", TRAJECTORY)
  instance_noise_hold: int = _field(0, "With --instance_noise_steps=T: the std is held at --instance_noise for "
                                    "the first S < T iterations, then falls linearly to 0 at T.", TRAJECTORY)
  shift_fakes: bool = _field(False, "With --shift_reals: G's fakes shifted by the same law before D judges them, in "
                             "both players' updates (G then learns the unshifted digits).", TRAJECTORY)
  feature_matching: bool = _field(False, "Feature-matching generator loss ||E f(x) - E f(G(z))||^2 on D's "
                                  "last hidden layer (Salimans et al. 2016) instead of --loss's G loss.", TRAJECTORY)
  historical_averaging: float = _field(0.0, "Historical averaging weight w: each player's cost gains "
                                       "w ||theta - mean of its past theta||^2 (Salimans et al. 2016); 0: off.",
                                       _on_off_is_shape)
  weight_clip: float = _field(0.0, "WGAN weight clipping: D's weights clipped to [-c, c] after each "
                              "update (Arjovsky et al. 2017: 0.01); 0: off.", TRAJECTORY)
  gp_weight: float = _field(0.0, "WGAN-GP gradient penalty weight lambda (10 in the paper); 0: off.", TRAJECTORY)
  r1_weight: float = _field(0.0, "R1 penalty weight gamma: adds gamma/2 E||grad D(x_real)||^2; 0: off.", TRAJECTORY)
  lecam_weight: float = _field(0.0, "LeCam regularisation weight lambda (Tseng et al. 2021; 0.3 for their BigGAN on "
                               "CIFAR): D's loss gains lambda (E relu(D(x) - alpha_F)^2 + E relu(alpha_R - "
                               "D(G(z)))^2), alpha the moving averages of D's mean real and fake logits; 0: off.",
                               _on_off_is_shape)
  lecam_decay: float = _field(0.99, "The decay of --lecam_weight's moving averages (zero-debiased, as the paper's "
                              "StyleGAN2 code).", TRAJECTORY)
  consistency_weight: float = _field(0.0, "Balanced consistency regularisation weight lambda (bCR, Zhao et al. 2020; "
                                     "10 in the paper): D's loss gains lambda (E (D(x) - D(T x))^2 + E (D(G(z)) - "
                                     "D(T G(z)))^2) on its logits, T a shift by up to 1/8 of the image along each axis "
                                     "(black shifted in), drawn per image; 0: off.", TRAJECTORY)
  batch_size: int = _field(64, "Global batch size (all devices together).", TRAJECTORY)
  train_steps: int = _field(10000, "Iterations to train for (each --d_steps D and --g_steps G steps).", _schedule_length)
  lr_g: float = _field(2e-4, "Generator Adam learning rate.", TRAJECTORY)
  lr_d: float = _field(2e-4, "Discriminator Adam learning rate.", TRAJECTORY)
  beta1: float = _field(0.5, "Adam beta1 (DCGAN: 0.5).", TRAJECTORY)
  beta2: float = _field(0.999, "Adam beta2.", TRAJECTORY)
  adam_eps_root_g: float = _field(0.0, "G's Adam epsilon inside the square root: m_hat / (sqrt(v_hat + eps_root) "
                                  "+ 1e-8), damping the steps of parameters whose gradients are below ~sqrt(eps_root) "
                                  "(improved-gan's Adam: 1e-8 inside, none outside); 0: optax's Adam.", TRAJECTORY)
  adam_eps_root_d: float = _field(0.0, "D's Adam epsilon inside the square root, as --adam_eps_root_g "
                                  "(0 with --unroll_steps: a tiny one, for a derivative at v = 0).", TRAJECTORY)
  lr_schedule: str = _field("constant", _names(LR_SCHEDULES) + " (cosine, linear: decay to 0 at train_steps).", TRAJECTORY)
  lr_warmup: int = _field(0, "Iterations over which both players' rates rise linearly to --lr_g / --lr_d (the "
                          "first update at 1/W of them), before --lr_schedule takes over; 0: none.", TRAJECTORY)
  ema_decay: float = _field(0.0, "EMA of G's weights for samples and evaluation; 0 turns it off.", TRAJECTORY)
  d_ema_decay: float = _field(0.0, "EMA of D's weights (Polyak averaging), kept in the state: the semi-supervised "
                               "classifier is evaluated with it (improved-gan tests its averaged D); 0: off.",
                               _on_off_is_shape)
  ema_statistics: str = _field("running", "The batch-norm statistics G_ema samples with: " + _names(EMA_STATISTICS)
                               + " (running: the training G's running averages; ema: their EMA at --ema_decay, "
                               "kept in the state; standing: recomputed for G_ema's own weights from "
                               f"{STANDING_BATCHES} batches of z at each evaluation, as BigGAN does).",
                               _ema_statistics_policy)
  steps_per_call: str = _field("auto", "Training steps per jitted call (a lax.scan over steps): a number, or "
                               "auto (100; 1 for convolutional models on CPU, where a scan over conv steps "
                               "compiles for minutes). Evaluation, checkpoint and log intervals shorten a call "
                               "where needed.", FREE)
  compute_dtype: str = _field("f32", "The computation dtype: " + _names(COMPUTE_DTYPES) + " (bf16: convolutions, "
                              "matmuls and activations in bfloat16; parameters, optimiser state, batch-norm "
                              "statistics, losses and gradient penalties in float32). Was --precision.", TRAJECTORY)
  # Evaluation, logging, checkpoints.
  eval_every: int = _field(1000, "Steps between evaluations (metrics.jsonl, samples).", FREE)
  eval_samples: int = _field(2500, "Generator samples per evaluation (PacGAN protocol: 2,500).", FREE)
  eval_metrics: str = _field("", "Metrics at each evaluation, comma-separated (toy runs always report modes):",
                             FREE)
  eval_features: str = _field("auto", "Feature network of the image metrics: " + _names(EVAL_FEATURES) + " (auto: "
                              "the shipped digit CNN for 1-channel data, pytorch-fid's Inception for RGB).", FREE)
  inception_weights: str = _field("", "pytorch-fid's pt_inception-2015-12-05-6726825d.pth ('': where pytorch-fid "
                                  "keeps it, ~/.cache/torch/hub/checkpoints/); read safely once, then cached.", FREE)
  kid_subset_size: int = _field(1000, "KID subset size (torch-fidelity's 1,000; 100 subsets); --eval_samples "
                                "must be at least this.", FREE)
  theory_samples: int = _field(100_000, "Toy data: G samples per evaluation for jsd, value and value_at_optimum, "
                               "and D's surface in the pictures (0: off). The JSD's stated error holds from "
                               "100,000.", FREE)
  log_every: int = _field(100, "Steps between console progress lines.", FREE)
  checkpoint_every: int = _field(1000, "Steps between checkpoints.", FREE)
  keep_checkpoints: int = _field(2, "Newest checkpoints kept.", FREE)
  checkpoint_timeout: int = _field(1200, "Seconds a checkpoint save may wait for the other processes of a "
                                   "multi-process job before the run stops with an error naming the directory.", FREE)
  nan_policy: str = _field("stop", "On a non-finite loss or gradient: " + _names(NAN_POLICIES) +
                           " (stop: keep the last good checkpoint newest).", FREE)
  # Resuming.
  restart: bool = _field(False, "Start from step 0 although the workdir holds a run: its outputs are moved "
                         "to WORKDIR/previous_<time>/ (kept, never deleted).", FREE)
  allow_config_change: bool = _field(False, "Resume although flags that change the run's trajectory (seed, "
                                     "losses, learning rates, batch size, ...) or the data differ from the "
                                     "checkpoint's; the changes are recorded in WORKDIR/config_history.jsonl.", FREE)

  @property
  def dataset_spec(self) -> data.DatasetSpec:
    return data.dataset_spec(self.dataset)

  @property
  def is_toy(self) -> bool:
    return self.dataset_spec.kind == data.TOY

  @property
  def eval_metric_names(self) -> tuple:
    """--eval_metrics as registry names, in order, earlier names (score, prdc) translated; when empty,
    the dataset's own (DatasetSpec.evaluate_with: Stacked MNIST's modes)."""
    return metrics.metric_names(self.eval_metrics) or self.dataset_spec.evaluate_with

  def feature_network(self, channels: int) -> str:
    """'digits' or 'inception': --eval_features, or by the data's channels when auto."""
    if self.eval_features != "auto":
      return self.eval_features
    return "digits" if channels == 1 else "inception"


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _models_reading(field: str) -> list:
  return [spec.name for spec in nets.MODELS if field in spec.options]


def help_text(field: str) -> str:
  """The flag's help: the field's own, the registry's entries for --model / --dataset / --eval_metrics,
  and which models read it when only some do."""
  text = FIELDS[field].metadata["help"]
  if field in REGISTRIES:
    text += " " + REGISTRIES[field]() + "."
  readers = _models_reading(field)
  if readers:
    text += f" (Used by --model={' | '.join(readers)}.)"
  return text


def resume_policy(field: str, saved, current, cfg: Config) -> str:
  """SHAPE, TRAJECTORY or FREE: what resuming a checkpoint whose `field` was `saved` means now."""
  policy = FIELDS[field].metadata["resume"]
  return policy(saved, current, cfg) if callable(policy) else policy


def validate(cfg: Config) -> Config:
  """Returns `cfg` unchanged if every field is usable; raises ConfigError otherwise (gan_jax/validation.py)."""
  from gan_jax import validation
  return validation.validate(cfg)


def to_dict(cfg: Config) -> dict:
  """JSON-ready: tuples become lists."""
  d = dataclasses.asdict(cfg)
  return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def parse_sweep(text: str):
  """'lr_d=1e-4,2e-4' -> ('lr_d', (1e-4, 2e-4)); raises ValueError naming what is wrong."""
  name, sep, values = text.partition("=")
  if not sep or name not in SWEEPABLE:
    raise ValueError(f"a sweep is name=v1,v2,... with name one of {', '.join(SWEEPABLE)}")
  try:
    numbers = tuple(float(v) for v in values.split(","))
  except ValueError:
    raise ValueError(f"the values of {name} must be numbers, comma-separated") from None
  if len(set(numbers)) != len(numbers):
    raise ValueError("the values must be distinct")
  if name in SWEEP_OFF_AT_ZERO and not all(numbers):
    raise ValueError(f"{name}=0 removes the term from the step: sweep values above 0 (run 0 on its own)")
  return name, numbers


def config_from_dict(d: dict) -> Config:
  """The inverse of `to_dict`; earlier names are translated (ALIASES), keys that are no fields ignored."""
  d = {ALIASES.get(k, k): v for k, v in d.items()}
  return Config(**{k: tuple(v) if isinstance(FIELDS[k].default, tuple) else v for k, v in d.items() if k in FIELDS})
