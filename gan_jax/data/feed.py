"""How batches reach the training step: gathered on the devices, or prepared on host threads.

`DeviceFeed`: a `DeviceDataset` (gan_jax.data) whose arrays fit in memory lives on every device
(one copy per device, sent once; images as uint8); per call only the int32 indices of the call's
rows travel, and the step gathers its batch on device with the dataset's own `gather`, bit for
bit the host path's batches.
`HostFeed`: toy streams and datasets too large for memory; batches of the next calls are made on
a thread pool (two calls in flight) while the devices run.

Both answer `inputs(first_step, num_steps, upcoming)` with the call's inputs, leaves
[num_steps, k, B_global, ...] sharded over the devices (each process supplies only its rows), and
`data`, the arrays every call takes (the resident dataset, or nothing). Inside the step,
`batch(data, inputs)` turns one step's inputs into {'x', 'label'}.
"""
import concurrent.futures

import numpy as np

from gan_jax import sharding
from gan_jax.data import DeviceDataset, stacked_batches

DEVICE_DATA_LIMIT = 2 << 30  # Bytes of uint8 images a dataset may hold to be copied to every device.


class DeviceFeed:
  """A `DeviceDataset` resident on the devices; batches gathered by index inside the step."""
  kind = "device"

  def __init__(self, dataset, arrays, mesh, d_steps: int, batch_size: int, data=None):
    """data: the arrays already on the devices (another seed's feed of the same dataset), or None."""
    self.dataset, self.mesh, self.d_steps, self.batch_size = dataset, mesh, d_steps, batch_size
    self.rows = sharding.process_rows(batch_size)
    self.data = sharding.replicate(arrays, mesh) if data is None else data
    gather = dataset.gather
    self.batch = lambda data, inputs: gather(data, inputs["index"])  # one step's {'x': [k, b, ...], 'label'}

  def indices(self, first_step: int, num_steps: int):
    """int32 [num_steps, k, b_process]: this process's rows of each batch, as dataset indices."""
    k = self.d_steps
    return np.stack([np.stack([self.dataset.indices((first_step + s) * k + i, self.batch_size, self.rows)
                               for i in range(k)]) for s in range(num_steps)]).astype(np.int32)

  def local_inputs(self, first_step: int, num_steps: int, upcoming=()):
    """This process's rows of the call's inputs, on the host."""
    del upcoming  # Indices take microseconds: nothing to prepare ahead.
    return {"index": self.indices(first_step, num_steps)}

  def inputs(self, first_step: int, num_steps: int, upcoming=()):
    return sharding.shard_batches(self.local_inputs(first_step, num_steps), self.mesh)

  def abstract_inputs(self, num_steps: int):
    """Shapes, dtypes and shardings of `inputs` for a call of num_steps (to compile ahead)."""
    shape = (num_steps, self.d_steps, self.batch_size, *getattr(self.dataset, "index_shape", ()))
    return {"index": sharding.batch_struct(shape, np.int32, self.mesh)}

  def host_bytes(self, num_steps: int) -> int:
    return num_steps * self.d_steps * self.batch_size * 4

  def close(self):
    pass


class HostFeed:
  """Batches made by `stacked_batches` on host threads, up to two calls ahead."""
  kind = "host"

  def __init__(self, dataset, mesh, d_steps: int, batch_size: int):
    self.dataset, self.mesh, self.d_steps, self.batch_size = dataset, mesh, d_steps, batch_size
    self.rows = sharding.process_rows(batch_size)
    self.data = {}
    # A batch's images and labels: {'x', 'label'}, and the labelled stream's with --labeled_examples.
    self._keys = getattr(dataset, "batch_keys", ("x", "label"))
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    self._pending = {}

  def abstract_inputs(self, num_steps: int):
    lead = (num_steps, self.d_steps, self.batch_size)
    images = sharding.batch_struct(lead + tuple(self.dataset.data_shape), np.float32, self.mesh)
    labels = sharding.batch_struct(lead, np.int32, self.mesh)
    return {key: images if key.startswith("x") else labels for key in self._keys}

  def host_bytes(self, num_steps: int) -> int:
    """Host memory of the calls in flight (this one and two ahead), this process's rows."""
    rows = self.rows.stop - self.rows.start
    return 3 * num_steps * self.d_steps * rows * (4 * int(np.prod(self.dataset.data_shape)) + 4) * len(self._keys) // 2

  def _make(self, first_step: int, num_steps: int):
    return stacked_batches(self.dataset, first_step, num_steps, self.d_steps, self.batch_size, self.rows)

  def local_inputs(self, first_step: int, num_steps: int, upcoming=()):
    """This process's rows of the call's batches, on the host; queues the calls in `upcoming`
    ((first_step, num_steps), ...)."""
    fut = self._pending.pop((first_step, num_steps), None)
    host = fut.result() if fut is not None else self._make(first_step, num_steps)
    for stale in [key for key in self._pending if key[0] < first_step + num_steps]:
      self._pending.pop(stale).cancel()
    for call in upcoming:
      if call not in self._pending and call[1] > 0:
        self._pending[call] = self._pool.submit(self._make, *call)
    return host

  def inputs(self, first_step: int, num_steps: int, upcoming=()):
    """The call's batches on the devices (see `local_inputs`)."""
    return sharding.shard_batches(self.local_inputs(first_step, num_steps, upcoming), self.mesh)

  @staticmethod
  def batch(data, inputs):
    """One step's batches are the inputs themselves."""
    del data
    return inputs

  def close(self):
    self._pool.shutdown(wait=False, cancel_futures=True)


def make_feed(dataset, mesh, d_steps: int, batch_size: int, data=None):
  """DeviceFeed for a `DeviceDataset` whose arrays fit DEVICE_DATA_LIMIT (read whole first if needed),
  else HostFeed. data: the dataset's arrays already on the devices (`DeviceFeed.data` of another
  seed's feed: the runs of a --seeds program share one copy)."""
  arrays = dataset.device_arrays(DEVICE_DATA_LIMIT) if isinstance(dataset, DeviceDataset) else None
  if arrays is not None:
    return DeviceFeed(dataset, arrays, mesh, d_steps, batch_size, data)
  return HostFeed(dataset, mesh, d_steps, batch_size)
