"""The GAN theory on toy data, where p_data is known exactly: JSD(p_data || p_g), D*, and V(D, G).

Goodfellow et al. 2014: D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Prop. 1), and
V(D*, G) = -log 4 + 2 JSD(p_data || p_g) (Thm. 1), the largest V any D reaches against G.

p_g is known only through G's samples: `DensityGrid` bins them on a fine grid around the data's
modes and smooths the histogram with a Gaussian kernel (a binned kernel density estimate); p_data
is the mixture's exact density on the same grid. JSD is then a quadrature over the grid's cells,
plus the mass G puts outside the grid, where p_data is 0 and the integrand is exactly
(1/2) p_g log 2. Natural logarithms: 0 <= JSD <= log 2.

Error of `jsd_estimate` with 100,000 samples, measured (tests/test_theory.py checks each against
JSD_ERROR = 5e-3): identical distributions (G's samples drawn from p_data) give 4e-5 (gauss1d),
1.2e-3 (ring), 2.3e-3 (grid), the kernel's bias plus sampling noise; two 1-D Gaussians against
adaptive quadrature (`divergences.js_gaussian`) differ by 1e-3 to 2.9e-3 (the kernel broadens p_g,
so the estimate errs low); the ring with half its modes dropped (0.21576 exactly) gives 0.21624.
`packed_jsd_estimate` (pack 2): 4e-3 (ring) and 8e-3 (grid) for identical distributions, within
PACKED_JSD_ERROR = 1.5e-2.

Those bounds hold for a smooth p_g. A G's own density can have sharp features (in 1-D a ReLU MLP's
G(z) piles mass at its kinks), and then the estimate is the JSD of p_g smoothed at the kernel's
bandwidth: on the default gauss1d run, scipy's gaussian_kde of the final samples at the same
bandwidth agrees to 1.7e-3, while halving or raising the bandwidth by 40 % moves it by 0.01-0.02.
"""
import dataclasses

import numpy as np
from scipy import ndimage, special

JSD_ERROR = 5e-3  # the stated error of jsd_estimate with >= 100,000 samples (see above)
PACKED_JSD_ERROR = 1.5e-2  # the same for packed_jsd_estimate with pack 2
LOG4 = np.log(4.0)


def mixture_pdf(mixture, x):
  """Exact density of the equal-weight mixture of N(mean_i, sigma^2 I) at x [N, D]: [N]."""
  x, means = np.asarray(x, np.float64), np.asarray(mixture.means, np.float64)
  d = means.shape[1]
  sq = np.maximum((x ** 2).sum(1)[:, None] - 2.0 * x @ means.T + (means ** 2).sum(1)[None], 0.0)  # [N, M]
  log_norm = -0.5 * d * np.log(2 * np.pi * mixture.sigma ** 2)
  return np.exp(special.logsumexp(-sq / (2 * mixture.sigma ** 2), axis=1) + log_norm - np.log(len(mixture.means)))


@dataclasses.dataclass(frozen=True)
class DensityGrid:
  """Square boxes of `half_width` around each mode, each cut into `cells`^D cells of side `h`.

  The boxes hold all but ~1e-8 of p_data's mass (half_width = 6 sigma). Boxes of nearby modes may
  overlap only if the modes are closer than 12 sigma (not on the shipped mixtures).
  """
  means: np.ndarray  # [M, D]
  half_width: float
  cells: int

  @classmethod
  def for_mixture(cls, mixture, cells: int = 0):
    """120 cells a side in 2-D (cell = sigma / 10), 1,200 in 1-D (cell = sigma / 100)."""
    cells = cells or (1200 if mixture.dim == 1 else 120)
    return cls(np.asarray(mixture.means, np.float64), 6.0 * mixture.sigma, cells)

  @property
  def h(self) -> float:
    return 2 * self.half_width / self.cells

  @property
  def dim(self) -> int:
    return self.means.shape[1]

  def centres(self):
    """Cell centres [M, cells^D, D] and the cell volume."""
    offsets = -self.half_width + self.h * (np.arange(self.cells) + 0.5)
    mesh = np.stack(np.meshgrid(*[offsets] * self.dim, indexing="ij"), -1).reshape(-1, self.dim)
    return self.means[:, None, :] + mesh[None], self.h ** self.dim

  def locate(self, x):
    """(box [N] int, -1 off every box; flat cell index [N] within it) of points x [N, D]; the first box wins."""
    x = np.asarray(x, np.float64)
    box, cell = np.full(len(x), -1), np.zeros(len(x), np.int64)
    for i, mean in enumerate(self.means):
      local = (x - mean + self.half_width) / self.h  # cell coordinates
      ok = np.all((local >= 0) & (local < self.cells), axis=1) & (box < 0)
      box[ok] = i
      cell[ok] = np.ravel_multi_index(tuple(local[ok].astype(np.int64).T), (self.cells,) * self.dim)
    return box, cell

  def histogram(self, box, cell):
    """(counts per cell [M, cells^D] / N, fraction outside every box) of N points located by `locate`."""
    inside = box >= 0
    size = self.cells ** self.dim
    counts = np.bincount(box[inside] * size + cell[inside], minlength=len(self.means) * size)
    return counts.reshape(len(self.means), size) / len(box), 1.0 - inside.mean()


def scott_bandwidth(grid: DensityGrid, samples, box, sigma: float) -> float:
  """Scott's rule for one mode's share of the samples [N, D]: s * (n / M)^(-1 / (D + 4)).

  `box` [N]: the samples' boxes (`DensityGrid.locate`). s: the samples' own spread around their
  box's mean (pooled over the boxes and the axes), so a G narrower than the data is not smoothed
  to the data's width; `sigma` (the data's) when no sample falls in a box. n: the samples in the boxes.
  """
  squares, count = 0.0, 0
  for i in range(len(grid.means)):
    local = samples[box == i]
    if len(local) > 1:
      squares += ((local - local.mean(0)) ** 2).sum()
      count += len(local) - 1
  spread = np.sqrt(squares / (count * grid.dim)) if count else sigma
  per_mode = max((box >= 0).sum() / len(grid.means), 1.0)
  return float(spread * per_mode ** (-1.0 / (grid.dim + 4)))


def kde_on_grid(grid: DensityGrid, samples, sigma: float):
  """p_g on the grid's cells [M, cells^D] (a density) and its mass outside the boxes, from samples [N, D].

  The histogram of the samples smoothed by a Gaussian of Scott's bandwidth (`scott_bandwidth`;
  `sigma`: the data's, its fallback), by scipy.ndimage, cells beyond a box's edge counting as
  empty. The samples are located on the grid once, for both.
  """
  samples = np.asarray(samples, np.float64)
  box, cell = grid.locate(samples)
  mass, outside = grid.histogram(box, cell)
  bandwidth = scott_bandwidth(grid, samples, box, sigma)
  shape = (len(grid.means),) + (grid.cells,) * grid.dim
  sigma = (0,) + (bandwidth / grid.h,) * grid.dim
  smooth = ndimage.gaussian_filter(mass.reshape(shape), sigma, mode="constant", truncate=4.0)
  return smooth.reshape(len(grid.means), -1) / grid.h ** grid.dim, outside


def jsd_on_grid(p, q, volume: float, q_outside: float = 0.0, p_outside: float = 0.0) -> float:
  """JSD by quadrature: sum over cells of volume * [p/2 log(2p/(p+q)) + q/2 log(2q/(p+q))].

  Mass off the grid that only one side has adds half of it times log 2.
  """
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  m = 0.5 * (p + q)
  inner = 0.5 * volume * (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum())
  return float(min(inner + 0.5 * (q_outside + p_outside) * np.log(2.0), np.log(2.0)))


def data_density_on_grid(mixture, grid: DensityGrid):
  """p_data at the grid's cell centres [M, cells^D] (exact)."""
  centres, _ = grid.centres()
  return mixture_pdf(mixture, centres.reshape(-1, grid.dim)).reshape(len(grid.means), -1)


def jsd_estimate(mixture, samples, grid: DensityGrid | None = None, p_data=None) -> float:
  """JSD(p_data || p_g) from G's samples [N, D] (data units) and the mixture's exact density.

  Error: JSD_ERROR for N >= 100,000 (module docstring). `p_data`: `data_density_on_grid`, if known.
  """
  grid = grid or DensityGrid.for_mixture(mixture)
  volume = grid.h ** grid.dim
  p = data_density_on_grid(mixture, grid) if p_data is None else p_data
  q, q_outside = kde_on_grid(grid, samples, mixture.sigma)
  return jsd_on_grid(p, q, volume, q_outside)


def kde_lookup(grid: DensityGrid, density, x):
  """The gridded density [M, cells^D] at points x [N, D] (0 off the boxes)."""
  box, cell = grid.locate(x)
  return np.where(box >= 0, density[np.maximum(box, 0), cell], 0.0)


def packed_jsd_estimate(mixture, samples, pack: int, rng: np.random.Generator, grid: DensityGrid | None = None):
  """JSD(p_data^pack || p_g^pack): the divergence a PacGAN D of `pack` samples faces (Lin et al. 2018).

  Monte Carlo over pack-tuples, JSD = 1/2 E_P[log 2P/(P+Q)] + 1/2 E_Q[log 2Q/(P+Q)] with P, Q the
  products of p_data (exact) and p_g (the same gridded kernel estimate as `jsd_estimate`); as
  many tuples of each as there are samples / pack. pack = 1 gives `jsd_estimate`'s quantity.
  """
  samples = np.asarray(samples, np.float64)
  grid = grid or DensityGrid.for_mixture(mixture)
  q, _ = kde_on_grid(grid, samples, mixture.sigma)
  n = len(samples) // pack
  reals = mixture.sample(rng, n * pack)[0].astype(np.float64)
  fakes = samples[rng.permutation(len(samples))[:n * pack]]

  def log_densities(x):  # (log P, log Q) of each tuple: [n] each
    with np.errstate(divide="ignore"):
      lp = np.log(mixture_pdf(mixture, x)).reshape(n, pack).sum(1)
      lq = np.log(kde_lookup(grid, q, x)).reshape(n, pack).sum(1)
    return lp, lq

  with np.errstate(invalid="ignore"):
    lp, lq = log_densities(reals)  # log 2P/(P+Q) = log 2 - log(1 + Q/P); log 2 where Q = 0
    from_p = np.where(np.isneginf(lq), np.log(2.0), np.log(2.0) - np.logaddexp(0.0, lq - lp))
    lp, lq = log_densities(fakes)  # log 2 where P = 0: off every mode, or off the grid (P < 1e-8 there)
    off = np.isneginf(lp) | np.isneginf(lq)
    from_q = np.where(off, np.log(2.0), np.log(2.0) - np.logaddexp(0.0, lp - lq))
  return float(np.clip(0.5 * from_p.mean() + 0.5 * from_q.mean(), 0.0, np.log(2.0)))


def value_at_optimum(jsd: float) -> float:
  """V(D*, G) = -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Theorem 1)."""
  return -LOG4 + 2.0 * jsd


def value(real_logits, fake_logits) -> float:
  """V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))] from D's logits on fresh reals and fakes.

  log D = log sigmoid(l) and log(1 - D) = log sigmoid(-l), stable for any logit.
  """
  real, fake = np.asarray(real_logits, np.float64), np.asarray(fake_logits, np.float64)
  return float(-np.logaddexp(0.0, -real).mean() - np.logaddexp(0.0, fake).mean())
