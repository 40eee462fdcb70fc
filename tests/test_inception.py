"""The Flax port of pytorch-fid's FID Inception network against pytorch-fid's own outputs, and the
weight file: a safe reader, the sha256 check, the cache, the one-line error when it is missing."""
import hashlib
import io
import os
import pickle
import zipfile
import zlib

import numpy as np
import pytest

from gan_jax.errors import DataError
from gan_jax.metrics import inception, inception_weights

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "pt_inception_fixture.npz")


def fixture_weight(name: str, shape) -> np.ndarray:
  """The fixture's deterministic random weights (tests/data/pt_inception_fixture.md), cast to float32."""
  rng = np.random.default_rng(zlib.crc32(name.encode()))
  shape = tuple(shape)
  if name.endswith("running_var"):
    value = 1.0 + 0.1 * np.abs(rng.standard_normal(shape))
  elif name.endswith("running_mean") or name.endswith(".bias"):
    value = 0.1 * rng.standard_normal(shape)
  elif name.endswith("num_batches_tracked"):
    value = np.zeros(shape)
  elif len(shape) == 1:
    value = 1.0 + 0.1 * rng.standard_normal(shape)
  else:
    value = rng.standard_normal(shape) * np.sqrt(2.0 / int(np.prod(shape[1:])))
  return value.astype(np.float32)


@pytest.fixture(scope="module")
def fixture():
  return np.load(FIXTURE)


@pytest.fixture(scope="module")
def state_dict(fixture):
  shapes = [tuple(int(d) for d in s.split(",")) if s else () for s in fixture["weight_shapes"]]
  return {str(n): fixture_weight(str(n), s) for n, s in zip(fixture["weight_names"], shapes)}


@pytest.mark.parametrize("side", [32, 64])
def test_port_reproduces_pytorch_fid_pool3_and_logits(fixture, state_dict, side):
  """Float32, through the same converter a real file goes through, against pytorch-fid's float64.

  Tolerance: 1e-5 of the features' largest magnitude. Measured float32 error: 6e-7 (pool3) and 8e-7
  (logits) of it; in float64 the port agrees to 1e-12. A wrong pooling (zeros counted, max for
  average), padding, resize (align_corners=True) or block moves them by 1e-2 or more.
  """
  params = inception.convert_pytorch_fid_weights(state_dict)
  images = fixture[f"images_{side}"].astype(np.float32) / 127.5 - 1.0  # the project's [-1, 1]
  pool3, logits = inception.inception_features(params, images)
  for ours, theirs in ((pool3, fixture[f"pool3_{side}"]), (logits, fixture[f"logits_{side}"])):
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())


def test_grayscale_is_repeated_to_three_channels(state_dict):
  params = inception.convert_pytorch_fid_weights(state_dict)
  gray = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
  a, _ = inception.inception_features(params, gray)
  b, _ = inception.inception_features(params, np.repeat(gray, 3, axis=-1))
  np.testing.assert_array_equal(a, b)


def test_bilinear_matrix_matches_pytorch_interpolate():
  torch = pytest.importorskip("torch")
  x = torch.rand(1, 1, 13, 7, dtype=torch.float64)
  ref = torch.nn.functional.interpolate(x, size=(299, 5), mode="bilinear", align_corners=False)[0, 0].numpy()
  ours = inception.bilinear_matrix(13, 299) @ x[0, 0].numpy() @ inception.bilinear_matrix(7, 5).T
  np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)  # up- and down-sampling, no antialiasing


def test_converter_names_the_first_bad_entry(state_dict):
  broken = dict(state_dict)
  del broken["Mixed_6b.branch7x7_2.conv.weight"]
  with pytest.raises(ValueError, match="lack Mixed_6b.branch7x7_2.conv.kernel"):
    inception.convert_pytorch_fid_weights(broken)
  with pytest.raises(ValueError, match="unexpected entry 'AuxLogits.fc.weight'"):
    inception.convert_pytorch_fid_weights({**state_dict, "AuxLogits.fc.weight": np.zeros((1000, 768))})
  with pytest.raises(ValueError, match="'fc.bias' has shape"):
    inception.convert_pytorch_fid_weights({**state_dict, "fc.bias": np.zeros(1000)})


# --- the weight file ----------------------------------------------------------------------------------

def _named_by_digest(tmp_path, data: bytes, stem="pt_inception-2015-12-05"):
  path = tmp_path / f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
  path.write_bytes(data)
  return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_restricted_reader_reads_torch_files_like_torch(tmp_path, state_dict, legacy):
  torch = pytest.importorskip("torch")
  buffer = io.BytesIO()
  torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, buffer,
             _use_new_zipfile_serialization=not legacy)
  path = tmp_path / "w.pth"
  path.write_bytes(buffer.getvalue())
  ours = inception_weights.read_torch_file(str(path))
  theirs = torch.load(str(path), weights_only=True)
  assert set(ours) == set(theirs)
  for k, v in theirs.items():
    np.testing.assert_array_equal(ours[k], v.numpy())


def test_restricted_reader_refuses_code(tmp_path):
  class Exploit:
    def __reduce__(self):
      return (os.system, ("touch " + str(tmp_path / "pwned"),))

  path = tmp_path / "evil.pth"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"x": Exploit()}))
  with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
    inception_weights.read_torch_file(str(path))
  assert not (tmp_path / "pwned").exists()


def test_weights_load_once_check_their_digest_and_are_cached(tmp_path, state_dict, monkeypatch):
  torch = pytest.importorskip("torch")
  buffer = io.BytesIO()
  torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, buffer)
  path = _named_by_digest(tmp_path, buffer.getvalue())
  cache = tmp_path / "cache"
  params = inception_weights.load_params(str(path), str(cache))
  assert len(os.listdir(cache)) == 1
  np.testing.assert_array_equal(params["fc"]["kernel"], state_dict["fc.weight"].T)
  monkeypatch.setattr(inception_weights, "_torch_load", lambda p: (_ for _ in ()).throw(AssertionError("read")))
  again = inception_weights.load_params(str(path), str(cache))  # from the cache, no torch
  np.testing.assert_array_equal(again["Conv2d_1a_3x3"]["conv"]["kernel"], params["Conv2d_1a_3x3"]["conv"]["kernel"])
  damaged = tmp_path / "other" / path.name
  damaged.parent.mkdir()
  data = bytearray(buffer.getvalue())
  data[len(data) // 2] ^= 0xFF
  damaged.write_bytes(bytes(data))
  with pytest.raises(DataError, match="its sha256 starts .* not .* as its name says"):
    inception_weights.load_params(str(damaged), str(tmp_path / "cache2"))


def test_missing_weights_name_the_path_and_the_fix(tmp_path):
  with pytest.raises(DataError, match=r"no such file\. .*pip install pytorch-fid.*download https://github\.com/"
                                      r"mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception"):
    inception_weights.load_params(str(tmp_path / "nope.pth"))


# --- used in training -----------------------------------------------------------------------------

@pytest.mark.integration
def test_rgb_folder_run_at_64_ranks_its_best_checkpoint_by_inception_fid(tmp_path, state_dict):
  """--eval_metrics=fid on RGB data uses Inception (weights: the fixture's, in a file named by digest)."""
  import json

  from gan_jax import train
  from tests.test_images import image_config, write_pngs
  torch = pytest.importorskip("torch")
  buffer = io.BytesIO()
  torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, buffer)
  weights = _named_by_digest(tmp_path, buffer.getvalue())
  write_pngs(tmp_path / "pngs", 24, size=(64, 64))
  cfg = image_config(tmp_path / "w", f"folder:{tmp_path / 'pngs'}", resolution=64, eval_metrics="fid",
                     inception_weights=str(weights), eval_samples=16, train_steps=4, eval_every=2,
                     checkpoint_every=2)
  train.train_and_evaluate(cfg)
  records = [json.loads(l) for l in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
  fids = {r["step"]: r["fid"] for r in records if "fid" in r}
  assert sorted(fids) == [2, 4] and all(np.isfinite(v) and v > 0 for v in fids.values())
  best = min(fids, key=fids.get)
  assert os.listdir(tmp_path / "w" / "checkpoints_best") == [str(best)]
