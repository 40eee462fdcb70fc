"""`--dataset=folder:PATH`: PATH/*.png (unlabelled) or PATH/CLASS/*.png (one label per class folder).

Every image is decoded once, on a thread pool (PIL releases the GIL while it decodes and resizes),
with a progress line every tenth of the folder; files that are not regular files (a FIFO would
block forever), that PIL cannot decode, or whose header claims more pixels than PIL's
decompression-bomb limit are skipped and counted. A class folder without images, or whose every
image was skipped, is refused: the next class would silently take its label.
"""
import collections
import concurrent.futures
import os
import stat
import time

import numpy as np
from absl import logging
from PIL import Image

from gan_jax.data import decode
from gan_jax.data.images import fit_resolution, in_memory
from gan_jax.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def is_regular_file(path: str) -> bool:
  try:
    return stat.S_ISREG(os.stat(path).st_mode)
  except OSError:
    return False


def _images_in(directory: str):
  return [f for f in sorted(os.listdir(directory)) if f.lower().endswith(IMAGE_SUFFIXES)]


def list_images(path: str, flag: str):
  """([(file, label)], class names): the images of a flat folder, or of its class subfolders."""
  if not os.path.isdir(path):
    raise DataError(f"{flag}: no such directory")
  files = [(os.path.join(path, f), 0) for f in _images_in(path)]
  if files:
    return files, []
  classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
  empty = [d for d in classes if not _images_in(os.path.join(path, d))]
  if empty and len(empty) < len(classes):
    raise DataError(f"{flag}: class folder(s) {', '.join(empty)} hold no images ({', '.join(IMAGE_SUFFIXES)}); "
                    "each class folder is one label, so remove them or add their images")
  files = [(os.path.join(path, d, f), label) for label, d in enumerate(classes) for f in _images_in(os.path.join(path, d))]
  if not files:
    raise DataError(f"{flag}: no images ({', '.join(IMAGE_SUFFIXES)}) in it or its subfolders")
  return files, classes


def _decode_one(file: str, channels: int, resolution: int):
  """(uint8 [R, R, C], conversions) or (None, why it was skipped)."""
  if not is_regular_file(file):
    return None, "not a regular file"
  try:
    with Image.open(file) as im:
      im.load()
      array, notes = decode.decode(im, channels)
    return fit_resolution(array, resolution), notes
  except Image.DecompressionBombError:
    return None, "larger than PIL's decompression-bomb limit"
  except Exception:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError, ... for broken files
    return None, "not decodable"


class _Progress:
  """A log line at every tenth of `total` (for large folders only)."""

  def __init__(self, flag: str, total: int, minimum: int = 2000):
    self.flag, self.total, self.start, self.shown = flag, total, time.time(), 0
    self.enabled = total >= minimum

  def __call__(self, done: int):
    tenth = 10 * done // self.total
    if self.enabled and tenth > self.shown:
      self.shown = tenth
      elapsed = time.time() - self.start
      logging.info("%s: decoded %d/%d images (%d %%) in %.0f s, ETA %.0f s", self.flag, done, self.total,
                   100 * done // self.total, elapsed, elapsed / done * (self.total - done))


def decode_all(files, channels: int, resolution: int, flag: str, workers: int = 0):
  """[(uint8 [R, R, C] or None, notes or reason)] for `files` [(path, label)], in order, on a thread pool."""
  workers = workers or min(32, os.cpu_count() or 1)
  progress = _Progress(flag, len(files))
  out = []
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for i, result in enumerate(pool.map(lambda f: _decode_one(f[0], channels, resolution), files, chunksize=64)):
      out.append(result)
      progress(i + 1)
  return out


def _log_skipped(flag, skipped):
  if skipped:
    reasons = collections.Counter(why for _, why in skipped)
    logging.warning("%s: skipped %d files (%s): %s", flag, len(skipped),
                    ", ".join(f"{n} {why}" for why, n in sorted(reasons.items())),
                    ", ".join(os.path.basename(f) for f, _ in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))


def load_folder(name: str, path: str, opts):
  """The registry's loader of `folder:PATH` (gan_jax.data.DATASETS); opts: gan_jax.data.DataOptions."""
  del name
  flag = f"--dataset=folder:{path}"
  files, classes = list_images(path, flag)
  channels = opts.channels or decode.channels_of(f for f, _ in files if is_regular_file(f))
  images, labels, skipped, converted = [], [], [], collections.Counter()
  for (file, label), (array, notes) in zip(files, decode_all(files, channels, opts.resolution, flag)):
    if array is None:
      skipped.append((file, notes))
      continue
    converted.update(notes)
    images.append(array)
    labels.append(label)
  _log_skipped(flag, skipped)
  if not images:
    raise DataError(f"{flag}: none of its {len(files)} image files could be decoded")
  lost = sorted(set(classes) - {classes[label] for label in labels}) if classes else []
  if lost:
    raise DataError(f"{flag}: no image of class folder(s) {', '.join(lost)} could be decoded; each class folder "
                    "is one label, so remove them or replace their files")
  logging.info("%s: %d images as %s (%s); converted: %s", flag, len(images), "RGB" if channels == 3 else
               "grayscale", "--channels" if opts.channels else "RGB when any image has colour",
               decode.summary(converted))
  return in_memory(f"folder:{path}", np.stack(images), np.array(labels, np.int32), len(classes), opts.seed)
