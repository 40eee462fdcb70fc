"""Train a GAN: `python experiments/run.py --flagfile=ring.flags [--workdir=W] [--seed=S ...]`.

The only place that reads absl FLAGS: one flag per `gan_jax.config.Config` field.
A flagfile name that does not exist as given is also looked up in experiments/.
"""
import dataclasses
import os
import sys

from absl import app, flags, logging

from gan_jax import xla_cpu

xla_cpu.configure()  # Before JAX starts its CPU backend.
from gan_jax import config as config_lib  # noqa: E402
from gan_jax import errors, writers  # noqa: E402

EXPERIMENTS = os.path.dirname(os.path.abspath(__file__))


def define_flags():
  for field in dataclasses.fields(config_lib.Config):
    default, help_text = field.default, field.metadata["help"]
    if isinstance(default, bool):
      flags.DEFINE_bool(field.name, default, help_text)
    elif isinstance(default, int):
      flags.DEFINE_integer(field.name, default, help_text)
    elif isinstance(default, float):
      flags.DEFINE_float(field.name, default, help_text)
    elif isinstance(default, tuple):
      flags.DEFINE_list(field.name, [str(v) for v in default], help_text)
    else:
      flags.DEFINE_string(field.name, default, help_text)


def define_distributed_flags():
  """How this process joins a multi-process job (not part of the run's Config)."""
  flags.DEFINE_string("coordinator_address", "", "host:port of process 0 for jax.distributed.")
  flags.DEFINE_integer("num_processes", 0, "Processes in the job (with --coordinator_address).")
  flags.DEFINE_integer("process_id", -1, "This process's index, 0 .. num_processes - 1.")
  flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() and let it read the "
                    "cluster's environment (SLURM, Open MPI, TPU VM pods).")


def define_process_flags():
  """Settings of this process that do not change what the run computes (not part of its Config)."""
  from gan_jax import runtime
  flags.DEFINE_string("compilation_cache", runtime.default_cache_dir(),
                      "JAX's persistent compilation cache: a rerun or a resume loads the compiled steps "
                      f"from here instead of compiling again ('' turns it off; ${runtime.CACHE_ENV} sets "
                      "the default).")


def config_from_flags() -> config_lib.Config:
  values = {}
  for field in dataclasses.fields(config_lib.Config):
    value = flags.FLAGS[field.name].value
    if isinstance(field.default, tuple):
      try:
        value = tuple(int(v) for v in value)
      except ValueError:
        raise errors.ConfigError(field.name, ",".join(value), "a comma-separated list of integers")
    values[field.name] = value
  return config_lib.Config(**values)


def resolve_flagfiles(argv):
  """`--flagfile=ring.flags` also finds experiments/ring.flags."""
  out = []
  for arg in argv:
    if arg.startswith("--flagfile="):
      path = arg.split("=", 1)[1]
      if not os.path.exists(path) and os.path.exists(os.path.join(EXPERIMENTS, path)):
        arg = "--flagfile=" + os.path.join(EXPERIMENTS, path)
      elif not os.path.exists(path):
        fail(f"--flagfile={path}: no such file here or in {EXPERIMENTS}; "
             f"available: {', '.join(sorted(f for f in os.listdir(EXPERIMENTS) if f.endswith('.flags')))}")
    out.append(arg)
  return out


def fail(message: str):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  try:
    return flags.FLAGS(resolve_flagfiles(argv))
  except flags.Error as e:
    fail(f"{e}. See --helpfull for the valid flags.")


def main(argv):
  writers.quiet_library_logs()
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]}; flags are written --name=value")
  from gan_jax import runtime, sharding, train  # Imported after flag parsing: JAX starts here.
  try:
    cfg = config_lib.validate(config_from_flags())
    f = flags.FLAGS
    sharding.initialize_distributed(f.coordinator_address, f.num_processes, f.process_id, f.distributed)
    runtime.enable_compilation_cache(f.compilation_cache)
    train.train_and_evaluate(cfg)
  except (errors.ConfigError, errors.DataError, errors.NonFiniteError) as e:
    fail(str(e))
  logging.info("done: outputs in %s", flags.FLAGS.workdir)


if __name__ == "__main__":
  define_flags()
  define_distributed_flags()
  define_process_flags()
  app.run(main, flags_parser=parse_flags)
