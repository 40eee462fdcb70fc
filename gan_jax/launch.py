"""Everything before a run's first step, in an order that writes nothing until every check passed.

validate flags -> read the data -> resume rules against the checkpoint -> networks, mesh, feed ->
compile the first call and check it fits in memory -> lock the workdir -> set outputs aside
(--restart) -> restore the newest verified checkpoint or build a fresh state -> config.json.
"""
import contextlib
import datetime
import json
import os
import shutil

import jax
import numpy as np
from absl import logging

from gan_jax import checkpoint as ckpt_lib
from gan_jax import config as config_lib
from gan_jax import data as data_lib
from gan_jax import memory, sharding, workdir
from gan_jax import metrics as metrics_lib
from gan_jax.data.feed import make_feed
from gan_jax.errors import CheckpointError, ConfigError, WorkdirError
from gan_jax.metrics import features
from gan_jax.nets import build_nets
from gan_jax.resume import check_data, check_layout, check_resumable
from gan_jax.sharding import DATA_AXIS
from gan_jax.state import init_images, init_state, make_optimizers
from gan_jax.train_fn import steps_per_call, train_fn_from_config


def image_feature_network(cfg, dataset):
  """(feature_fn, identity) of the image metrics' network, or None when no metric of the run reads
  features; Inception's weight file is found and read here, before anything is written (a missing
  file is a one-line DataError)."""
  specs = [metrics_lib.METRICS.get(n) for n in cfg.eval_metric_names]
  if cfg.is_toy or not any(metrics_lib.FEATURES in s.needs for s in specs):
    return None
  network = cfg.feature_network(dataset.data_shape[-1])
  for spec in specs:
    if spec.network not in (None, network):
      raise ConfigError("eval_metrics", cfg.eval_metrics, f"{spec.name} needs the {spec.network} network's "
                        f"features and {cfg.dataset} is evaluated with {network} features: drop {spec.name}, or "
                        f"pass --eval_features={spec.network}")
  return features.feature_network(network, cfg.inception_weights)


def check_evaluation_fits(cfg, data_shape):
  """--eval_samples and --theory_samples whose arrays cannot fit in host memory are refused now,
  before anything is written (XLA would abort the process at the first evaluation)."""
  memory.refuse_if_too_large("eval_samples", cfg.eval_samples, memory.sample_bytes(
      cfg.eval_samples, cfg.latent_dim, data_shape, features=bool(cfg.eval_metric_names)), "the evaluation's samples")
  if cfg.is_toy:
    memory.refuse_if_too_large("theory_samples", cfg.theory_samples, 3 * memory.sample_bytes(
        cfg.theory_samples, cfg.latent_dim, data_shape, features=False), "the theory's samples")


class Run:
  """One run's fixed parts: config, data, networks, optimisers, mesh, feed, compiled first call."""

  def __init__(self, cfg):
    config_lib.validate(cfg)
    self.cfg = cfg
    if "://" not in cfg.workdir:
      workdir.refuse_links(cfg.workdir)
    self.dataset = data_lib.make_dataset(cfg)  # Fails on bad data before anything is written.
    check_evaluation_fits(cfg, self.dataset.data_shape)
    self.data_fingerprint = self.dataset.fingerprint()
    saved_step, self.saved_meta = (None, None) if cfg.restart else ckpt_lib.read_meta(
        os.path.join(cfg.workdir, "checkpoints"))
    self.accepted_changes = (check_resumable(cfg, self.saved_meta["config"]) + check_data(cfg, self.saved_meta, self.dataset)
                             if self.saved_meta else [])
    self.feature = image_feature_network(cfg, self.dataset)
    self.mesh = sharding.make_mesh(cfg.num_devices)
    sharding.check_batch_divides(cfg.batch_size, self.mesh)
    self.nets = build_nets(cfg, self.dataset.data_shape, DATA_AXIS, self.dataset.num_classes)
    self.g_tx, self.d_tx = make_optimizers(cfg)
    self.d_init_images = init_images(cfg, self.dataset)
    self.is_chief = jax.process_index() == 0
    self.spc = steps_per_call(cfg, jax.default_backend())
    self.abstract_state = sharding.replicated_abstract(jax.eval_shape(self.init_state), self.mesh)
    if self.saved_meta:
      check_layout(cfg, saved_step, self.abstract_state)
    self.feed = make_feed(self.dataset, self.mesh, cfg.d_steps, cfg.batch_size)
    self.fns = {}
    self.checkpointer = None

  def sampling_nets(self):
    """G and D as built for sampling and evaluation: without the device axis."""
    return build_nets(self.cfg, self.dataset.data_shape, None, self.dataset.num_classes)

  def init_state(self, d_init_images=None):
    """The fresh state (`state.init_state`); without images (shapes only) D is initialised on zeros."""
    return init_state(self.cfg, self.nets, self.g_tx, self.d_tx, d_init_images)

  def train_fn(self, num_steps: int):
    """The compiled train function for calls of `num_steps` steps (compiled once, ahead of time)."""
    if num_steps not in self.fns:
      fn = train_fn_from_config(self.cfg, self.nets, self.g_tx, self.d_tx, self.mesh, num_steps, self.feed.batch)
      bad = jax.ShapeDtypeStruct((), np.int32, sharding=sharding.replicated_sharding(self.mesh))
      self.fns[num_steps] = fn.lower(self.abstract_state, bad, self.feed.data,
                                     self.feed.abstract_inputs(num_steps)).compile()
    return self.fns[num_steps]

  def check_fits(self, first_call: int):
    """Compiles the first call and refuses a batch that does not fit in device (or host) memory."""
    cfg = self.cfg
    mem = self.train_fn(first_call).memory_analysis()
    device = self.mesh.devices.flat[0]
    per_device = (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
                  - mem.alias_size_in_bytes)
    sharing = len(self.mesh.local_devices) if device.platform == "cpu" else 1  # fake CPU devices share RAM
    need = per_device * sharing + self.feed.host_bytes(first_call)
    have = memory.device_available(device)
    if need > 0.9 * have:
      raise ConfigError("batch_size", cfg.batch_size,
                        f"one call of {first_call} step(s) needs ~{need / 2**30:.1f} GiB of {device.platform} memory "
                        f"and {have / 2**30:.1f} GiB are free; lower --batch_size (or --steps_per_call)")

  def meta(self, step, best, extra=None):
    """What a checkpoint records beside the state."""
    cfg, dataset = self.cfg, self.dataset
    return {"config": config_lib.to_dict(cfg), "step": step, "data_shape": list(dataset.data_shape),
            "num_classes": dataset.num_classes, "data_batches_consumed": step * cfg.d_steps,
            "data": self.data_fingerprint, "best_score": best, **(extra or {})}

  @contextlib.contextmanager
  def locked(self):
    """WORKDIR/.lock held by process 0 for the run; every process stops if it cannot be taken."""
    lock, error = workdir.WorkdirLock(self.cfg.workdir), None
    if self.is_chief:
      try:
        lock.acquire()
      except WorkdirError as e:
        error = e
    if sharding.any_process(error is not None):
      raise error or WorkdirError(f"process 0 could not lock --workdir={self.cfg.workdir}")
    try:
      yield
    finally:
      if self.is_chief:
        lock.release()

  def restore_or_init(self):
    """(state, best score): the newest verified checkpoint, or a fresh state.

    With --restart the workdir's outputs are first moved to WORKDIR/previous_<time>/. A workdir
    whose every checkpoint proves unreadable or corrupt is refused (they are in checkpoints_corrupt/).
    A fresh state is built by one jitted function, born replicated on the mesh.
    """
    cfg = self.cfg
    if cfg.restart and self.is_chief:
      moved = workdir.set_aside_outputs(cfg.workdir)
      if moved:
        logging.warning("--restart: moved this workdir's earlier outputs to %s", moved)
    self.checkpointer = ckpt_lib.Checkpointer(cfg.workdir, cfg.keep_checkpoints, cfg.checkpoint_timeout)
    if self.saved_meta:
      restored = self.checkpointer.restore_latest(self.abstract_state)
      if not restored:
        raise CheckpointError(
            f"no checkpoint in {cfg.workdir}/checkpoints could be read or verified; they were moved to "
            f"{cfg.workdir}/checkpoints_corrupt/. Rerun with --restart to start over here (the earlier outputs "
            "are kept in previous_<time>/) or use a new --workdir")
      state, meta, step = restored
      logging.info("resuming from %s/checkpoints/%d", cfg.workdir, step)
      return state, meta.get("best_score")
    return self.fresh_state(), None

  def fresh_state(self):
    """The state at step 0, by one jitted function, born replicated on the mesh."""
    return jax.jit(self.init_state, out_shardings=sharding.replicated_sharding(self.mesh))(self.d_init_images)

  def write_run_files(self, start: int):
    """config.json (and config_history.jsonl for accepted changes); metrics records past `start` dropped."""
    cfg = self.cfg
    workdir.write_json(os.path.join(cfg.workdir, "config.json"), config_lib.to_dict(cfg))
    write_labeled_examples(cfg.workdir, self.dataset)
    if self.accepted_changes:
      entry = {"step": start, "time": datetime.datetime.now().isoformat(timespec="seconds"),
               "changes": {f: {"from": old, "to": new} for f, old, new in self.accepted_changes}}
      workdir.append_line(os.path.join(cfg.workdir, "config_history.jsonl"), json.dumps(workdir.strict_json(entry)))
      logging.warning("resuming with changed flags (recorded in config_history.jsonl): %s", entry["changes"])
    workdir.keep_records_up_to(os.path.join(cfg.workdir, "metrics.jsonl"), start)


LABELED_RECORD = "labeled_examples.json"


def write_labeled_examples(directory: str, dataset):
  """DIRECTORY/labeled_examples.json: the semi-supervised run's labelled subset (indices into the training
  split, labels, counts per class), rewritten at every start (a pure function of the data and the seed)."""
  if hasattr(dataset, "record"):
    workdir.write_json(os.path.join(directory, LABELED_RECORD), dataset.record())


@contextlib.contextmanager
def removed_on_failure(path: str, enabled: bool):
  """Deletes `path` if the block fails while `enabled()` holds (a run that wrote nothing worth keeping)."""
  try:
    yield
  except BaseException:
    if enabled() and os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
    raise
