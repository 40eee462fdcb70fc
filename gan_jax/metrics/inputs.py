"""What metrics read: one `MetricInputs` per evaluation, whose costly parts are computed at first use.

The samples' features go through the feature network once however many metrics read them, and a
result several metrics share (precision / recall and density / coverage come from one k-NN pass)
is computed once through `shared(key, fn)`: the inputs own that cache, and it lives as long as
the one evaluation. What depends on the real data alone (a copy threshold, the training images) goes
through `shared_real(key, fn)`, whose cache (`real_cache`) the caller may keep across evaluations.
"""
from typing import Any, Callable, Optional

import numpy as np


class MetricInputs:
  """The samples of one evaluation and everything a metric may compare them with.

  samples:        [N, ...] in data units (toy) or [-1, 1] (images), or None when `fake` is given
  feature_fn:     images -> (logits [N, K], features [N, D]), the image metrics' network
  fake:           (logits, features) of the samples, when already known, or a function returning them
                  (else they come from feature_fn)
  real:           (logits, features) of the real split the samples are compared with, or a function
                  returning them (called at first use: metrics that compare nothing never pay for it)
  held_out:       the held-out split (a gan_jax.data Dataset), never trained on
  dataset:        the training split (a Dataset)
  mixture:        the toy mixture (means, sigma)
  nets, state:    the GAN's networks and training state
  kid_subset_size, seed: options of KID and the subsampling metrics
  real_cache:     a dict for `shared_real`, kept by the caller across evaluations of the same real data
  """

  def __init__(self, samples=None, *, feature_fn: Optional[Callable] = None, fake=None, real=None,
               held_out=None, dataset=None, mixture=None, nets=None, state=None, kid_subset_size: int = 1000,
               seed: int = 0, real_cache: Optional[dict] = None):
    self.samples, self.feature_fn, self._fake, self._real = samples, feature_fn, fake, real
    self.held_out, self.dataset, self.mixture = held_out, dataset, mixture
    self.nets, self.state = nets, state
    self.kid_subset_size, self.seed = kid_subset_size, seed
    self._shared, self._real_cache = {}, {} if real_cache is None else real_cache

  def shared(self, key: str, fn: Callable[[], Any]):
    """fn(), computed once per MetricInputs for every metric that asks for `key`."""
    if key not in self._shared:
      self._shared[key] = fn()
    return self._shared[key]

  def shared_real(self, key: str, fn: Callable[[], Any]):
    """fn() of the real data alone, computed once per `real_cache` (it must not read the samples)."""
    if key not in self._real_cache:
      self._real_cache[key] = fn()
    return self._real_cache[key]

  def train_images(self):
    """Every training image [T, ...] (the Dataset's stream order), read once per `real_cache`."""
    return self.shared_real("train_images", lambda: self.dataset.get_batch(0, self.dataset.num_examples)["x"])

  def held_out_images(self):
    """Every held-out image [H, ...], read once per `real_cache`."""
    return self.shared_real("held_out_images", lambda: self.held_out.get_batch(0, self.held_out.num_examples)["x"])

  @property
  def count(self) -> int:
    """How many samples."""
    return len(self.samples) if self.samples is not None else len(self.fake[1])

  @property
  def fake(self):
    """(logits, features) of the samples."""
    if callable(self._fake):
      self._fake = self._fake()
    if self._fake is None:
      self._fake = tuple(np.asarray(a) for a in self.feature_fn(self.samples))
    return self._fake

  fake_logits = property(lambda self: self.fake[0])
  fake_features = property(lambda self: self.fake[1])

  @property
  def real(self):
    """(logits, features) of the real split."""
    if callable(self._real):
      self._real = self._real()
    return self._real

  real_logits = property(lambda self: self.real[0])
  real_features = property(lambda self: self.real[1])
