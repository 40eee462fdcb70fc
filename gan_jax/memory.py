"""What fits: memory a run or a tool may use, and the one-line refusal of a size that cannot fit,
checked before anything is written (a size XLA cannot allocate aborts the whole process)."""
import numpy as np

from gan_jax.errors import ConfigError

HOST_SHARE = 0.8  # of the host's available memory a run's evaluation, or a tool, may plan to use
FEATURE_FLOATS = 2048 + 1008  # the largest feature network's pool3 and logits per image (Inception)


def host_available() -> int:
  """The host's available memory in bytes (Linux MemAvailable; 2**63 where /proc/meminfo is absent)."""
  try:
    with open("/proc/meminfo") as f:
      info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024
  except (OSError, KeyError, ValueError):
    return 2 ** 63


def device_available(device) -> float:
  """Memory a run may use on `device`: free accelerator memory, or the host's available memory."""
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
  return host_available()


def sample_bytes(count: int, latent_dim: int, data_shape, features: bool = True) -> int:
  """Host bytes of `count` generated samples in float32: latents, two copies of the samples (chunks and
  their concatenation) and, for metrics, their features."""
  per = latent_dim + 2 * int(np.prod(data_shape)) + (FEATURE_FLOATS if features else 0)
  return 4 * count * per


def refuse_if_too_large(flag: str, value, need: int, what: str):
  """A ConfigError for `--flag=value` when `need` bytes of `what` exceed HOST_SHARE of available memory."""
  have = host_available()
  if need > HOST_SHARE * have:
    raise ConfigError(flag, value, f"{what} need ~{need / 2**30:,.1f} GiB of host memory and "
                      f"{have / 2**30:.1f} GiB are available; lower --{flag}")
