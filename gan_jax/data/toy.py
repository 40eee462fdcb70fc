"""Toy distributions for GAN diagnostics: mixtures of isotropic Gaussians.

- gauss1d: N(4, 0.5^2), the 1-D setting of Goodfellow et al. 2014, Figure 1.
- ring:    8 modes on the unit circle, sigma 0.01 (Metz et al. 2017; PacGAN).
- grid:    25 modes at {-4, -2, 0, 2, 4}^2, sigma 0.05 (PacGAN).
Options after a colon, `ring:radius=2,sigma=0.02` (Metz et al. 2017's ring), `grid:sigma=0.1`: the keyword
arguments of the mixture's builder (`OPTIONS`), positive numbers.
"""
import dataclasses
import itertools

import numpy as np


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
  """Equal-weight mixture of N(mean_i, sigma^2 I); `means` is [M, D]."""
  name: str
  means: np.ndarray
  sigma: float

  @property
  def dim(self) -> int:
    return self.means.shape[1]

  def sample(self, rng: np.random.Generator, n: int):
    """Returns (x [n, D] float32, mode index [n] int32)."""
    modes = rng.integers(0, len(self.means), size=n)
    x = self.means[modes] + self.sigma * rng.standard_normal((n, self.dim))
    return x.astype(np.float32), modes.astype(np.int32)


def gauss1d() -> GaussianMixture:
  return GaussianMixture("gauss1d", np.array([[4.0]]), 0.5)


def ring(num_modes: int = 8, radius: float = 1.0, sigma: float = 0.01) -> GaussianMixture:
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  return GaussianMixture("ring", radius * np.stack([np.cos(angles), np.sin(angles)], 1), sigma)


def grid(sigma: float = 0.05) -> GaussianMixture:
  means = np.array(list(itertools.product(range(-4, 5, 2), repeat=2)), np.float64)
  return GaussianMixture("grid", means, sigma)


TOY = {"ring": ring, "grid": grid, "gauss1d": gauss1d}
OPTIONS = {"ring": {"radius": float, "sigma": float}, "grid": {"sigma": float}, "gauss1d": {}}


def parse_options(name: str, arg: str):
  """'radius=2,sigma=0.02' -> ({'radius': 2.0, 'sigma': 0.02}, None), or (None, what is wrong)."""
  known, options = OPTIONS[name], {}
  for item in filter(None, arg.split(",")):
    key, eq, text = item.partition("=")
    if key not in known or not eq:
      valid = ", ".join(f"{k}=NUMBER" for k in known) or "none"
      return None, f"unknown option {item!r}; valid: {valid} (e.g. ring:radius=2,sigma=0.02)"
    try:
      value = known[key](text)
    except ValueError:
      return None, f"{key} must be a {known[key].__name__}, got {text!r}"
    if not value > 0 or not np.isfinite(value):
      return None, f"{key} must be positive and finite, got {text!r}"
    options[key] = value
  return options, None


def check(name: str):
  """The registry's check of `name`'s options (None when they parse)."""
  return lambda arg: parse_options(name, arg)[1]


class ToyDataset:
  """An endless stream of batches; batch `index` is a pure function of (seed, index). The label of a
  point is its mode."""

  def __init__(self, mixture: GaussianMixture, seed: int, scale: float = 1.0, shift: float = 0.0):
    self.mixture, self.seed, self.scale, self.shift = mixture, seed, scale, shift
    self.name = mixture.name
    self.data_shape = (mixture.dim,)
    self.num_classes = len(mixture.means)

  def fingerprint(self) -> dict:
    identity = {"name": self.name, "means": self.mixture.means.tolist(), "sigma": self.mixture.sigma,
                "seed": self.seed, "scale": self.scale}
    return {**identity, "shift": self.shift} if self.shift else identity

  def get_batch(self, index: int, batch_size: int, rows: slice = slice(None)):
    """Global batch `index`, rows `rows` of it: {'x': (x [b, D] - shift) * scale, 'label': [b]}."""
    x, modes = self.mixture.sample(np.random.default_rng([self.seed, index]), batch_size)
    return {"x": (x[rows] - np.float32(self.shift)) * np.float32(self.scale), "label": modes[rows]}

  def reference_sample(self, n: int):
    """n data points from a stream disjoint from the training batches (for plots)."""
    return self.mixture.sample(np.random.default_rng([self.seed, 0, 1]), n)[0]


def load(name: str, arg: str, opts) -> ToyDataset:
  """The registry's loader (gan_jax.data.DATASETS) of mixture `name`; opts: gan_jax.data.DataOptions."""
  return ToyDataset(TOY[name](**parse_options(name, arg)[0]), opts.seed, opts.data_scale, opts.data_shift)
