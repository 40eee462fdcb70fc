"""Does G copy its training images? Nearest training images, and the share of samples nearer than new data.

For an image x and the training images T (pixel space, [-1, 1]), d(x) = min_{t in T} ||x - t||_2.
The threshold tau is the 5th percentile (COPY_QUANTILE) of d over the first half of the held-out images
(never trained on: the calibration half). The copy share of a sample set S is

  copy_share(S) = #{s in S : d(s) < tau} / |S|,

0.05 in expectation for new images of the data's distribution: the second held-out half is such a set
(`copy_share_held_out`, the baseline row). A G that reproduces training images scores up to 1; one whose
samples sit no nearer to the training images than new handwriting does, 0.05. This is the one-number
form of the data-copying test of Meehan et al. 2020 (their C_T compares the same two distance
distributions, d of samples and d of held-out images, with a Mann-Whitney test per cell).
"""
import numpy as np

COPY_QUANTILE = 0.05


def nearest(queries, references, chunk: int = 1024):
  """(distances [N], indices [N]): each query's nearest reference in L2, queries [N, ...], references [M, ...]."""
  q = np.asarray(queries, np.float32).reshape(len(queries), -1)
  r = np.asarray(references, np.float32).reshape(len(references), -1)
  r_norms = np.einsum("ij,ij->i", r, r)
  distances, indices = np.empty(len(q), np.float64), np.empty(len(q), np.int64)
  for i in range(0, len(q), chunk):
    block = q[i:i + chunk]
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, in float32; the minimum is re-measured exactly below.
    squared = np.einsum("ij,ij->i", block, block)[:, None] + r_norms[None, :] - 2.0 * block @ r.T
    best = squared.argmin(1)
    indices[i:i + chunk] = best
    distances[i:i + chunk] = np.linalg.norm(block.astype(np.float64) - r[best].astype(np.float64), axis=1)
  return distances, indices


def copy_threshold(train, held_out) -> float:
  """tau: the COPY_QUANTILE of the nearest-training distances of the first half of `held_out`."""
  calibration = held_out[:len(held_out) // 2]
  return float(np.quantile(nearest(calibration, train)[0], COPY_QUANTILE))


def copy_share(samples, train, tau: float) -> float:
  """The share of `samples` whose nearest training image is nearer than tau."""
  return float(np.mean(nearest(samples, train)[0] < tau))


def copy_metric(inputs) -> dict:
  """The registry's 'copy': copy_share of the samples, and of the second held-out half (new data, the
  baseline: 0.05 up to its sampling error, sqrt(0.05 * 0.95 / (H / 2)))."""
  train, held = inputs.train_images(), inputs.held_out_images()
  tau = inputs.shared_real("copy_threshold", lambda: copy_threshold(train, held))
  return {"copy_share": copy_share(inputs.samples, train, tau),
          "copy_share_held_out": inputs.shared_real("copy_share_held_out",
                                               lambda: copy_share(held[len(held) // 2:], train, tau))}
