"""Pictures of what G draws: image grids, toy scatter plots with D's surface, the paper's Figure 1,
V(D, G) against its optimum, and an animation of frames (PNG / GIF). Drawing only: no JAX."""
import math

import numpy as np
from PIL import Image

from gan_jax.workdir import write_atomic


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


def channels_grid(images, samples: int = 32):
  """RGB samples [N, H, W, 3] in [-1, 1] -> a picture of `samples` of them, each as RGB then its three
  channels in gray (Stacked MNIST's three digits), two samples to a row of eight tiles."""
  x = np.asarray(images[:samples])
  tiles = [tile for image in x for tile in (image, *(np.repeat(image[..., c:c + 1], 3, -1) for c in range(3)))]
  return image_grid(np.stack(tiles), cols=8)


def save_png(array, path: str):
  """Saves uint8 [H, W, C] (C = 1 or 3) as PNG, written whole (gan_jax.workdir.write_atomic)."""
  array = np.asarray(array)
  image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
  write_atomic(path, lambda f: image.save(f, format="PNG"), mode="wb")


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _save(fig, path: str):
  try:
    write_atomic(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight"), mode="wb")
  finally:
    _pyplot().close(fig)


def scatter_png(samples, means, path: str, title: str = "", real=None, surface=None):
  """Toy samples [N, 1 or 2] as a scatter (2-D) or histogram (1-D), modes marked with x.

  `surface` (2-D): (D(x) [S, S] on a square grid, its half-width), drawn as a heat map behind.
  """
  plt = _pyplot()
  samples, means = np.asarray(samples), np.asarray(means)
  fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
  if samples.shape[1] == 1:
    if real is not None:
      ax.hist(np.asarray(real)[:, 0], bins=80, density=True, alpha=0.5, label="data")
    ax.hist(samples[:, 0], bins=80, density=True, alpha=0.5, label="G(z)")
    ax.legend(loc="upper right")
  else:
    if surface is not None:
      d, half = surface
      image = ax.imshow(d.T, origin="lower", extent=(-half, half, -half, half), cmap="RdBu", vmin=0, vmax=1)
      fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="D(x)")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, c="k" if surface is not None else None, label="G(z)")
    ax.scatter(means[:, 0], means[:, 1], marker="x", c="lime" if surface is not None else "red", s=40,
               label="modes")
    lim = 1.5 * np.abs(means).max() + 0.5
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
  ax.set_title(title, fontsize=9)
  _save(fig, path)


def figure1_png(curves: dict, mapping, path: str, title: str = "", latents: str = "N(0, 1)"):
  """Goodfellow et al. 2014, Figure 1: p_data (black dots), p_g (green), D (blue dashes), D* (grey)
  over x, and z -> x = G(z) as lines from a lower z axis to the x axis.

  curves: {'x', 'p_data', 'p_g', 'd', 'd_star'}, each [K]; mapping: (z [L], G(z) [L]).
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  x = curves["x"]
  peak = max(curves["p_data"].max(), curves["p_g"].max(), 1e-9)
  ax.plot(x, curves["p_data"] / peak, "k.", ms=2, label="p_data (exact)")
  ax.plot(x, curves["p_g"] / peak, "g-", label="p_g (KDE of G's samples)")
  ax.plot(x, curves["d"], "b--", label="D(x)")
  ax.plot(x, curves["d_star"], color="0.5", lw=1, label="D*(x) = p_data / (p_data + p_g)")
  z, gz = mapping
  lo, hi = x[0], x[-1]
  z_pos = lo + (hi - lo) * (z - z.min()) / max(z.max() - z.min(), 1e-9)
  for a, b in zip(z_pos, gz):
    ax.plot([a, b], [-0.35, -0.05], color="0.4", lw=0.6)
  ax.axhline(-0.05, color="k", lw=0.8)
  ax.axhline(-0.35, color="k", lw=0.8)
  ax.text(lo, -0.45, f"z (quantiles of {latents}, spread over the axis)", fontsize=7)
  ax.set_xlim(lo, hi)
  ax.set_ylim(-0.5, 1.1)
  ax.set_xlabel("x")
  ax.legend(loc="upper left", fontsize=7)
  ax.set_title(title + " (densities scaled to peak 1)", fontsize=9)
  _save(fig, path)


def theory_png(steps, value, value_at_optimum, jsd, path: str):
  """V(D, G) and -log 4 + 2 JSD over training, with -log 4 marked; JSD on a second axis."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  ax.plot(steps, value_at_optimum, "o-", label="V(D*, G) = -log 4 + 2 JSD(p_data || p_g)")
  ax.plot(steps, value, "s-", label="V(D, G), current D, fresh samples")
  ax.axhline(-np.log(4.0), color="k", ls=":", label="-log 4 (p_g = p_data)")
  ax.set_xlabel("step")
  ax.set_ylabel("value")
  twin = ax.twinx()
  twin.plot(steps, jsd, "g:", label="JSD (G_ema)")
  twin.set_ylabel("JSD (nats)", color="g")
  ax.legend(loc="upper right", fontsize=7)
  _save(fig, path)


def animation(frames, path: str, ms_per_frame: int = 600):
  """PNG frames (paths, in order) -> one looping GIF at `path`; the frames are padded to one size."""
  images = [Image.open(f).convert("RGB") for f in frames]
  w, h = max(i.width for i in images), max(i.height for i in images)
  canvas = []
  for image in images:
    frame = Image.new("RGB", (w, h), "white")
    frame.paste(image, (0, 0))
    canvas.append(frame)
  write_atomic(path, lambda f: canvas[0].save(f, format="GIF", save_all=True, append_images=canvas[1:],
                                              duration=ms_per_frame, loop=0), mode="wb")


def frames_table_png(rows: dict, path: str, scale: float = 0.5):
  """{row label: [PNG paths]} -> one PNG: each row's frames side by side, scaled by `scale`, under a
  line naming the row (the tutorial's Figure 22 layout)."""
  from PIL import ImageDraw
  images = {label: [Image.open(f).convert("RGB") for f in frames] for label, frames in rows.items()}
  w = int(max(i.width for row in images.values() for i in row) * scale)
  h = int(max(i.height for row in images.values() for i in row) * scale)
  label_h, cols = 22, max(len(row) for row in images.values())
  canvas = Image.new("RGB", (w * cols, (h + label_h) * len(images)), "white")
  draw = ImageDraw.Draw(canvas)
  for r, (label, row) in enumerate(images.items()):
    top = r * (h + label_h)
    draw.text((4, top + 4), label, fill="black")
    for c, image in enumerate(row):
      canvas.paste(image.resize((int(image.width * scale), int(image.height * scale))), (c * w, top + label_h))
  write_atomic(path, lambda f: canvas.save(f, format="PNG"), mode="wb")


def generator_costs_png(costs: dict, d_values, path: str):
  """The NIPS 2016 tutorial's Figure 16: each generator cost J(G) [N] (by name) against D(G(z)) [N]."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  for name, cost in costs.items():
    ax.plot(d_values, cost, label=name)
  ax.set_xlabel("D(G(z))")
  ax.set_ylabel("J(G)")
  ax.set_ylim(-20, 5)
  ax.legend(fontsize=8)
  ax.set_title("generator costs as functions of D(G(z)) (tutorial Figure 16)", fontsize=9)
  _save(fig, path)


def xy_game_png(paths: dict, circle, path: str, title: str = ""):
  """Trajectories [T, 2] of the game V(x, y) = x y (by name), the gradient flow's circle [T, 2] dashed."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
  ax.plot(circle[:, 0], circle[:, 1], "k--", lw=1, label="continuous time (a circle)")
  for name, points in paths.items():
    ax.plot(points[:, 0], points[:, 1], ".-", ms=3, lw=0.6, label=name)
  ax.plot([0], [0], "r*", ms=10, label="equilibrium (0, 0)")
  ax.set_aspect("equal")
  ax.set_xlabel("x (minimises x y)")
  ax.set_ylabel("y (maximises x y)")
  ax.legend(fontsize=7, loc="upper left")
  ax.set_title(title, fontsize=9)
  _save(fig, path)
