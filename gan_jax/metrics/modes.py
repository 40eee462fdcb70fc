"""Mode coverage of a Gaussian mixture, with the definitions of PacGAN (Lin et al. 2018).

On N generator samples (2,500 in the protocol): a sample is *high quality* when
it lies within 3 sigma of its nearest mode; a mode is *covered* when at least
one high-quality sample is nearest to it; *reverse KL* is KL(q || uniform)
between the histogram q of high-quality samples over modes and the uniform
distribution over modes (inf when no sample is of high quality).
"""
import numpy as np

from gan_jax.divergences import kl_discrete


def mode_metrics(samples, means, sigma: float) -> dict:
  """samples [N, D], means [M, D] -> {'modes', 'high_quality', 'reverse_kl', 'mode_counts'}."""
  samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
  means = np.asarray(means, np.float64)
  dist = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=-1)  # [N, M]
  nearest = np.argmin(dist, axis=1)
  good = dist[np.arange(len(samples)), nearest] <= 3.0 * sigma
  counts = np.bincount(nearest[good], minlength=len(means))
  total = counts.sum()
  reverse_kl = (kl_discrete(counts / total, np.full(len(means), 1.0 / len(means)))
                if total > 0 else float("inf"))
  return {"modes": int(np.sum(counts > 0)), "high_quality": float(np.mean(good)),
          "reverse_kl": float(reverse_kl), "mode_counts": counts.tolist()}


def modes_metric(inputs) -> dict:
  """The registry's 'modes': `mode_metrics` of the samples (data units) on the toy mixture."""
  return mode_metrics(inputs.samples, inputs.mixture.means, inputs.mixture.sigma)
