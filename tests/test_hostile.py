"""Nothing silent, part 2: write errors, hostile files in the workdir and the data, inputs nobody checked.

Each test is named for the case it provokes; every case ends with one `error:` line and exit code 2 (or
is skipped and counted, for a bad image), nothing already saved lost, and no traceback.
"""
import errno
import json
import os
import pickle
import stat
import struct
import subprocess
import sys
import threading
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from gan_jax import train, workdir
from gan_jax.data import make_dataset
from gan_jax.errors import CheckpointError, ConfigError, DataError, WorkdirError
from tests.conftest import REPO, toy_config
from tests.test_checkpoint import assert_same_state
from tests.test_images import image_config, write_pngs
from tests.test_run import run_cli

KW = dict(train_steps=10, steps_per_call=5, eval_every=5, checkpoint_every=5, keep_checkpoints=3)


def one_error_line(result, *fragments):
  lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  assert len(lines) == 1 and all(f in lines[0] for f in fragments), result.stderr[-3000:]
  return lines[0]


# --- write errors -----------------------------------------------------------------------------------

def _failing_open(monkeypatch, name: str, code: int = errno.ENOSPC):
  """os.open, as the project's writer layer calls it, fails with `code` for files named `name*`."""
  real_open = os.open

  def fake(path, flags, mode=0o777, *args, **kwargs):
    base = os.path.basename(path).lstrip(".")
    if base.startswith(name):
      raise OSError(code, os.strerror(code), path)
    return real_open(path, flags, mode, *args, **kwargs)

  monkeypatch.setattr(workdir.os, "open", fake)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["metrics.jsonl", "final_samples.npy", "step_0000005.png"])
def test_a_full_disk_while_writing_records_samples_or_final_outputs_is_one_error_and_resume_is_exact(
    tmp_path, monkeypatch, name):
  with monkeypatch.context() as m:
    _failing_open(m, name)
    with pytest.raises(WorkdirError, match=rf"writing .*{name}.* failed: No space left on device \(ENOSPC\); free"):
      train.train_and_evaluate(toy_config(tmp_path / "w", **KW))
  assert not [f for f in os.listdir(tmp_path / "w") if f.endswith(".tmp")]  # no temporary file left
  train.train_and_evaluate(toy_config(tmp_path / "w", **KW))  # space again: the same command goes on
  train.train_and_evaluate(toy_config(tmp_path / "straight", **KW))
  assert_same_state(tmp_path / "straight", tmp_path / "w", 10)
  assert json.loads((tmp_path / "w" / "eval" / "final_metrics.json").read_text()) == json.loads(
      (tmp_path / "straight" / "eval" / "final_metrics.json").read_text())


def test_a_failed_whole_file_write_keeps_the_old_file_and_no_partial_one(tmp_path):
  path = tmp_path / "config.json"
  workdir.write_json(str(path), {"kept": 1})

  def half_then_fail(f):
    f.write('{"half":')
    raise OSError(errno.EIO, os.strerror(errno.EIO))

  with pytest.raises(WorkdirError, match=r"config.json failed: Input/output error \(EIO\)"):
    workdir.write_atomic(str(path), half_then_fail)
  assert json.loads(path.read_text()) == {"kept": 1} and os.listdir(tmp_path) == ["config.json"]


def _tmpfs(path, size: str):
  if os.geteuid() != 0:
    pytest.skip("mounting a size-limited tmpfs needs root")
  path.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
  if mounted.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")


FULL_DISK = ["--flagfile=ring.flags", "--train_steps=60", "--steps_per_call=10", "--checkpoint_every=10",
             "--eval_every=30", "--log_every=10", "--theory_samples=0", "--keep_checkpoints=5"]


@pytest.mark.integration
def test_a_disk_that_fills_during_a_checkpoint_is_one_line_naming_the_cause_and_resume_is_exact(tmp_path):
  """On a 7 MB tmpfs the third checkpoint does not fit: one error line with 'No space left on device'
  and the directory, no traceback; the same command resumes, elsewhere, bitwise."""
  disk = tmp_path / "disk"
  _tmpfs(disk, "7m")
  try:
    result = run_cli(*FULL_DISK, f"--workdir={disk / 'w'}")
    one_error_line(result, "No space left on device (ENOSPC)", f"{disk / 'w'}/checkpoints", "rerun the same command")
    subprocess.run(["cp", "-a", str(disk / "w"), str(tmp_path / "w")], check=True)
  finally:
    subprocess.run(["umount", str(disk)], check=False)
  assert run_cli(*FULL_DISK, f"--workdir={tmp_path / 'w'}").returncode == 0
  assert run_cli(*FULL_DISK, f"--workdir={tmp_path / 'straight'}").returncode == 0
  assert_same_state(tmp_path / "straight", tmp_path / "w", 60)


@pytest.mark.integration
def test_a_tiny_disk_from_the_start_is_one_line_and_leaves_no_empty_picture(tmp_path):
  disk = tmp_path / "disk"
  _tmpfs(disk, "64k")
  try:
    result = run_cli("--flagfile=dcgan.flags", "--train_steps=6", "--width=8", "--checkpoint_every=3",
                     "--eval_every=3", "--log_every=3", "--eval_samples=100", f"--workdir={disk / 'w'}")
    one_error_line(result, "No space left on device (ENOSPC)")
    pictures = [os.path.join(r, f) for r, _, fs in os.walk(disk) for f in fs if f.endswith((".png", ".json", ".jsonl"))]
    assert all(os.path.getsize(p) > 0 for p in pictures), pictures
  finally:
    subprocess.run(["umount", str(disk)], check=False)


# --- files planted in the workdir ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["metrics.jsonl", "config_history.jsonl", "config.json"])
def test_a_link_planted_at_a_file_the_run_writes_is_refused_and_never_followed(tmp_path, name):
  target = tmp_path / "victim"
  (tmp_path / "w").mkdir()
  os.symlink(target, tmp_path / "w" / name)  # dangling: the run would create and fill the target
  with pytest.raises(WorkdirError, match=rf"{name} is a symbolic link .* that this run did not create"):
    train.train_and_evaluate(toy_config(tmp_path / "w", **KW))
  assert not target.exists()


def test_appends_and_whole_files_never_write_through_a_link(tmp_path):
  target = tmp_path / "victim"
  os.symlink(target, tmp_path / "metrics.jsonl")
  with pytest.raises(WorkdirError, match="symbolic link this run did not create"):
    workdir.append_line(str(tmp_path / "metrics.jsonl"), "{}")
  (tmp_path / "samples").mkdir()
  os.symlink(target, tmp_path / "samples" / "step_0000005.png")
  from gan_jax import pictures
  pictures.save_png(np.zeros((4, 4, 1), np.uint8), str(tmp_path / "samples" / "step_0000005.png"))
  assert not target.exists() and not os.path.islink(tmp_path / "samples" / "step_0000005.png")


@pytest.mark.integration
def test_files_the_run_writes_honour_the_umask(tmp_path):
  old = os.umask(0o022)
  try:
    train.train_and_evaluate(toy_config(tmp_path, **KW))
  finally:
    os.umask(old)
  for name in ("config.json", "metrics.jsonl", "eval/final_metrics.json", "eval/final_samples.npy",
               "samples/step_0000005.png"):
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


# --- image folders ----------------------------------------------------------------------------------------

def _bomb_png(path, side=30000):
  """A 1x1 PNG whose header claims side x side pixels (its IHDR rewritten, CRC fixed)."""
  Image.new("L", (1, 1)).save(path)
  data = bytearray(path.read_bytes())
  ihdr = data.index(b"IHDR")
  data[ihdr + 4:ihdr + 12] = struct.pack(">II", side, side)
  data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
  path.write_bytes(bytes(data))


def test_a_decompression_bomb_in_a_folder_is_skipped_and_counted(tmp_path, caplog):
  write_pngs(tmp_path / "data", 3)
  _bomb_png(tmp_path / "data" / "zz_bomb.png")
  with caplog.at_level("WARNING"):
    ds = make_dataset(image_config(tmp_path, f"folder:{tmp_path / 'data'}"))
  assert ds.num_examples == 3 and "1 larger than PIL's decompression-bomb limit" in caplog.text


def test_a_fifo_named_like_an_image_is_skipped_not_waited_for(tmp_path, caplog):
  write_pngs(tmp_path / "data", 3)
  os.mkfifo(tmp_path / "data" / "pipe.png")
  out = {}
  with caplog.at_level("WARNING"):
    loader = threading.Thread(target=lambda: out.update(ds=make_dataset(image_config(tmp_path, f"folder:{tmp_path / 'data'}"))),
                              daemon=True)
    loader.start()
    loader.join(60)
  assert not loader.is_alive(), "reading the folder hangs on the FIFO"
  assert out["ds"].num_examples == 3 and "1 not a regular file" in caplog.text


def test_a_class_folder_without_images_is_refused_naming_it(tmp_path):
  write_pngs(tmp_path / "data" / "cats", 3)
  (tmp_path / "data" / "birds").mkdir()  # empty: 'cats' would silently take label 0 and 'dogs' label 1
  write_pngs(tmp_path / "data" / "dogs", 3)
  with pytest.raises(DataError, match=r"class folder\(s\) birds hold no images"):
    make_dataset(image_config(tmp_path, f"folder:{tmp_path / 'data'}"))
  for i in range(3):  # a class whose every image is unreadable is the same case
    (tmp_path / "data" / "birds" / f"{i}.png").write_bytes(b"not an image")
  with pytest.raises(DataError, match=r"no image of class folder\(s\) birds could be decoded"):
    make_dataset(image_config(tmp_path, f"folder:{tmp_path / 'data'}"))


@pytest.mark.integration
def test_a_folder_that_changed_since_the_checkpoint_is_refused_or_recorded(tmp_path):
  data = tmp_path / "data"
  write_pngs(data, 9)
  kw = dict(train_steps=2, eval_every=2, checkpoint_every=2, log_every=2)
  train.train_and_evaluate(image_config(tmp_path / "w", f"folder:{data}", **kw))
  write_pngs(tmp_path / "more", 10)
  os.replace(tmp_path / "more" / "im9.png", data / "im9.png")  # one image added
  with pytest.raises(ConfigError, match=r"--dataset=folder:.*holds other data than when the checkpoint.*examples 9 "
                                        r"then, 10 now.*--allow_config_change"):
    train.train_and_evaluate(image_config(tmp_path / "w", f"folder:{data}", **{**kw, "train_steps": 4}))
  train.train_and_evaluate(image_config(tmp_path / "w", f"folder:{data}", **{**kw, "train_steps": 4,
                                                                              "allow_config_change": True}))
  history = [json.loads(line) for line in (tmp_path / "w" / "config_history.jsonl").read_text().splitlines()]
  assert history[-1]["changes"]["data"]["from"]["examples"] == 9 and history[-1]["changes"]["data"]["to"]["examples"] == 10


# --- flags and sizes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,message", [
    ("--steps_per_call=\u00b2", "--steps_per_call=\u00b2: a positive number of steps, or auto"),
    ("--eval_samples=1000000000000", "--eval_samples=1000000000000: the evaluation's samples need"),
    ("--theory_samples=1000000000000", "--theory_samples=1000000000000: the theory's samples need")])
def test_sizes_and_numbers_that_cannot_work_are_refused_before_anything_is_written(tmp_path, flag, message):
  w = tmp_path / "w"
  one_error_line(run_cli("--flagfile=ring.flags", f"--workdir={w}", flag), message)
  assert not w.exists()


@pytest.mark.integration
def test_a_flagfile_inside_a_flagfile_is_found_by_its_bare_name(tmp_path):
  mine = tmp_path / "mine.flags"
  mine.write_text("# my variant of the shipped ring\n--flagfile=ring.flags\n--train_steps=20\n--steps_per_call=10\n"
                  "--eval_every=20\n--checkpoint_every=20\n--log_every=10\n--theory_samples=0\n")
  result = run_cli(f"--flagfile={mine}", f"--workdir={tmp_path / 'w'}")
  assert result.returncode == 0, result.stderr[-2000:]
  config = json.loads((tmp_path / "w" / "config.json").read_text())
  assert config["train_steps"] == 20 and config["pack"] == 2  # its own flags and ring.flags'
  (tmp_path / "loop.flags").write_text("--flagfile=loop.flags\n")
  one_error_line(run_cli(f"--flagfile={tmp_path / 'loop.flags'}", f"--workdir={tmp_path / 'x'}"), "includes itself")


# --- the tools -------------------------------------------------------------------------------------------

def _tool(name, *args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  return subprocess.run([sys.executable, os.path.join(REPO, "experiments", name), *args], capture_output=True,
                        text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  path = tmp_path_factory.mktemp("trained")
  train.train_and_evaluate(toy_config(path, **KW))
  return path


@pytest.mark.integration
def test_sample_py_refuses_what_cannot_be_written(trained, tmp_path):
  (tmp_path / "file").write_text("mine")
  one_error_line(_tool("sample.py", f"--workdir={trained}", f"--out={tmp_path / 'file' / 'x.png'}"), "is a file")
  one_error_line(_tool("sample.py", f"--workdir={trained}", "--num_samples=1000000000000", f"--out={tmp_path / 'a.npz'}"),
                 "--num_samples=1000000000000", "of host memory")
  assert (tmp_path / "file").read_text() == "mine" and not (tmp_path / "a.npz").exists()
  one_error_line(_tool("evaluate.py", f"--workdir={trained}", "--num_samples=1000000000000"),
                 "--num_samples=1000000000000", "of host memory")
  one_error_line(_tool("train_digit_classifier.py", "--epochs=0"), "--epochs=0: must be a positive number")


@pytest.mark.integration
def test_checkpoint_metadata_is_validated_as_strictly_as_flags(tmp_path):
  from gan_jax import checkpoint as ckpt_lib
  from gan_jax import restore
  train.train_and_evaluate(toy_config(tmp_path, **KW))
  _, _, state, _, meta = restore.load_run(str(tmp_path))
  saver = ckpt_lib.Checkpointer(str(tmp_path), 3)
  saver.save(15, state, {**meta, "step": 15, "config": {**meta["config"], "latent_dim": "2"}})
  saver.close()
  with pytest.raises(CheckpointError, match=r"checkpoints/15: its metadata's config is not usable: "
                                            r"--latent_dim='2': must be int \(a str was stored\)"):
    restore.load_run(str(tmp_path))
  one_error_line(_tool("sample.py", f"--workdir={tmp_path}", f"--out={tmp_path / 's.npz'}"), "--latent_dim='2'")


@pytest.mark.integration
@pytest.mark.parametrize("value", ["0", "-5"])
def test_evaluate_py_validates_its_flags_as_run_py_does(trained, value):
  one_error_line(_tool("evaluate.py", f"--workdir={trained}", f"--kid_subset_size={value}"),
                 f"--kid_subset_size={value}: must be a positive number")


# --- Inception weight files ---------------------------------------------------------------------------------

@pytest.fixture
def without_torch(monkeypatch):
  """The default install: no torch, so the restricted reader reads the file."""
  from gan_jax.metrics import inception_weights

  def no_torch(path):
    raise ImportError("no torch")

  monkeypatch.setattr(inception_weights, "_torch_load", no_torch)
  return inception_weights


def test_a_directory_as_the_weight_file_is_one_error(tmp_path, without_torch):
  with pytest.raises(DataError, match="is not a file"):
    without_torch.load_params(str(tmp_path), cache=str(tmp_path / "cache"))


class _Evil:
  def __reduce__(self):
    return (os.system, ("touch pwned",))


@pytest.mark.parametrize("content", ["forbidden_global", "random_bytes"])
def test_a_file_that_is_no_weight_file_is_one_error_and_runs_nothing(tmp_path, without_torch, content, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = tmp_path / "weights.pth"
  path.write_bytes(pickle.dumps({"w": _Evil()}) if content == "forbidden_global" else os.urandom(4096))
  with pytest.raises(DataError, match=r"--inception_weights=.*weights.pth: not a PyTorch weight file"):
    without_torch.load_params(str(path), cache=str(tmp_path / "cache"))
  assert not (tmp_path / "pwned").exists()


def _text(value: str) -> bytes:
  return b"X" + struct.pack("<I", len(value)) + value.encode()


def _ints(values) -> bytes:
  return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def _crafted_archive(path, size, stride, storage_floats=4):
  """A torch zip archive, its pickle written opcode by opcode as torch.save writes one (protocol 2),
  whose one tensor declares `size` / `stride` over a storage of `storage_floats` floats."""
  storage = (b"(" + _text("storage") + b"ctorch\nFloatStorage\n" + _text("0") + _text("cpu")
             + b"J" + struct.pack("<i", storage_floats) + b"tQ")  # a tuple, then BINPERSID
  tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"J\x00\x00\x00\x00" + _ints(size) + _ints(stride)
            + b"\x89N" + b"tR")  # (storage, offset 0, size, stride, False, None) -> REDUCE
  pickled = b"\x80\x02}" + _text("weight") + tensor + b"s."
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickled)
    archive.writestr("archive/data/0", np.arange(storage_floats, dtype=np.float32).tobytes())


def test_a_crafted_archive_in_bounds_reads_as_written(tmp_path):
  from gan_jax.metrics import inception_weights
  _crafted_archive(tmp_path / "ok.pth", (2, 2), (1, 2))
  np.testing.assert_array_equal(inception_weights.read_torch_file(str(tmp_path / "ok.pth"))["weight"],
                                np.arange(4, dtype=np.float32).reshape(2, 2).T)


@pytest.mark.parametrize("size,stride", [((1 << 20, 1 << 20), (1 << 20, 1)), ((3,), (2,)), ((2,), (-1,))],
                         ids=["far_beyond", "just_beyond", "negative_stride"])
def test_a_tensor_reaching_beyond_its_storage_is_refused_before_any_read(tmp_path, size, stride):
  """Read in a fresh process without torch: as_strided over a view beyond the storage would segfault or
  copy heap memory; the file has no -HEX.pth tag, so no digest check runs either."""
  path = tmp_path / "crafted.pth"
  _crafted_archive(path, size, stride)
  code = ("import sys; from gan_jax.metrics import inception_weights as w\n"
          "try:\n  w.read_torch_file(sys.argv[1])\nexcept pickle.UnpicklingError as e:\n  print('refused:', e)\n")
  result = subprocess.run([sys.executable, "-c", "import pickle\n" + code, str(path)], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0 and "refused:" in result.stdout, (result.returncode, result.stdout, result.stderr[-2000:])


@pytest.mark.integration
@pytest.mark.parametrize("value", ["0", "-2"])
def test_evaluate_py_refuses_fewer_than_one_draw(trained, value):
  one_error_line(_tool("evaluate.py", f"--workdir={trained}", f"--draws={value}"), f"--draws={value}: must be >= 1")
