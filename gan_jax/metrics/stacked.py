"""Stacked MNIST's mode metrics (VEEGAN, Unrolled GAN, PacGAN Tables 2 and 3): each colour channel of a
sample is classified by the shipped digit CNN, the three digits name one of 1,000 modes.

  stacked_modes_any  the modes that collected at least one sample: the papers' count
  stacked_modes      the modes that collected at least a quarter of a uniform share, N / 4,000 samples
                     (at least 1): misread samples of covered modes no longer count a mode G never draws
  stacked_kl         KL(p || uniform) = sum_m p(m) log(1,000 p(m)) of the samples' mode histogram p
                     (PacGAN's 'reverse KL'), natural logarithm
  stacked_samples    N, the sample count: the plug-in KL's bias is ~(K - 1) / 2N (0.019 at 26,000), so
                     it is compared with the real data's floor at the same N
  stacked_kl_channels  [KL(p_c || uniform over 10) for c = 0, 1, 2]: each channel's digit histogram p_c
  stacked_dependence   KL(p || p_0 x p_1 x p_2), the channels' total correlation; the three parts add up:
                     stacked_kl = sum(stacked_kl_channels) + stacked_dependence (a G that draws each
                     channel's digits unevenly, or draws them together, shows where)

Why the second count: the digit CNN reads ~97.4 % of held-out digits right, so ~7.6 % of triples carry
a misread channel, and a mode G never draws still collects a few of them (on 26,000 real held-out
triples with 10 modes taken out, every one of the 10 collected 1-5 misread samples:
tests/test_stacked.py), while a covered mode expects N / 1,000 = 26.
"""
import numpy as np

from gan_jax.divergences import kl_discrete

MODES = 1000
SHARE = 0.25  # of N / MODES, the samples a mode needs to count in stacked_modes


def channel_digits(images, classify=None) -> np.ndarray:
  """images [N, R, R, 3] in [-1, 1] -> the digit CNN's class of each channel, int [N, 3]."""
  from gan_jax.metrics import digits
  images = np.asarray(images, np.float32)
  n = len(images)
  channels = np.moveaxis(images, -1, 1).reshape(n * 3, *images.shape[1:3], 1)  # [N * 3, R, R, 1]
  logits, _ = (classify or digits.logits_and_features)(channels)
  return np.asarray(logits).argmax(1).reshape(n, 3)


def mode_metrics(channel_labels) -> dict:
  """Channel classes [N, 3] -> {'stacked_modes', 'stacked_modes_any', 'stacked_kl', 'stacked_samples',
  'stacked_kl_channels', 'stacked_dependence'}."""
  labels = np.asarray(channel_labels)
  counts = np.bincount(labels[:, 0] * 100 + labels[:, 1] * 10 + labels[:, 2], minlength=MODES)
  n = len(labels)
  p = counts / n
  marginals = [np.bincount(labels[:, c], minlength=10) / n for c in range(3)]
  product = np.einsum("a,b,c->abc", *marginals).reshape(MODES)
  return {"stacked_modes": int(np.sum(counts >= max(1.0, SHARE * n / MODES))),
          "stacked_modes_any": int(np.sum(counts > 0)),
          "stacked_kl": kl_discrete(p, np.full(MODES, 1.0 / MODES)),
          "stacked_samples": n,
          "stacked_kl_channels": [kl_discrete(m, np.full(10, 0.1)) for m in marginals],
          "stacked_dependence": kl_discrete(p, product)}


def stacked_metric(inputs) -> dict:
  """The registry's 'stacked_modes': the mode metrics of the samples (a MetricInputs)."""
  return mode_metrics(channel_digits(inputs.samples))
