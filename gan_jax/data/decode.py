"""Image files to uint8 pixels with the channels the run asks for, every conversion explicit and counted.

PIL opens 16-bit grayscale PNGs as mode I;16 or I with values up to 65535: scaled to 8 bits
(v / 257), not clipped. Palette images are expanded, alpha dropped (the colour channels kept as
stored), CMYK / YCbCr / LAB converted to RGB; grayscale joins an RGB dataset as three equal
channels and RGB joins a grayscale one as ITU-R 601 luma (PIL's own "L" conversion).
"""
import collections

import numpy as np
from PIL import Image

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
WIDE_GRAY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits per pixel


def has_colour(mode: str) -> bool:
  return mode not in GRAY_MODES


def channels_of(paths) -> int:
  """3 when any of the images (headers only) has colour, else 1. Unreadable files count as gray."""
  for path in paths:
    try:
      with Image.open(path) as im:
        if has_colour(im.mode):
          return 3
    except Exception:  # noqa: BLE001 - broken files and decompression bombs are skipped when decoding
      continue
  return 1


def luma(rgb):
  """uint8 [..., 3] -> uint8 [..., 1]: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, as PIL's convert('L')."""
  r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
  return ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16).astype(np.uint8)[..., None]


def match_channels(images, channels: int):
  """uint8 [..., C] -> [..., channels] for C, channels in {1, 3}."""
  have = images.shape[-1]
  if have == channels:
    return images
  return np.repeat(images, 3, axis=-1) if channels == 3 else luma(images)


def decode(im: Image.Image, channels: int):
  """An opened image -> (uint8 [H, W, channels], [what was converted])."""
  notes, mode = [], im.mode
  if mode in WIDE_GRAY:
    a = np.asarray(im, dtype=np.float64)
    scale = 1.0 / 257.0 if mode != "F" else 255.0  # 16-bit -> 8-bit; float images are taken as [0, 1]
    gray = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)[..., None]
    notes.append("16-bit to 8-bit" if mode != "F" else "float to 8-bit")
    return match_channels(gray, channels), notes + (["grayscale to RGB"] if channels == 3 else [])
  if mode == "P":
    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    notes.append("palette expanded")
    mode = im.mode
  if mode in ("RGBA", "LA", "PA"):
    notes.append("alpha dropped")
  if mode in ("1", "L", "LA"):
    gray = np.asarray(im.convert("L"))[..., None]
    if channels == 3:
      notes.append("grayscale to RGB")
    return match_channels(gray, channels), notes
  if mode not in ("RGB", "RGBA"):
    notes.append(f"{mode} to RGB")
  rgb = np.asarray(im.convert("RGB"))
  if channels == 1:
    notes.append("RGB to grayscale")
  return match_channels(rgb, channels), notes


def summary(counts: collections.Counter) -> str:
  return ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "none"
