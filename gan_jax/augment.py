"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): the
same random, differentiable transforms applied to every image D judges, real and fake, in both players'
updates, so D cannot memorise the training images and G's gradient passes through the transform.

As the paper's code (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py), on x [B, H, W, C] in
[-1, 1], parameters drawn per image:
  color:       brightness x + (u - 1/2); saturation (x - mean_c x) * 2u + mean_c x; contrast
               (x - mean_hwc x) * (u + 1/2) + mean_hwc x; u ~ U[0, 1) each
  translation: shift by t in {-s, ..., s} pixels along each axis, s = round(H / 8), zeros shifted in
  cutout:      a square of side round(H / 2) set to 0, its centre anywhere in the image
Each transform is a pure function of x and its drawn parameters (`*_params` draw them from a key).
Wired in `objectives.augmented`: D's real and fake passes and G's pass each draw their own parameters
from the pass's key (the step's keys: resume stays exact). R1 and GP differentiate D at the augmented
images it judged; the paper's StyleGAN2 code differentiates its R1 with respect to the raw reals through
the augmentation instead (a difference of this implementation).
"""
import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5
BLACK = -1.0  # a black pixel in [-1, 1] (the digits' background): what --shift_reals shifts in


def brightness(x, u):
  """u [B] in [0, 1): x + (u - 0.5)."""
  return x + (u - 0.5)[:, None, None, None]


def saturation(x, u):
  """u [B]: (x - m) * 2u + m, m the mean over channels (a no-op on one channel)."""
  m = jnp.mean(x, axis=3, keepdims=True)
  return (x - m) * (2.0 * u)[:, None, None, None] + m


def contrast(x, u):
  """u [B]: (x - m) * (u + 0.5) + m, m the mean of the whole image."""
  m = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - m) * (u + 0.5)[:, None, None, None] + m


def translation(x, shift, fill: float = 0.0):
  """shift int [B, 2]: out[i, j] = x[i + shift_h, j + shift_w] where that lies in the image, else `fill`."""
  _, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill)
  rows = jnp.clip(jnp.arange(h)[None] + shift[:, :1] + 1, 0, h + 1)  # [B, H] into the padded image
  cols = jnp.clip(jnp.arange(w)[None] + shift[:, 1:] + 1, 0, w + 1)
  return jax.vmap(lambda image, r, c: image[r][:, c])(padded, rows, cols)


def cutout(x, offset):
  """offset int [B, 2]: the centre of a zeroed square of side round(H * CUTOUT_RATIO) (clipped to the image)."""
  _, h, w, _ = x.shape
  size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
  top, left = offset[:, :1] - size_h // 2, offset[:, 1:] - size_w // 2
  in_rows = (jnp.arange(h)[None] >= top) & (jnp.arange(h)[None] < top + size_h)  # [B, H]
  in_cols = (jnp.arange(w)[None] >= left) & (jnp.arange(w)[None] < left + size_w)
  keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
  return x * keep[..., None].astype(x.dtype)


def translation_params(key, shape):
  b, h, w = shape[0], shape[1], shape[2]
  s_h, s_w = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
  k_h, k_w = jax.random.split(key)
  return jnp.concatenate([jax.random.randint(k_h, (b, 1), -s_h, s_h + 1),
                          jax.random.randint(k_w, (b, 1), -s_w, s_w + 1)], axis=1)


def cutout_params(key, shape):
  b, h, w = shape[0], shape[1], shape[2]
  size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
  k_h, k_w = jax.random.split(key)  # the paper's range: an odd side's centre may not sit on the last pixel
  return jnp.concatenate([jax.random.randint(k_h, (b, 1), 0, h + (1 - size_h % 2)),
                          jax.random.randint(k_w, (b, 1), 0, w + (1 - size_w % 2))], axis=1)


def diff_augment(x, key, policy):
  """x [B, H, W, C] -> the transforms of `policy` (names of POLICIES, applied in POLICIES' order), each
  image its own parameters drawn from `key`."""
  keys = jax.random.split(key, 5)
  if "color" in policy:
    u = [jax.random.uniform(k, (x.shape[0],), x.dtype) for k in keys[:3]]
    x = contrast(saturation(brightness(x, u[0]), u[1]), u[2])
  if "translation" in policy:
    x = translation(x, translation_params(keys[3], x.shape))
  if "cutout" in policy:
    x = cutout(x, cutout_params(keys[4], x.shape))
  return x
