"""Train a GAN: `python experiments/run.py --flagfile=ring.flags [--workdir=W] [--seed=S ...]`.

One flag per `gan_jax.config.Config` field (its help from `config.help_text`, which lists what the
model, dataset and metric registries hold). A flagfile named on the command line or inside another
flagfile that does not exist as given is also looked up in experiments/.
"""
import dataclasses
import os
import sys

from absl import app, flags, logging

from gan_jax import xla_cpu

xla_cpu.configure()  # Before JAX starts its CPU backend.
from gan_jax import cli, errors, runtime, writers  # noqa: E402
from gan_jax import config as config_lib  # noqa: E402

EXPERIMENTS = os.path.dirname(os.path.abspath(__file__))


def define_flags(flag_values=flags.FLAGS):
  """A flag for each Config field, and the earlier names of renamed fields as aliases."""
  for field in dataclasses.fields(config_lib.Config):
    default, help_text = field.default, config_lib.help_text(field.name)
    kw = dict(flag_values=flag_values)
    if isinstance(default, bool):
      flags.DEFINE_bool(field.name, default, help_text, **kw)
    elif isinstance(default, int):
      flags.DEFINE_integer(field.name, default, help_text, **kw)
    elif isinstance(default, float):
      flags.DEFINE_float(field.name, default, help_text, **kw)
    elif isinstance(default, tuple):
      flags.DEFINE_list(field.name, [str(v) for v in default], help_text, **kw)
    else:
      flags.DEFINE_string(field.name, default, help_text, **kw)
  for old, new in config_lib.ALIASES.items():
    flags.DEFINE_alias(old, new, flag_values=flag_values)


def define_distributed_flags():
  """How this process joins a multi-process job (not part of the run's Config)."""
  flags.DEFINE_string("coordinator_address", "", "host:port of process 0 for jax.distributed.")
  flags.DEFINE_integer("num_processes", 0, "Processes in the job (with --coordinator_address).")
  flags.DEFINE_integer("process_id", -1, "This process's index, 0 .. num_processes - 1.")
  flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() and let it read the "
                    "cluster's environment (SLURM, Open MPI, TPU VM pods).")


def define_process_flags():
  """Settings of this process that do not change what the run computes (not part of its Config)."""
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
        raise errors.ConfigError(field.name, ",".join(value), "a comma-separated list of integers") from None
    values[field.name] = value
  return config_lib.Config(**values)


def _flagfile_path(path: str, inside: str = "") -> str:
  """`ring.flags` also finds experiments/ring.flags (a nested one also beside the file naming it);
  a missing file is one error line."""
  places = [path] + ([os.path.join(os.path.dirname(inside), path)] if inside else []) + [os.path.join(EXPERIMENTS, path)]
  for place in places:
    if os.path.isfile(place):
      return place
  where = f" (named in {inside})" if inside else ""
  cli.fail(f"--flagfile={path}{where}: no such file here or in {EXPERIMENTS}; "
           f"available: {', '.join(sorted(f for f in os.listdir(EXPERIMENTS) if f.endswith('.flags')))}")


def _flagfile_value(arg: str, args: list):
  """The path of a --flagfile argument (`--flagfile=P` or `--flagfile P`), or None for any other."""
  if arg.startswith(("--flagfile=", "-flagfile=")):
    return arg.split("=", 1)[1]
  if arg in ("--flagfile", "-flagfile") and args:
    return args.pop(0)
  return None


def expand_flagfile(path: str, seen=()) -> list:
  """The flags of a flagfile, nested flagfiles expanded in place (absl's format: one flag a line,
  '#' and '//' comments, blank lines ignored)."""
  real = os.path.realpath(path)
  if real in seen:
    cli.fail(f"--flagfile={path}: includes itself (through {' -> '.join(seen)})")
  with open(path) as f:
    lines = [line.strip() for line in f]
  out = []
  for line in lines:
    if not line or line.startswith(("#", "//")):
      continue
    nested = _flagfile_value(line, [])
    out += expand_flagfile(_flagfile_path(nested, path), (*seen, real)) if nested is not None else [line]
  return out


def resolve_flagfiles(argv):
  """Flagfiles first (in their order, expanded), then every other flag: a flag on the command line
  wins over a flagfile's wherever it stands (absl applies flags in order)."""
  program, args = argv[:1], list(argv[1:])
  from_files, others = [], []
  while args:
    arg = args.pop(0)
    path = _flagfile_value(arg, args)
    if path is None:
      others.append(arg)
    else:
      from_files += expand_flagfile(_flagfile_path(path))
  return program + from_files + others


HELP = ("--help", "-help", "-h", "--helpfull", "-helpfull", "--helpshort", "-helpshort", "-?")


def parse_flags(argv):
  if any(arg in HELP for arg in argv[1:]):  # absl exits 1 after printing help; asking for it is no error
    print(flags.FLAGS.main_module_help() if "short" in " ".join(argv) else flags.FLAGS.get_help())
    sys.exit(0)
  try:
    return flags.FLAGS(resolve_flagfiles(argv))
  except flags.Error as e:
    cli.fail(f"{e}. See --helpfull for the valid flags.")


def check_distributed_flags(f):
  """--coordinator_address, --num_processes and --process_id go together (or --distributed alone)."""
  given = {"coordinator_address": bool(f.coordinator_address), "num_processes": f.num_processes > 0,
           "process_id": f.process_id >= 0}
  if any(given.values()) and not all(given.values()):
    missing = ", ".join(f"--{k}" for k, v in given.items() if not v)
    cli.fail(f"--{next(k for k, v in given.items() if v)} needs {missing} too: a multi-process job is started "
             "with all three (or with --distributed to read them from SLURM, Open MPI or a TPU pod)")
  if all(given.values()) and not f.process_id < f.num_processes:
    cli.fail(f"--process_id={f.process_id}: must lie in [0, --num_processes={f.num_processes})")


def main(argv):
  writers.quiet_library_logs()
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; flags are written --name=value")
  check_distributed_flags(flags.FLAGS)
  try:
    with runtime.handling_signals(runtime.Signals()) as signals, cli.one_line_errors():  # Before JAX: runtime.Signals
      from gan_jax import sharding, train  # Imported after flag parsing: JAX starts here.
      cfg = config_lib.validate(config_from_flags())
      f = flags.FLAGS
      sharding.initialize_distributed(f.coordinator_address, f.num_processes, f.process_id, f.distributed)
      runtime.enable_compilation_cache(f.compilation_cache)
      train.train_and_evaluate(cfg, signals)
  except KeyboardInterrupt:  # Ctrl-C at start-up or in the final evaluation (while training, the loop saves, exits 0)
    print("error: interrupted outside the training loop; checkpoints already saved are kept (a new workdir "
          "that trained no step is removed); rerun the same command to go on", file=sys.stderr, flush=True)
    os._exit(130)  # Not sys.exit: a compilation still running in XLA's threads can crash the teardown.
  logging.info("done: outputs in %s", flags.FLAGS.workdir)


if __name__ == "__main__":
  define_flags()
  define_distributed_flags()
  define_process_flags()
  app.run(main, flags_parser=parse_flags)
