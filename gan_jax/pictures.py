"""Pictures of what G draws: image grids and toy scatter plots (PNG). Drawing only: no JAX."""
import math
import os

import numpy as np
from PIL import Image


def to_uint8(images):
  """[N, H, W, C] in [-1, 1] -> uint8 [N, H, W, C]."""
  return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, cols: int = 0, pad: int = 2):
  """[N, H, W, C] in [-1, 1] -> one uint8 picture [rows*(H+pad)+pad, cols*(W+pad)+pad, C]."""
  images = to_uint8(images)
  n, h, w, c = images.shape
  cols = cols or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
  for i in range(n):
    r, q = divmod(i, cols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = images[i]
  return grid


def save_png(array, path: str):
  """Saves uint8 [H, W, C] (C = 1 or 3) as PNG, creating the folder."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  array = np.asarray(array)
  Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def scatter_png(samples, means, path: str, title: str = "", real=None):
  """Toy samples [N, 1 or 2] as a scatter (2-D) or histogram (1-D), modes marked with x."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  samples, means = np.asarray(samples), np.asarray(means)
  fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
  if samples.shape[1] == 1:
    if real is not None:
      ax.hist(np.asarray(real)[:, 0], bins=80, density=True, alpha=0.5, label="data")
    ax.hist(samples[:, 0], bins=80, density=True, alpha=0.5, label="G(z)")
    ax.legend(loc="upper right")
  else:
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, label="G(z)")
    ax.scatter(means[:, 0], means[:, 1], marker="x", c="red", s=40, label="modes")
    lim = 1.5 * np.abs(means).max() + 0.5
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
  ax.set_title(title, fontsize=9)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, bbox_inches="tight")
  plt.close(fig)
