"""The metric registry (`METRICS`): what each metric computes, from what, and which way is better.

A metric is a function `(MetricInputs) -> {key: value}` in a module of this package and one
`METRICS.register(MetricSpec(...))` line here. The spec declares what the rest of the code would
otherwise infer: its inputs (features of a feature network, a real split to compare with, the held-out
split, the labels, G and D, the toy mixture), the data it applies to, the fewest samples it needs,
which way each key is better and whether it ranks the best checkpoint. Config validation,
`--helpfull`, the best-checkpoint ranking and evaluate.py's table derive from the specs. This module
imports no JAX and no SciPy: the functions load at first use.

Image metrics compare generated with real images through a feature network, `feature_fn(images
[N, R, R, C] in [-1, 1]) -> (logits [N, K], features [N, D])`: pytorch-fid's Inception (pool3, 1008
logits; `inception.py`) for RGB data, the shipped digit CNN (`digits.py`) for digits (`features.py`).
"""
import dataclasses
from typing import Callable, Optional, Union

from gan_jax.registry import Ref, Registry, resolve

TOY, IMAGE = "toy", "image"  # the kinds of data (gan_jax.data.DatasetSpec.kind)
# What a metric reads from its MetricInputs (besides the samples).
FEATURES = "features"  # the feature network's (logits, features) of the samples
REAL = "real"          # those of the real split the samples are compared with
HELD_OUT = "held_out"  # the held-out split (images never trained on)
LABELS = "labels"      # labelled data
STATE = "state"        # the networks and the training state (G, D)
MIXTURE = "mixture"    # the toy mixture's exact means and sigma


@dataclasses.dataclass(frozen=True)
class Closest:
  """Better the closer to `value` (e.g. density, 1 for real data)."""
  value: float


HIGHER, LOWER = "higher", "lower"
Better = Union[str, Closest, None]


@dataclasses.dataclass(frozen=True)
class MetricSpec:
  name: str
  compute: Ref                        # (MetricInputs) -> {key: value}
  help: str
  better: dict                        # output key -> HIGHER | LOWER | Closest(v) | None (not judged)
  rank: tuple = ()                    # the keys that rank the best checkpoint, in order of importance
  rank_priority: Optional[int] = None  # of the evaluated metrics that rank, the lowest priority ranks
  min_samples: Union[int, Callable] = 1  # or (cfg) -> int
  data: tuple = (IMAGE,)              # the kinds of data it applies to
  needs: frozenset = frozenset()      # what it reads (FEATURES, REAL, HELD_OUT, LABELS, STATE, MIXTURE)
  network: Optional[str] = None       # 'digits': only on the digit CNN's features
  compares: bool = True               # compares samples with a real split (evaluate.py: three columns)
  training: bool = True               # can be asked for with --eval_metrics
  evaluate: bool = True               # in evaluate.py's table unless asked otherwise
  datasets: tuple = ()                # the --dataset names it applies to (empty: every one of its data kinds)
  requires: str = ""                  # a Config field that must be on (e.g. labeled_examples), or ''

  def applies_to(self, dataset: str) -> bool:
    return not self.datasets or dataset.partition(":")[0] in self.datasets

  def fewest_samples(self, cfg) -> int:
    return self.min_samples(cfg) if callable(self.min_samples) else self.min_samples

  def score(self, record: dict) -> tuple:
    """The tuple the best checkpoint maximises, from this metric's `rank` keys of `record`."""
    return tuple(_oriented(self.better[k], float(record[k])) for k in self.rank)


def _oriented(better: Better, value: float) -> float:
  if better == HIGHER:
    return value
  if better == LOWER:
    return -value
  return -abs(value - better.value)


METRICS: Registry[MetricSpec] = Registry("metric", "eval_metrics")
ALIASES = {"score": ("is",), "prdc": ("pr", "dc")}  # the names of earlier versions
_IMAGE_FEATURES = frozenset({FEATURES, REAL})

METRICS.register(MetricSpec(
    "fid", "gan_jax.metrics.frechet:fid_metric", "Frechet distance of the features (Heusel et al. 2017)",
    better={"fid": LOWER}, rank=("fid",), rank_priority=0, min_samples=2, needs=_IMAGE_FEATURES))
METRICS.register(MetricSpec(
    "kid", "gan_jax.metrics.kid:kid_metric", "KID x 1000, 100 subsets of --kid_subset_size",
    better={"kid_x1000": LOWER, "kid_x1000_std": None}, rank=("kid_x1000",), rank_priority=1,
    min_samples=lambda cfg: cfg.kid_subset_size, needs=_IMAGE_FEATURES))
METRICS.register(MetricSpec(
    "is", "gan_jax.metrics.inception_score:is_metric", "the Inception Score from the logits, 10 splits",
    better={"is": HIGHER, "is_std": None}, min_samples=10, needs=frozenset({FEATURES})))
METRICS.register(MetricSpec(
    "pr", "gan_jax.metrics.prdc:pr_metric", "precision and recall, k = 5 (Kynkaanniemi et al. 2019)",
    better={"precision": HIGHER, "recall": HIGHER}, min_samples=6, needs=_IMAGE_FEATURES))
METRICS.register(MetricSpec(
    "dc", "gan_jax.metrics.prdc:dc_metric", "density and coverage, k = 5 (Naeem et al. 2020)",
    better={"density": Closest(1.0), "coverage": HIGHER}, min_samples=6, needs=_IMAGE_FEATURES))
METRICS.register(MetricSpec(
    "classes", "gan_jax.metrics.classes:class_metric", "the digit CNN's class histogram: classes with >= 1 %, "
    "reverse KL to uniform", better={"classes": HIGHER, "class_reverse_kl": LOWER, "class_counts": None},
    needs=frozenset({FEATURES}), network="digits"))
METRICS.register(MetricSpec(
    "modes", "gan_jax.metrics.modes:modes_metric", "PacGAN's mode coverage of a toy mixture (always on)",
    better={"modes": HIGHER, "high_quality": HIGHER, "reverse_kl": LOWER, "mode_counts": None},
    rank=("modes", "reverse_kl"), rank_priority=0, data=(TOY,), needs=frozenset({MIXTURE}), compares=False))
METRICS.register(MetricSpec(
    "stacked_modes", "gan_jax.metrics.stacked:stacked_metric", "Stacked MNIST: of the 1,000 modes, those with at least a "
    "quarter of a uniform share (stacked_modes) or one sample (stacked_modes_any, the papers'), and KL to uniform, "
    "each channel read by the digit CNN", better={"stacked_modes": HIGHER, "stacked_modes_any": HIGHER,
                                                  "stacked_kl": LOWER, "stacked_samples": None,
                                                  "stacked_kl_channels": None, "stacked_dependence": None},
    rank=("stacked_modes", "stacked_kl"), rank_priority=0, datasets=("stacked_mnist5k",)))
METRICS.register(MetricSpec(
    "copy", "gan_jax.metrics.copying:copy_metric", "the share of samples nearer (pixels) to a training image than "
    "95 % of held-out images are: 0.05 for new data (copy_share_held_out), up to 1 for copies",
    better={"copy_share": None, "copy_share_held_out": None}, needs=frozenset({HELD_OUT}), compares=False))
METRICS.register(MetricSpec(
    "parzen", "gan_jax.metrics.parzen:parzen_metric", "Parzen-window log-likelihood of held-out images "
    "(Goodfellow et al. 2014)", better={"parzen_ll": HIGHER, "parzen_se": None, "parzen_sigma": None},
    needs=frozenset({HELD_OUT}), compares=False, training=False, evaluate=False))
METRICS.register(MetricSpec(
    "d_probe", "gan_jax.metrics.probe:probe_metric", "held-out accuracy of a linear classifier on D's "
    "features, 100 and all labels (Radford et al. 2015, sec. 5.1)",
    better={"d_features_linear_acc_100_labels": HIGHER, "d_features_linear_acc_all_labels": HIGHER},
    needs=frozenset({STATE, HELD_OUT, LABELS}), compares=False, training=False))
METRICS.register(MetricSpec(
    "classifier", "gan_jax.metrics.classifier:classifier_metric", "held-out accuracy of the semi-supervised D's "
    "K-class classifier (--labeled_examples; Salimans et al. 2016)", better={
        "held_out_accuracy": HIGHER, "held_out_errors": LOWER, "held_out_examples": None,
        "held_out_accuracy_current_d": HIGHER},
    needs=frozenset({STATE, HELD_OUT, LABELS}), compares=False, requires="labeled_examples"))


def describe() -> str:
  """--eval_metrics' help: the metrics training can compute, then those only evaluate.py computes."""
  training = "; ".join(f"{s.name}: {s.help}" for s in METRICS if s.training)
  return training + ". experiments/evaluate.py also reports " + "; ".join(
      f"{s.name}: {s.help}" for s in METRICS if not s.training)


def metric_names(value: str) -> tuple:
  """--eval_metrics as registry names, in order, earlier names (score, prdc) translated."""
  names = []
  for name in (n.strip() for n in value.split(",") if n.strip()):
    for n in ALIASES.get(name, (name,)):
      if n not in names:
        names.append(n)
  return tuple(names)


def compute(names, inputs) -> dict:
  """{key: value} of the metrics `names` on `inputs` (a MetricInputs), in order."""
  out = {}
  for name in names:
    out.update(resolve(METRICS.get(name).compute)(inputs))
  return out


def ranking_metric(names) -> Optional[MetricSpec]:
  """Of the metrics `names`, the one that ranks the best checkpoint (lowest rank_priority), or None."""
  ranked = [METRICS.get(n) for n in names if METRICS.get(n).rank_priority is not None]
  return min(ranked, key=lambda s: s.rank_priority) if ranked else None


def rank(record: dict, names) -> Optional[tuple]:
  """The tuple to maximise for the best checkpoint from an evaluation `record` of metrics `names`."""
  spec = ranking_metric(names)
  if spec is None or any(k not in record or record[k] is None for k in spec.rank):
    return None
  return spec.score(record)
