"""Gaussian Parzen-window log-likelihood, the protocol of Goodfellow et al. 2014 (Table 1).

A Gaussian kernel density on generator samples; its bandwidth sigma is chosen by
maximising the mean log-likelihood of a validation split over a log-spaced grid,
then the mean log-likelihood of the test split is reported with its standard error.
log p(x) = logsumexp_i(-||x - g_i||^2 / (2 sigma^2)) - log n - (d/2) log(2 pi sigma^2).
"""
import numpy as np
from scipy import special


def parzen_log_likelihood(samples, x, sigma: float, batch: int = 100):
  """Per-point log-likelihood [len(x)] of x under the Parzen window on `samples` [n, d]."""
  g = np.asarray(samples, np.float64).reshape(len(samples), -1)
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  n, d = g.shape
  g2 = (g * g).sum(1)
  out = []
  for i in range(0, len(x), batch):
    xb = x[i:i + batch]
    d2 = (xb * xb).sum(1)[:, None] + g2[None, :] - 2 * xb @ g.T
    out.append(special.logsumexp(-np.clip(d2, 0, None) / (2 * sigma ** 2), axis=1))
  return np.concatenate(out) - np.log(n) - 0.5 * d * np.log(2 * np.pi * sigma ** 2)


def parzen_estimate(samples, validation, test, sigmas=None):
  """(mean test log-likelihood, its standard error, chosen sigma) with sigma picked on `validation`."""
  sigmas = np.logspace(-1, 0, 10) if sigmas is None else np.asarray(sigmas)
  scores = [parzen_log_likelihood(samples, validation, s).mean() for s in sigmas]
  sigma = float(sigmas[int(np.argmax(scores))])
  ll = parzen_log_likelihood(samples, test, sigma)
  return float(ll.mean()), float(ll.std(ddof=1) / np.sqrt(len(ll))), sigma


def parzen_metric(inputs) -> dict:
  """The registry's 'parzen': in [0, 1] pixel space, sigma chosen on the first half of the held-out
  images, the log-likelihood of the other half."""
  held_out = inputs.held_out_images()
  to01 = lambda a: (np.asarray(a, np.float64).reshape(len(a), -1) + 1) / 2  # noqa: E731
  half = len(held_out) // 2
  mean, se, sigma = parzen_estimate(to01(inputs.samples), to01(held_out[:half]), to01(held_out[half:]),
                                    sigmas=np.logspace(-1, 0, 10))
  return {"parzen_ll": mean, "parzen_se": se, "parzen_sigma": sigma}
