"""The FID Inception network (pytorch-fid's InceptionV3 of the 2015-12-05 TensorFlow graph) in Flax.

The network every paper's FID / KID / IS / precision-recall uses: torchvision's Inception3 with
num_classes=1008 and pytorch-fid's FIDInceptionA / C / E_1 / E_2 blocks (average pooling that does
not count the padded zeros; max pooling in the last block), BatchNorm eps 1e-3 in inference. Input
as pytorch-fid's InceptionV3([3], resize_input=True, normalize_input=True): images in [0, 1] resized
to 299x299 bilinearly (align_corners=False, no antialiasing: PyTorch's F.interpolate), then 2x - 1.

  params = convert_pytorch_fid_weights(state_dict)        # {name: numpy array} of the .pth file
  pool3, logits = inception_features(params, images)       # images NHWC in [-1, 1], any side, 1 or 3 channels

pool3 [N, 2048] are the features FID, KID and precision/recall use; logits [N, 1008] the fc layer
applied to them (the Inception Score's). `tests/data/pt_inception_fixture.npz` holds pytorch-fid's
own outputs under known random weights: tests/test_inception.py checks this port against them.
Loading the user's weight file (safely, and cached) is `inception_weights.py`.
"""
import functools
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

RESOLUTION = 299
BN_EPSILON = 1e-3


# --- pytorch-fid's preprocessing ------------------------------------------------------------------

def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
  """[size_out, size_in] weights of PyTorch's 1-D bilinear interpolation, align_corners=False.

  src = (dst + 1/2) * in/out - 1/2, clamped at 0; i0 = floor(src), i1 = min(i0 + 1, in - 1);
  weights (1 - f, f) with f = src - i0 (aten's upsample_bilinear2d without antialiasing).
  """
  scale = size_in / size_out
  src = np.maximum((np.arange(size_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
  i0 = np.floor(src).astype(np.int64)
  frac = src - i0
  i1 = np.minimum(i0 + 1, size_in - 1)
  out = np.zeros((size_out, size_in))
  np.add.at(out, (np.arange(size_out), i0), 1.0 - frac)
  np.add.at(out, (np.arange(size_out), i1), frac)
  return out


def preprocess(images):
  """[N, H, W, 1 or 3] in [-1, 1] -> [N, 299, 299, 3] in [-1, 1], as pytorch-fid prepares its input."""
  x = (images + 1.0) / 2.0  # the [0, 1] images pytorch-fid takes
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  _, h, w, _ = x.shape
  if (h, w) != (RESOLUTION, RESOLUTION):
    rows = jnp.asarray(bilinear_matrix(h, RESOLUTION), x.dtype)
    cols = jnp.asarray(bilinear_matrix(w, RESOLUTION), x.dtype)
    x = jnp.einsum("ih,nhwc->niwc", rows, x, precision="highest")
    x = jnp.einsum("jw,niwc->nijc", cols, x, precision="highest")
  return 2.0 * x - 1.0


# --- the network ---------------------------------------------------------------------------------

class FrozenBatchNorm(nn.Module):
  """Inference batch norm with PyTorch's parameters: (x - mean) / sqrt(var + eps) * scale + bias."""

  @nn.compact
  def __call__(self, x):
    shape = (x.shape[-1],)
    mean, var = self.param("mean", nn.initializers.zeros, shape), self.param("var", nn.initializers.ones, shape)
    scale, bias = self.param("scale", nn.initializers.ones, shape), self.param("bias", nn.initializers.zeros, shape)
    return (x - mean) / jnp.sqrt(var + BN_EPSILON) * scale + bias


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: convolution without bias, batch norm, ReLU."""
  features: int
  kernel: Tuple[int, int] = (1, 1)
  strides: Tuple[int, int] = (1, 1)
  padding: Tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    (ph, pw) = self.padding
    x = nn.Conv(self.features, self.kernel, self.strides, padding=((ph, ph), (pw, pw)), use_bias=False,
                precision="highest", name="conv")(x)
    return nn.relu(FrozenBatchNorm(name="bn")(x))


def _avg_pool_3x3(x):
  """3x3, stride 1, padding 1, the padded zeros not counted (TensorFlow's, pytorch-fid's patch)."""
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, stride: int, pad: int = 0):
  return nn.max_pool(x, (3, 3), (stride, stride), padding=((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
  """FIDInceptionA (Mixed_5b-d)."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, name="branch1x1")(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(BasicConv(48, name="branch5x5_1")(x))
    b3 = BasicConv(64, name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """torchvision's InceptionB (Mixed_6a): a stride-2 reduction."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), (2, 2), name="branch3x3")(x)
    bd = BasicConv(64, name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), (2, 2), name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool(x, 2)], axis=-1)


class InceptionC(nn.Module):
  """FIDInceptionC (Mixed_6b-e): factorised 7x7 convolutions."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = BasicConv(192, name="branch1x1")(x)
    b7 = BasicConv(c, name="branch7x7_1")(x)
    b7 = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c, name="branch7x7dbl_1")(x)
    for i, (kernel, pad, out) in enumerate((((7, 1), (3, 0), c), ((1, 7), (0, 3), c), ((7, 1), (3, 0), c),
                                           ((1, 7), (0, 3), 192)), start=2):
      bd = BasicConv(out, kernel, padding=pad, name=f"branch7x7dbl_{i}")(bd)
    bp = BasicConv(192, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """torchvision's InceptionD (Mixed_7a): a stride-2 reduction."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(320, (3, 3), (2, 2), name="branch3x3_2")(BasicConv(192, name="branch3x3_1")(x))
    b7 = BasicConv(192, name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), (2, 2), name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool(x, 2)], axis=-1)


class InceptionE(nn.Module):
  """FIDInceptionE_1 (Mixed_7b, average pooling) or FIDInceptionE_2 (Mixed_7c, max pooling)."""
  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, name="branch1x1")(x)
    b3 = BasicConv(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
    bd = BasicConv(448, name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
    pooled = _max_pool(x, 1, 1) if self.max_pool else _avg_pool_3x3(x)
    bp = BasicConv(192, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """[N, 299, 299, 3] in [-1, 1] -> (pool3 [N, 2048], logits [N, 1008])."""

  @nn.compact
  def __call__(self, x):
    x = BasicConv(32, (3, 3), (2, 2), name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = _max_pool(BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x), 2)
    x = BasicConv(80, name="Conv2d_3b_1x1")(x)
    x = _max_pool(BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x), 2)
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
      x = InceptionA(pool_features, name=name)(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(max_pool=False, name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    return pool3, nn.Dense(1008, precision="highest", name="fc")(pool3)


# --- pytorch-fid's weights ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def param_shapes():
  """{path tuple: shape} of the network's parameters."""
  shapes = jax.eval_shape(FIDInceptionV3().init, jax.random.PRNGKey(0), jnp.zeros((1, RESOLUTION, RESOLUTION, 3)))
  return {tuple(k.key for k in path): leaf.shape
          for path, leaf in jax.tree_util.tree_flatten_with_path(shapes["params"])[0]}


_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def _target(name: str):
  """pytorch-fid's state_dict name -> (our parameter path, transform), or None for bookkeeping entries."""
  parts = name.split(".")
  if parts[-1] == "num_batches_tracked":
    return None
  if parts[0] == "fc":
    return ("fc", "kernel" if parts[1] == "weight" else "bias"), (np.transpose if parts[1] == "weight" else None)
  if parts[-2] == "conv":
    return tuple(parts[:-1]) + ("kernel",), (lambda w: np.transpose(w, (2, 3, 1, 0)))  # OIHW -> HWIO
  return tuple(parts[:-1]) + (_BN[parts[-1]],), None


def convert_pytorch_fid_weights(state_dict) -> dict:
  """{pytorch-fid state_dict name: numpy array} -> this network's params (nested dict of float32).

  Raises ValueError naming the first missing, unexpected or mis-shaped entry.
  """
  shapes, params, seen = param_shapes(), {}, set()
  for name, value in state_dict.items():
    target = _target(name)
    if target is None:
      continue
    path, transform = target
    if path not in shapes:
      raise ValueError(f"unexpected entry {name!r}: not part of pytorch-fid's FID Inception network")
    array = np.asarray(value, np.float32)
    array = transform(array) if transform is not None else array
    if array.shape != shapes[path]:
      raise ValueError(f"{name!r} has shape {np.shape(value)}; the FID Inception network expects "
                       f"{shapes[path]} after conversion")
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = array
    seen.add(path)
  missing = sorted(set(shapes) - seen)
  if missing:
    raise ValueError(f"the weights lack {'.'.join(missing[0])} (and {len(missing) - 1} more): not a "
                     "pytorch-fid FID Inception state_dict")
  return params


# --- features ----------------------------------------------------------------------------------

@jax.jit
def _forward(params, images):
  return FIDInceptionV3().apply({"params": params}, preprocess(images))


def inception_features(params, images, batch_size: int = 100, mesh=None, progress=None):
  """(pool3 [N, 2048], logits [N, 1008]) as numpy, for images NHWC in [-1, 1] (any side, 1 or 3 channels).

  Runs in chunks of `batch_size` (or of N, if fewer) split over the devices of `mesh` (default:
  every local device), a chunk rounded up to a multiple of the device count and zero-padded;
  the images' dtype sets the computation's (float32, or float64 under jax's x64 mode).
  `progress(done, total)`, if given, is called after every chunk.
  """
  devices = mesh.devices.flatten() if mesh is not None else np.array(jax.local_devices())
  mesh = mesh or jax.sharding.Mesh(devices, ("data",))
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  dtype = jnp.float64 if np.asarray(images[:1]).dtype == np.float64 and jax.config.jax_enable_x64 else jnp.float32
  params = jax.device_put(jax.tree.map(lambda a: jnp.asarray(a, dtype), params),
                          jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  step = -(-min(batch_size, len(images)) // len(devices)) * len(devices)  # a multiple of the device count
  pools, logits = [], []
  for i in range(0, len(images), step):
    chunk = np.asarray(images[i:i + step], dtype)
    n = len(chunk)
    if n < step:
      chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), dtype)])
    p, l = _forward(params, jax.device_put(chunk, rows))
    pools.append(np.asarray(p)[:n])
    logits.append(np.asarray(l)[:n])
    if progress is not None:
      progress(i + n, len(images))
  return np.concatenate(pools), np.concatenate(logits)
