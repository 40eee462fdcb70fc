"""Device mesh, data-parallel placement and multi-host start-up.

One mesh axis, 'data': the global batch is split across every device of every
host, the state is replicated. Each process feeds only its own rows of a global
batch; `jax.make_array_from_process_local_data` assembles the global array.
"""
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gan_jax.errors import ConfigError

DATA_AXIS = "data"  # The one mesh axis: devices that split the batch.
BATCH_SPEC = P(None, None, DATA_AXIS)  # Stacked batches [steps, k, B, ...]: rows split over DATA_AXIS.


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1,
                           auto: bool = False) -> None:
  """Starts JAX's multi-process runtime; must run before any JAX computation.

  Explicit: all three of coordinator_address ('host:port' of process 0), num_processes and
  process_id. `auto=True` lets `jax.distributed.initialize()` read them from the cluster
  (SLURM, Open MPI, TPU VM pods). Neither: a single-process run, nothing to do.
  """
  if coordinator_address or num_processes > 0 or process_id >= 0:
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
  elif auto:
    jax.distributed.initialize()


def host_array(a) -> np.ndarray:
  """A replicated (possibly multi-process) array -> numpy, read from this process's first copy."""
  return np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array) else np.asarray(a)


def to_host(tree):
  """`host_array` of every leaf."""
  return jax.tree.map(host_array, tree)


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any (a no-op for one process)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D mesh, axis 'data', over the first `num_devices` devices (0: all of all processes)."""
  available = jax.device_count()
  if num_devices > available:
    raise ConfigError("num_devices", num_devices, f"only {available} devices are available")
  n = num_devices or available
  if n != available and jax.process_count() > 1:
    raise ConfigError("num_devices", num_devices, "multi-process runs use every device: pass 0")
  return jax.make_mesh((n,), (DATA_AXIS,), devices=jax.devices()[:n])


def replicated_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh):
  """Places a pytree on every device of `mesh` (P())."""
  return jax.device_put(tree, replicated_sharding(mesh))


def replicated_abstract(abstract_tree, mesh):
  """ShapeDtypeStructs placed replicated on `mesh`: the restore target for orbax."""
  sharding = NamedSharding(mesh, P())
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract_tree)


def process_rows(global_batch: int) -> slice:
  """This process's rows of a global batch (contiguous, equal shares)."""
  n, i = jax.process_count(), jax.process_index()
  per = global_batch // n
  return slice(i * per, (i + 1) * per)


def shard_batches(batches, mesh):
  """Process-local batches, leaves [S, k, b_local, ...] -> global arrays sharded on axis 2."""
  sharding = NamedSharding(mesh, BATCH_SPEC)
  return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)),
                      batches)


def batch_struct(shape, dtype, mesh) -> jax.ShapeDtypeStruct:
  """The abstract global array of stacked batches [steps, k, B, ...], sharded like `shard_batches`."""
  return jax.ShapeDtypeStruct(tuple(shape), dtype, sharding=NamedSharding(mesh, BATCH_SPEC))


def check_batch_divides(batch_size: int, mesh) -> None:
  """The global batch must split evenly over devices and processes."""
  if batch_size % mesh.size:
    raise ConfigError("batch_size", batch_size,
                      f"must be divisible by the number of devices ({mesh.size}); "
                      f"try --batch_size={max(mesh.size, batch_size // mesh.size * mesh.size)}")
