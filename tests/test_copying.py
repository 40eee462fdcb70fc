"""Issue 28: the copy statistic, nearest training images (neighbours.png) and evaluate.py's table at
equal, stated sample counts."""
import numpy as np
import pytest

from gan_jax import evaluation
from gan_jax.data.images import load_mnist5k
from gan_jax.metrics import copying
from gan_jax.metrics.inputs import MetricInputs


def _digits(split):
  return load_mnist5k(32, split)[0].astype(np.float32) / 127.5 - 1


class _Split:
  """A stand-in Dataset: `get_batch(0, n)` of fixed images."""

  def __init__(self, images):
    self.images, self.num_examples = images, len(images)

  def get_batch(self, index, n):
    return {"x": self.images[index * n:(index + 1) * n]}


def test_nearest_is_the_brute_force_nearest_neighbour():
  rng = np.random.default_rng(0)
  queries, references = rng.normal(size=(37, 5, 3)), rng.normal(size=(50, 5, 3))
  distances, indices = copying.nearest(queries, references, chunk=8)
  brute = np.linalg.norm(queries.reshape(37, 1, -1) - references.reshape(1, 50, -1), axis=2)
  np.testing.assert_array_equal(indices, brute.argmin(1))
  np.testing.assert_allclose(distances, brute.min(1), rtol=1e-6)


def test_the_copy_share_is_the_quantile_for_new_data_and_one_for_copies():
  """Held-out digits (new handwriting) score 0.05 up to sampling error; training digits, copied, score 1;
  copies blurred by noise as large as the typical held-out distance score near 0."""
  train, held = _digits("train"), _digits("test")
  inputs = lambda x: MetricInputs(x, dataset=_Split(train), held_out=_Split(held))  # noqa: E731
  new = copying.copy_metric(inputs(held[:10]))["copy_share_held_out"]
  assert abs(new - copying.COPY_QUANTILE) < 3 * np.sqrt(0.05 * 0.95 / 500)  # the second half: 500 new digits
  assert copying.copy_metric(inputs(train[:300]))["copy_share"] == 1.0
  tau = copying.copy_threshold(train, held)
  noisy = train[:300] + np.random.default_rng(0).normal(0, 2 * tau / np.sqrt(train[0].size), train[:300].shape)
  assert copying.copy_metric(inputs(noisy.astype(np.float32)))["copy_share"] < 0.2


def test_the_copy_threshold_is_calibrated_on_the_first_held_out_half_only():
  train, held = _digits("train"), _digits("test")
  changed = held.copy()
  changed[500:] = train[:500]  # the second half is what the baseline scores, not what sets tau
  assert copying.copy_threshold(train, held) == copying.copy_threshold(train, changed)
  assert copying.copy_threshold(train, held) != copying.copy_threshold(train, held[::-1])


def test_table_counts_compare_generated_and_real_sets_at_the_same_count():
  assert evaluation.table_counts(2500, 4000, 1000) == {"generated": 2500, "train": 4000, "held_out": 1000, "equal": 1000}
  assert evaluation.table_counts(50000, 50000, 10000)["train"] == 50000  # CIFAR-10's protocol: all 50,000
  assert evaluation.table_counts(300, 60000, None) == {"generated": 300, "train": 10000}
  assert evaluation.kid_subset(1000, {"a": 2500, "b": 1000}) == 500  # 100 subsets of 1,000 of 1,000: one set
  assert evaluation.kid_subset(100, {"a": 2500, "b": 1000}) == 100


def test_every_baseline_column_has_the_count_and_reference_of_its_generated_column():
  rng = np.random.default_rng(0)
  feats = lambda n: (rng.normal(size=(n, 3)), rng.normal(size=(n, 4)))  # noqa: E731
  train = evaluation.RealSet.__new__(evaluation.RealSet)
  train.images, train.feats, train.dataset, train.feature_fn = rng.normal(size=(40, 2)), feats(40), None, None
  held = evaluation.RealSet.__new__(evaluation.RealSet)
  held.images, held.feats, held.dataset, held.feature_fn = rng.normal(size=(10, 2)), feats(10), None, None
  fakes = [(rng.normal(size=(25, 2)), feats(25)) for _ in range(3)]
  counts = evaluation.table_counts(25, 40, 10)
  columns = evaluation.image_columns(fakes, train, held, counts, seed=7)
  assert [c.label for c in columns] == [
      "generated 25 vs train 40", "generated 10 vs train 40", "held-out 10 vs train 40 (real baseline)",
      "generated 10 vs held-out 10", "train 10 vs held-out 10 (real baseline)"]
  for column in columns:
    reference = held if "vs held-out" in column.label else train
    size = int(column.label.split()[1])
    for d, inputs in enumerate(column.inputs):
      assert inputs.count == size and inputs.real is reference.feats and inputs.seed == 7 + d
  assert len(columns[2].inputs) == 1  # all of the held-out split: one set, no spread
  train_subsets = [inputs.samples for inputs in columns[4].inputs]  # disjoint subsets of the training images
  assert len(train_subsets) == 3 and len({a.tobytes() for a in train_subsets}) == 3


def test_a_conditional_gs_training_baseline_has_gs_class_counts_in_disjoint_draws():
  rng = np.random.default_rng(0)
  train = evaluation.RealSet.__new__(evaluation.RealSet)
  train.labels = rng.permutation(np.repeat(np.arange(3), [30, 20, 10]))  # unbalanced: 30 / 20 / 10
  train.images, train.feats = np.arange(60.0)[:, None], (train.labels[:, None] * 1.0, rng.normal(size=(60, 4)))
  held = evaluation.RealSet.__new__(evaluation.RealSet)
  held.images, held.feats = np.zeros((9, 1)), (np.zeros((9, 1)), rng.normal(size=(9, 4)))
  fakes = [(np.zeros((12, 1)), (np.zeros((12, 1)), rng.normal(size=(12, 4)))) for _ in range(3)]
  columns = evaluation.image_columns(fakes, train, held, evaluation.table_counts(12, 60, 9), 0, np.array([3, 3, 3]))
  assert columns[-1].label == "train 9 vs held-out 9 (real baseline, G's class counts)"
  draws = [inputs.samples[:, 0].astype(int) for inputs in columns[-1].inputs]
  for rows in draws:
    np.testing.assert_array_equal(np.bincount(train.labels[rows], minlength=3), [3, 3, 3])
  assert len(set(np.concatenate(draws))) == 27  # the three draws share no image
  for inputs, rows in zip(columns[-1].inputs, draws):  # the features are those images' own
    np.testing.assert_array_equal(inputs.fake[1], train.feats[1][rows])


def test_cells_are_the_mean_and_sample_spread_of_the_draws():
  assert evaluation._cell([1.0, 2.0, 3.0]) == [2.0, 1.0]
  assert evaluation._cell([0.05, 0.05, 0.05]) == [0.05, 0.0]
  assert evaluation._cell([4.0]) == [4.0, None] and evaluation._cell([None]) is None


@pytest.mark.integration
def test_neighbours_png_shows_each_samples_nearest_training_images(tmp_path, monkeypatch):
  from gan_jax import pictures
  train_images = _digits("train")[:200]
  train = evaluation.RealSet.__new__(evaluation.RealSet)
  train.images = train_images
  train.feats = (None, train_images.reshape(200, -1)[:, ::7])
  samples = train_images[[5, 17, 42, 99]] + 0.01
  saved = {}
  monkeypatch.setattr(pictures, "save_png", lambda grid, path: saved.update(grid=grid, path=path))
  evaluation.neighbours_png((samples, (None, samples.reshape(4, -1)[:, ::7])), train, str(tmp_path / "n.png"))
  tiles = saved["grid"][2:-2, 2:-2, 0]
  tile = lambda r, c: tiles[r * 34:r * 34 + 32, c * 34:c * 34 + 32]  # noqa: E731
  expected = pictures.to_uint8(train_images[[5, 17, 42, 99]])[..., 0]
  for i in range(4):  # two groups a row: sample | pixel neighbour | feature neighbour, a blank, the next
    row, col = divmod(i, 2)
    np.testing.assert_array_equal(tile(row, 4 * col + 1), expected[i])
    np.testing.assert_array_equal(tile(row, 4 * col + 2), expected[i])
  assert (tile(0, 3) == 255).all() and saved["grid"].shape[1] == 7 * 34 + 2


@pytest.mark.integration
@pytest.mark.parametrize("conditioning", ["projection", "none"])
def test_the_table_matches_the_training_baselines_classes_to_a_conditional_gs(tmp_path, monkeypatch, conditioning):
  from gan_jax import data as data_lib, nets as nets_lib, state as state_lib
  from tests.test_images import image_config
  cfg = image_config(tmp_path, "mnist5k", resolution=32, conditioning=conditioning)
  nets = nets_lib.build_nets(cfg, (32, 32, 1), num_classes=10 if conditioning != "none" else 0)
  state = state_lib.init_state(cfg, nets, *state_lib.make_optimizers(cfg))
  seen = {}

  def capture(fakes, train, held, counts, seed, fake_classes=None, **common):
    seen.update(counts=counts, fake_classes=fake_classes)
    raise StopIteration  # the columns are test_a_conditional_gs_training_baseline_...'s

  monkeypatch.setattr(evaluation, "image_columns", capture)
  with pytest.raises(StopIteration):
    evaluation._image_table(cfg, nets, state, data_lib.make_dataset(cfg), [np.zeros((233, 32, 32, 1), np.float32)],
                            0, str(tmp_path))
  assert seen["counts"]["equal"] == 233
  if conditioning == "none":  # G draws its own classes: stretches of the stream
    assert seen["fake_classes"] is None
  else:  # the first 233 of the classes in turn
    np.testing.assert_array_equal(seen["fake_classes"], [24] * 3 + [23] * 7)
