"""The FID Inception weights from the user's own pytorch-fid file, read without executing pickled code.

pytorch-fid downloads `pt_inception-2015-12-05-6726825d.pth` to the torch hub cache
(~/.cache/torch/hub/checkpoints/) the first time it runs; `--inception_weights=PATH` names another
copy. The file's sha256 must start with the hex prefix in its name (6726825d). It is read once:
with torch's `weights_only=True` loader when torch is installed, else by `read_torch_file`, a
restricted reader of PyTorch's zip and legacy formats that rebuilds tensors as numpy arrays and
refuses every other pickled object. The converted parameters go to a msgpack cache
(~/.cache/gan_jax/inception/) that later runs read without torch. Nothing is downloaded.
"""
import collections
import hashlib
import io
import os
import pickle
import re
import zipfile

import numpy as np
from absl import logging

from gan_jax import runtime, workdir
from gan_jax.errors import DataError, WorkdirError

FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FILE_NAME


def default_path() -> str:
  """Where pytorch-fid keeps the file: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
  torch_home = os.environ.get("TORCH_HOME") or runtime.user_cache("torch")
  return os.path.join(torch_home, "hub", "checkpoints", FILE_NAME)


def cache_dir() -> str:
  return runtime.user_cache("gan_jax", "inception")


# --- a restricted reader of torch.save files ---------------------------------------------------------

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
           "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _Storage:
  """torch.FloatStorage and friends, as pickled: markers of an element type."""

  def __init__(self, dtype):
    self.dtype = dtype


def _check_view(length: int, offset, size, stride):
  """The strided view (offset, size, stride) must lie inside a storage of `length` elements: every
  number a non-negative int, as many strides as sizes, the last element reached at most length - 1.
  A crafted file that declares more would make as_strided read (or crash on) memory beyond it."""
  size, stride = tuple(size), tuple(stride)
  numbers = (offset, *size, *stride)
  if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers) or len(size) != len(stride):
    raise pickle.UnpicklingError(f"a tensor's view (offset {offset!r}, size {size!r}, stride {stride!r}) is malformed")
  last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
  if last >= length or (not size and offset >= length):
    raise pickle.UnpicklingError(f"a tensor's view (offset {offset}, size {size}, stride {stride}) reaches beyond its "
                                 f"storage of {length} elements")


def _rebuild_tensor(storage, offset, size, stride, *unused):
  """torch._utils._rebuild_tensor(_v2): a strided view of a storage, checked against the storage's
  length (`_check_view`) and copied into a numpy array."""
  del unused
  data = storage()  # the storage's flat numpy array
  _check_view(len(data), offset, size, stride)
  if not size:
    return data[offset].copy()
  view = np.lib.stride_tricks.as_strided(data[offset:], shape=tuple(size),
                                         strides=tuple(s * data.dtype.itemsize for s in stride))
  return np.array(view)


class _Deferred:
  """A tensor whose storage bytes follow the pickle (legacy format): rebuilt by `_resolve`."""

  def __init__(self, args):
    self.args = args


def _resolve(obj):
  if isinstance(obj, _Deferred):
    return _rebuild_tensor(*obj.args)
  if isinstance(obj, dict):
    return obj.__class__((k, _resolve(v)) for k, v in obj.items())
  return obj


class _Unpickler(pickle.Unpickler):
  """Builds tensors, ordered dicts and plain values only; any other global is refused."""

  def __init__(self, file, read_storage=None, defer=False):
    super().__init__(file)
    self.read_storage, self.defer, self.dtypes, self.arrays = read_storage, defer, {}, {}

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return (lambda *args: _Deferred(args)) if self.defer else _rebuild_tensor
    if module == "torch._utils" and name == "_rebuild_parameter":
      return lambda data, requires_grad, hooks: data
    if module == "torch" and name in _DTYPES:
      return _Storage(_DTYPES[name])
    raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a weight file holds tensors only")

  def persistent_load(self, pid):
    kind, storage, key, _location, numel = pid[:5]
    if kind != "storage" or not isinstance(storage, _Storage):
      raise pickle.UnpicklingError(f"unexpected persistent id {pid[:2]!r}")
    key = str(key)
    self.dtypes[key] = storage.dtype

    def array():
      if key not in self.arrays:
        self.arrays[key] = self.read_storage(key, storage.dtype, int(numel))
      return self.arrays[key]

    return array


def _storage(raw: bytes, dtype, numel: int) -> np.ndarray:
  """`numel` elements of `dtype` from a storage's bytes; fewer bytes than declared is a damaged file."""
  if not isinstance(numel, int) or numel < 0 or len(raw) < numel * np.dtype(dtype).itemsize:
    raise pickle.UnpicklingError(f"a storage declares {numel!r} elements and holds {len(raw)} bytes")
  return np.frombuffer(raw, dtype, numel)


def _read_zip(path):
  """torch >= 1.6's format: ARCHIVE/data.pkl and one file per storage in ARCHIVE/data/."""
  with zipfile.ZipFile(path) as archive:
    pkl = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    root = pkl[:-len("data.pkl")]
    return _Unpickler(io.BytesIO(archive.read(pkl)), lambda key, dtype, numel: _storage(
        archive.read(f"{root}data/{key}"), dtype, numel)).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _read_legacy(path):
  """torch's older format: magic, protocol, system info, the object, its storage keys, then each
  storage as an int64 element count and the raw little-endian elements."""
  with open(path, "rb") as f:
    if _Unpickler(f).load() != _LEGACY_MAGIC:
      raise pickle.UnpicklingError("not a PyTorch file")
    _Unpickler(f).load()  # protocol version
    _Unpickler(f).load()  # system information
    objects = _Unpickler(f, defer=True)
    obj = objects.load()
    for key in _Unpickler(f).load():
      dtype = np.dtype(objects.dtypes[str(key)])
      header = f.read(8)
      count = int(np.frombuffer(header, "<i8")[0]) if len(header) == 8 else -1
      objects.arrays[str(key)] = _storage(f.read(max(count, 0) * dtype.itemsize), dtype, count)
    return _resolve(obj)


def read_torch_file(path: str) -> dict:
  """{name: numpy array} of a torch.save'd state_dict (zip or legacy format), no code executed."""
  if zipfile.is_zipfile(path):
    return dict(_read_zip(path))
  return dict(_read_legacy(path))


def _torch_load(path: str):
  import torch
  state = torch.load(path, map_location="cpu", weights_only=True)
  return {k: v.numpy() for k, v in state.items()}


# --- the weights a run uses ------------------------------------------------------------------------

def _missing_file_error(path: str) -> DataError:
  return DataError(
      f"--inception_weights={path}: no such file. The FID Inception weights are pytorch-fid's "
      f"{FILE_NAME}: `pip install pytorch-fid` and run it once (it saves the file to {default_path()}), or "
      f"download {URL} and pass its path; nothing is downloaded at run time")


def check_digest(path: str):
  """The sha256 of `path` must start with the hex tag in its name (torch hub's convention)."""
  tag = re.search(r"-([0-9a-f]{8,})\.pth$", os.path.basename(path))
  if tag is None:
    return
  with open(path, "rb") as f:
    digest = hashlib.file_digest(f, "sha256").hexdigest()
  if not digest.startswith(tag.group(1)):
    raise DataError(f"--inception_weights={path}: its sha256 starts {digest[:8]}, not {tag.group(1)} as its "
                    "name says: the file is damaged or not pytorch-fid's; download it again")


def _read_state(path: str) -> dict:
  """{name: array} of the file, with torch's weights_only loader when torch is installed, else the
  restricted reader; a file that is no PyTorch weight file, or one that asks for anything but
  tensors, is one DataError (its code never runs)."""
  try:
    try:
      return _torch_load(path)
    except ImportError:
      return read_torch_file(path)
  except Exception as e:  # noqa: BLE001 - pickle, zipfile, torch and numpy each raise their own types
    detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    raise DataError(f"--inception_weights={path}: not a PyTorch weight file this reader accepts ({detail}); "
                    f"use pytorch-fid's {FILE_NAME}") from None


def load_params(path: str = "", cache: str = ""):
  """The converted FID Inception params for the weight file at `path` (default: pytorch-fid's)."""
  import flax.serialization
  from gan_jax.metrics.inception import convert_pytorch_fid_weights
  path = path or default_path()
  if not os.path.exists(path):
    raise _missing_file_error(path)
  if not os.path.isfile(path):
    raise DataError(f"--inception_weights={path}: is not a file (a directory?); pass the path of {FILE_NAME}")
  cached = os.path.join(cache or cache_dir(), os.path.basename(path) + f".{os.path.getsize(path)}.msgpack")
  if os.path.exists(cached):
    try:
      with open(cached, "rb") as f:
        return flax.serialization.msgpack_restore(f.read())
    except Exception:  # noqa: BLE001 - a damaged cache is converted again
      logging.warning("the converted Inception weights in %s are unreadable; converting the file again", cached)
  check_digest(path)
  state = _read_state(path)
  try:
    params = convert_pytorch_fid_weights(state)
  except ValueError as e:
    raise DataError(f"--inception_weights={path}: {e}") from None
  try:
    workdir.write_atomic(cached, lambda f: f.write(flax.serialization.msgpack_serialize(params)), mode="wb")
  except WorkdirError as e:  # a cache: this run goes on without it
    logging.warning("converted Inception weights not cached: %s", e)
  return params
