"""Stacked MNIST: the dataset is a pure function of (seed, index), gathered on the devices from the digits
alone; the mode metric on constructed cases; the literature's nets; a short run of the flagfile."""
import json

import jax
import numpy as np
import pytest

from gan_jax import sharding
from gan_jax.data import make_dataset, stacked_batches
from gan_jax.data.feed import DeviceFeed, make_feed
from gan_jax.data.stacked import EXAMPLES, StackedDigits, digit_indices, stream_key
from gan_jax.metrics import stacked
from tests.test_images import image_config


def test_an_example_is_a_pure_function_of_the_seed_and_its_index(tmp_path):
  a, b = StackedDigits("train", 28, seed=3), StackedDigits("train", 28, seed=3)
  index = np.array([0, 1, 127_999, 5_000])
  for (xa, ya), (xb, yb) in [(a.examples(index), b.examples(index))]:
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  other = StackedDigits("train", 28, seed=4)
  assert not np.array_equal(a.examples(index)[1], other.examples(index)[1])
  np.testing.assert_array_equal(a.get_batch(7, 64)["x"], b.get_batch(7, 64)["x"])  # what a resume reads
  assert a.num_examples == EXAMPLES["train"] == 128_000 and a.num_classes == 1000 and a.data_shape == (28, 28, 3)


def test_each_channel_is_a_digit_of_the_split_and_the_label_is_the_mode():
  ds = StackedDigits("train", 28, seed=0)
  index = np.arange(2_000)
  digits = digit_indices(ds.key, index, len(ds.digits))
  images, labels = ds.examples(index)
  for channel in range(3):
    np.testing.assert_array_equal(images[..., channel], ds.digits[digits[:, channel]])
  a, b, c = (ds.digit_labels[digits[:, j]] for j in range(3))
  np.testing.assert_array_equal(labels, 100 * a + 10 * b + c)
  # Channels drawn independently and uniformly: every digit of the split is used, each mode about as often.
  many = digit_indices(ds.key, np.arange(128_000), len(ds.digits))
  assert len(np.unique(many)) == 4000 and abs(np.corrcoef(many[:, 0], many[:, 1])[0, 1]) < 0.01
  modes = np.bincount(ds.examples(np.arange(128_000))[1], minlength=1000)
  assert modes.min() > 70 and modes.max() < 200  # 128 expected per mode


def test_train_and_test_triples_share_no_digit():
  train_ds, test_ds = StackedDigits("train", 28, 0), StackedDigits("test", 28, 0)
  assert len(train_ds.digits) == 4000 and len(test_ds.digits) == 1000 and test_ds.num_examples == 26_000
  train_bytes = {d.tobytes() for d in train_ds.digits}
  assert not any(d.tobytes() in train_bytes for d in test_ds.digits)
  assert stream_key(0, "train") != stream_key(0, "test")


@pytest.mark.parametrize("d_steps", [1, 2])
def test_batches_gathered_inside_the_step_from_the_digits_equal_the_host_batches(tmp_path, d_steps):
  """On 8 devices, across an epoch boundary: the devices hold the 4,000 digits and no triple table."""
  cfg = image_config(tmp_path, "stacked_mnist5k", batch_size=16, d_steps=d_steps, num_devices=8)
  dataset = make_dataset(cfg)
  feed = make_feed(dataset, sharding.make_mesh(8), d_steps, 16)
  assert isinstance(feed, DeviceFeed)
  assert max(a.size for a in jax.tree.leaves(feed.data)) == 4000 * 28 * 28  # the digits; no triples
  first = dataset.num_examples // (16 * d_steps) - 1  # the calls straddle the first epoch's end
  inputs = feed.inputs(first, 3)
  per_device = jax.shard_map(jax.vmap(feed.batch, in_axes=(None, 0)), mesh=sharding.make_mesh(8),
                             in_specs=(sharding.P(), sharding.BATCH_SPEC), out_specs=sharding.BATCH_SPEC)
  gathered = jax.jit(per_device)(feed.data, inputs)
  host = stacked_batches(dataset, first, 3, d_steps, 16)
  np.testing.assert_array_equal(np.asarray(gathered["x"]).view(np.uint32), host["x"].view(np.uint32))
  np.testing.assert_array_equal(np.asarray(gathered["label"]), host["label"])


def _labels_of(modes):
  modes = np.asarray(modes)
  return np.stack([modes // 100, modes // 10 % 10, modes % 10], 1)


def test_the_mode_metric_on_constructed_histograms():
  uniform = stacked.mode_metrics(_labels_of(np.repeat(np.arange(1000), 26)))
  assert uniform["stacked_modes"] == uniform["stacked_modes_any"] == 1000 and uniform["stacked_kl"] == pytest.approx(0.0, abs=1e-12)
  one = stacked.mode_metrics(_labels_of(np.full(500, 123)))
  assert one["stacked_modes"] == 1 and one["stacked_kl"] == pytest.approx(np.log(1000), rel=1e-12)
  half = stacked.mode_metrics(_labels_of(np.repeat(np.arange(0, 1000, 2), 4)))  # 500 modes equally
  assert half["stacked_modes"] == 500 and half["stacked_kl"] == pytest.approx(np.log(2), rel=1e-12)
  assert half["stacked_samples"] == 2000


def test_the_kl_splits_into_the_channels_and_their_dependence():
  """stacked_kl = sum of the channels' KL(p_c || uniform) + KL(p || p_0 x p_1 x p_2), each part on cases
  whose values are known: three equal channels (uniform marginals, dependence log 100); independent
  channels with uneven first digits (dependence 0); and the identity on a random histogram."""
  same = stacked.mode_metrics(_labels_of(np.repeat(np.arange(10) * 111, 7)))
  np.testing.assert_allclose(same["stacked_kl_channels"], 0.0, atol=1e-12)
  assert same["stacked_dependence"] == pytest.approx(np.log(100), rel=1e-12)
  first = np.repeat([0, 1], [3, 1])  # first digit 0 three times as often as 1; the other two uniform
  grid = np.array([(a, b, c) for a in first for b in range(10) for c in range(10)])
  uneven = stacked.mode_metrics(grid)
  p = np.array([0.75, 0.25])
  assert uneven["stacked_kl_channels"][0] == pytest.approx(float(np.sum(p * np.log(p / 0.1))), rel=1e-12)
  np.testing.assert_allclose(uneven["stacked_kl_channels"][1:], 0.0, atol=1e-12)
  assert uneven["stacked_dependence"] == pytest.approx(0.0, abs=1e-12)
  rng = np.random.default_rng(0)
  random = stacked.mode_metrics(_labels_of(rng.choice(1000, 5000, p=rng.dirichlet(np.ones(1000) * 0.3))))
  assert random["stacked_dependence"] > 0.01
  assert sum(random["stacked_kl_channels"]) + random["stacked_dependence"] == pytest.approx(random["stacked_kl"], rel=1e-9)


@pytest.fixture(scope="module")
def real_test_triples():
  """26,000 real triples of the 1,000 held-out digits (never seen by the classifier), read by it."""
  batch = StackedDigits("test", 32, seed=0).get_batch(0, 26_000)
  return batch["label"], stacked.channel_digits(batch["x"])


def test_the_classifier_reads_each_channel_of_real_triples(real_test_triples):
  """Each channel classified on its own (a planted swap of the channel axis, or a channel read twice,
  fails this): ~97 % of held-out digits right, as the digit CNN's held-out accuracy."""
  labels, read = real_test_triples
  accuracy = (read == _labels_of(labels)).mean(0)
  assert np.all(accuracy > 0.96), accuracy


def test_modes_no_real_triple_holds_are_not_counted(real_test_triples):
  """10 modes taken out of the real triples: misread samples still land in most of them (the papers'
  count reads ~999), stacked_modes does not count them."""
  labels, read = real_test_triples
  removed = np.random.default_rng(1).choice(1000, 10, replace=False)
  keep = ~np.isin(labels, removed)
  result = stacked.mode_metrics(read[keep])
  assert result["stacked_modes"] <= 991 and result["stacked_modes_any"] > result["stacked_modes"]
  full = stacked.mode_metrics(read)
  assert full["stacked_modes"] == 1000 and 0.02 < full["stacked_kl"] < 0.06  # the real data's floor at N = 26,000


@pytest.mark.parametrize("model,width,d_width", [("dcgan_tf", 8, 0), ("dcgan_small", 8, 2)])
def test_the_literatures_nets_give_the_papers_shapes(tmp_path, model, width, d_width):
  from gan_jax.nets import build_nets
  from gan_jax.state import init_state, make_optimizers
  cfg = image_config(tmp_path, "stacked_mnist5k", model=model, width=width, d_width=d_width, latent_dim=16)
  nets = build_nets(cfg, (28, 28, 3))

  def forward(z):  # shapes only (jax.eval_shape): eager, this ran op by op for ~45 s
    state = init_state(cfg, nets, *make_optimizers(cfg))
    x = nets.generator.apply({"params": state.g_params, **state.g_collections}, z, None, train=False)
    logits, h, _ = nets.discriminator.apply({"params": state.d_params, **state.d_collections}, x, None,
                                            train=False, features=True)
    return x, logits, h

  x, logits, h = jax.eval_shape(forward, jax.ShapeDtypeStruct((4, 16), np.float32))
  assert x.shape == (4, 28, 28, 3) and logits.shape == (4,)
  assert h.shape[1:3] == ((2, 2) if model == "dcgan_tf" else (4, 4))  # 28 -> 14 -> 7 -> 4 (-> 2)


def test_the_transposed_convolution_is_the_adjoint_of_the_strided_convolution():
  """<conv(y), x> = <y, conv_transpose(x)> for 7 -> 4 -> 7 (TF's output_shape=7), any kernel."""
  from gan_jax.nets.tf_layers import conv_same, conv_transpose_to
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(5, 5, 3, 4)).astype(np.float32)
  y, x = rng.normal(size=(2, 7, 7, 3)).astype(np.float32), rng.normal(size=(2, 4, 4, 4)).astype(np.float32)
  left = float(np.sum(np.asarray(conv_same(y, kernel)) * x))
  right = float(np.sum(y * np.asarray(conv_transpose_to(x, kernel, 7))))
  assert conv_transpose_to(x, kernel, 7).shape == (2, 7, 7, 3) and left == pytest.approx(right, rel=1e-5)


@pytest.mark.parametrize("k,side", [(5, 28), (5, 7), (5, 4), (5, 2), (3, 7), (3, 28), (4, 32)])
def test_the_fast_convolutions_equal_their_definitions(k, side):
  """The sub-pixel transposed convolution equals the adjoint's vjp, and the patch-dot 'SAME' convolution
  of small maps equals XLA's (odd sides, TF's uneven padding included)."""
  from jax import lax

  from gan_jax.nets.tf_layers import DIMENSIONS, conv_same, conv_transpose_to, subpixel_conv_transpose_to
  rng = np.random.default_rng(k * side)
  half = -(-side // 2)
  x, kernel = rng.normal(size=(2, half, half, 3)).astype(np.float32), rng.normal(size=(k, k, 4, 3)).astype(np.float32)
  np.testing.assert_allclose(subpixel_conv_transpose_to(x, kernel, side), conv_transpose_to(x, kernel, side),
                             atol=1e-5, rtol=1e-5)
  y = rng.normal(size=(2, side, side, 4)).astype(np.float32)
  np.testing.assert_allclose(conv_same(y, kernel), lax.conv_general_dilated(y, kernel, (2, 2), "SAME",
                                                                            dimension_numbers=DIMENSIONS),
                             atol=1e-4, rtol=1e-5)


@pytest.mark.integration
def test_the_stacked_flagfile_trains_evaluates_and_draws_its_channels(tmp_path):
  from tests.test_run import run_cli
  result = run_cli("--flagfile=stacked_mnist.flags", f"--workdir={tmp_path / 'w'}", "--train_steps=4",
                   "--eval_every=2", "--checkpoint_every=2", "--log_every=2", "--eval_samples=300", "--width=8",
                   "--compilation_cache=")
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads((tmp_path / "w" / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["stacked_samples"] == 300 and 1 <= record["stacked_modes"] <= record["stacked_modes_any"] <= 300
  assert (tmp_path / "w" / "samples" / "step_0000004_channels.png").exists()
  assert "fid" not in record  # no FID on Stacked MNIST (README)
