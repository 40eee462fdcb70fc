"""DiffAugment (gan_jax/augment.py): each transform against a hand-computed example, gradients reach G
through it, off leaves the step untouched, on trains and resumes exactly."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gan_jax import augment, config as config_lib, objectives, train
from gan_jax.errors import ConfigError
from tests.conftest import toy_config
from tests.test_checkpoint import assert_same_state
from tests.test_images import image_config


def _image(h=4, w=4, c=1):
  return jnp.arange(h * w * c, dtype=jnp.float32).reshape(1, h, w, c) / 10.0


def test_color_transforms_are_the_papers_formulas():
  x = jnp.array([[[[0.2, -0.4, 0.8]]]])  # one RGB pixel; its channel mean 0.2
  assert np.allclose(augment.brightness(x, jnp.array([0.75])), x + 0.25)
  assert np.allclose(augment.saturation(x, jnp.array([0.25])), [[[[0.2, -0.1, 0.5]]]])  # (x - 0.2) * 0.5 + 0.2
  y = jnp.array([[[[1.0], [0.0]], [[-1.0], [2.0]]]])  # mean 0.5
  assert np.allclose(augment.contrast(y, jnp.array([1.0])), 0.5 + (y - 0.5) * 1.5)
  assert np.array_equal(augment.saturation(y, jnp.array([0.9])), y)  # one channel: nothing to desaturate


def test_translation_shifts_in_zeros():
  x = _image()[..., 0]  # [[0, .1, .2, .3], [.4, ...]]
  out = augment.translation(_image(), jnp.array([[1, -2]]))[0, ..., 0]
  expected = np.zeros((4, 4), np.float32)
  expected[:3, 2:] = np.asarray(x[0])[1:, :2]  # out[i, j] = x[i + 1, j - 2]
  assert np.allclose(out, expected)
  assert augment.translation_params(jax.random.PRNGKey(0), (500, 32, 32, 1)).min() == -4  # round(32 / 8)
  assert augment.translation_params(jax.random.PRNGKey(0), (500, 32, 32, 1)).max() == 4


def test_cutout_zeroes_a_half_side_square_clipped_to_the_image():
  out = augment.cutout(jnp.ones((2, 4, 4, 1)), jnp.array([[1, 1], [0, 3]]))[..., 0]
  first = np.ones((4, 4))
  first[0:2, 0:2] = 0  # side 2, centre (1, 1): rows / cols 0-1
  second = np.ones((4, 4))
  second[0:1, 2:4] = 0  # centre (0, 3): rows -1..0, cols 2..3, clipped
  assert np.array_equal(out, np.stack([first, second]))


def test_the_whole_policy_is_differentiable_and_its_gradient_exact():
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 8, 8, 3))
  key = jax.random.PRNGKey(2)
  f = lambda v: augment.diff_augment(v, key, augment.POLICIES)  # noqa: E731
  check_grads(f, (x,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
  assert float(jnp.abs(jax.grad(lambda v: jnp.sum(f(v) ** 2))(x)).sum()) > 0


def test_gradients_reach_g_through_the_augmentation(tmp_path):
  """generator_objective augments the fakes inside the differentiated function: with cutout zeroing
  half the image, the pixels D never sees get no gradient, the others do."""
  from gan_jax.nets import build_nets
  cfg = image_config(tmp_path, "mnist5k", resolution=28, diffaugment="cutout")
  nets = build_nets(cfg, (28, 28, 1), None, 10)
  obj = objectives.objective_from_config(cfg)
  x = jnp.zeros((4, 28, 28, 1))
  d_vars = nets.discriminator.init({"params": jax.random.PRNGKey(0)}, x, None, train=False)
  cols = {k: v for k, v in d_vars.items() if k != "params"}
  key = jax.random.PRNGKey(3)
  grad = jax.grad(lambda v: objectives.generator_objective(obj, nets.discriminator, d_vars["params"], cols, v, None,
                                                           None, key)[0])(x)
  seen = augment.cutout(jnp.ones_like(x), augment.cutout_params(jax.random.split(
      jax.random.fold_in(key, objectives.AUGMENT_SALT), 5)[4], x.shape))
  assert float(jnp.abs(grad * (1 - seen)).max()) == 0.0 and float(jnp.abs(grad * seen).max()) > 0


@pytest.mark.parametrize("module_name,function,on", [
    ("augment", "diff_augment", dict(diffaugment="color,translation,cutout")),
    ("steps", "shifted_reals", dict(shift_reals=2)),
    ("objectives", "consistency_term", dict(consistency_weight=10.0))])
def test_off_never_calls_it_and_on_trains_and_resumes_exactly(tmp_path, monkeypatch, module_name, function, on):
  """DiffAugment, --shift_reals and bCR: off, the step never calls the transform; on, a run resumes bitwise."""
  import importlib
  def never(*args):
    raise AssertionError(f"{function} called with {on} off")
  with monkeypatch.context() as m:
    m.setattr(importlib.import_module(f"gan_jax.{module_name}"), function, never)
    train.train_and_evaluate(image_config(tmp_path / "off", "mnist5k"))
  kw = dict(**on, train_steps=6, eval_every=3, checkpoint_every=3)
  train.train_and_evaluate(image_config(tmp_path / "straight", "mnist5k", **kw))
  train.train_and_evaluate(image_config(tmp_path / "resumed", "mnist5k", **{**kw, "train_steps": 3}))
  train.train_and_evaluate(image_config(tmp_path / "resumed", "mnist5k", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 6)


@pytest.mark.parametrize("overrides,message", [
    (dict(dataset="ring", model="mlp", diffaugment="color"), r"--diffaugment=color: augments images"),
    (dict(dataset="ring", model="mlp", consistency_weight=1.0), r"--consistency_weight=1.0: compares D on shifted"),
    (dict(diffaugment="color,flip"), r"a comma-separated subset of color, translation, cutout"),
    (dict(diffaugment="cutout", feature_matching=True), r"does not combine with --feature_matching")])
def test_bad_policies_are_refused(tmp_path, overrides, message):
  cfg = image_config(tmp_path, "mnist5k") if "dataset" not in overrides else toy_config(tmp_path)
  import dataclasses
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(dataclasses.replace(cfg, **overrides))


def test_the_validation_names_the_module_policies():
  assert augment.POLICIES == ("color", "translation", "cutout")


# --shift_reals: data augmentation of the reals (steps.shifted_reals), the semi-supervised recipe's.

def test_translation_can_shift_in_black():
  x = _image()[..., 0]
  out = augment.translation(_image(), jnp.array([[-1, 1]]), fill=-1.0)[0, ..., 0]
  expected = -np.ones((4, 4), np.float32)
  expected[1:, :3] = np.asarray(x[0])[:3, 1:]  # out[i, j] = x[i - 1, j + 1]
  assert np.allclose(out, expected)


def _which_shift(original, shifted, max_shift):
  """The (dh, dw) with translation(original, (dh, dw), fill=-1) == shifted, or None."""
  for dh in range(-max_shift, max_shift + 1):
    for dw in range(-max_shift, max_shift + 1):
      if np.array_equal(augment.translation(original[None], jnp.array([[dh, dw]]), fill=-1.0)[0], shifted):
        return dh, dw
  return None


def test_shifted_reals_shift_every_image_on_its_own_and_leave_the_labels():
  from gan_jax import steps
  key = jax.random.PRNGKey(4)
  batches = {"x": jax.random.uniform(key, (2, 16, 6, 6, 1), minval=-1.0), "label": jnp.arange(32).reshape(2, 16),
             "x_labeled": jax.random.uniform(jax.random.PRNGKey(5), (2, 16, 6, 6, 1), minval=-1.0)}
  out = steps.shifted_reals(batches, jax.random.PRNGKey(6), 1)
  assert np.array_equal(out["label"], batches["label"])
  for name in ("x", "x_labeled"):
    shifts = [_which_shift(batches[name][j, i], out[name][j, i], 1) for j in range(2) for i in range(16)]
    assert None not in shifts and len(set(shifts)) >= 5, shifts  # each image its own draw in {-1, 0, 1}^2
  assert not np.array_equal(out["x"], out["x_labeled"])  # distinct draws per leaf (same images, below)
  same = steps.shifted_reals({"x": batches["x"], "x_labeled": batches["x"]}, jax.random.PRNGKey(6), 1)
  assert not np.array_equal(same["x"], same["x_labeled"])


def test_shifted_reals_are_the_same_whatever_the_device_count():
  from gan_jax import sharding, steps
  batches = {"x": jax.random.uniform(jax.random.PRNGKey(7), (2, 16, 6, 6, 1), minval=-1.0)}
  key = jax.random.PRNGKey(8)
  one = steps.shifted_reals(batches, key, 2)
  spec, mesh = sharding.P(None, sharding.DATA_AXIS), sharding.make_mesh(8)
  rows_split = jax.device_put(batches, jax.sharding.NamedSharding(mesh, spec))
  eight = jax.shard_map(lambda b: steps.shifted_reals(b, key, 2, sharding.DATA_AXIS), mesh=mesh,
                        in_specs=(spec,), out_specs=spec)(rows_split)
  assert np.array_equal(np.asarray(one["x"]), np.asarray(eight["x"]))


def test_ramped_shifts_keep_each_draw_with_the_share_and_zero_the_rest():
  from gan_jax import steps
  key = jax.random.PRNGKey(11)
  drawn = np.asarray(steps.sample_shifts(key, 20_000, 2))
  for share in (0.0, 0.3, 1.0):
    ramped = np.asarray(steps.ramped_shifts(key, 20_000, 2, share))
    kept = np.all(ramped == drawn, axis=1)
    assert np.all(ramped[~kept] == 0)  # a row not kept is not shifted
    moved = np.any(drawn != 0, axis=1)  # (rows drawn (0, 0) read as kept either way)
    assert abs(kept[moved].mean() - share) < 0.01, (share, kept[moved].mean())  # 3 sigma at 0.3: 0.004


def test_the_share_of_shifted_reals_rises_over_the_ramp():
  from gan_jax import steps
  from gan_jax.nets import build_nets
  cfg = image_config(".", "mnist5k", shift_reals=1, shift_ramp=4)
  ctx = steps.make_context(cfg, build_nets(cfg, (28, 28, 1), None, 10), None, None)
  assert [float(steps.shifted_share(ctx, t)) for t in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
  off = steps.make_context(image_config(".", "mnist5k", shift_reals=1), ctx.nets, None, None)
  assert steps.shifted_share(off, 0) is None


@pytest.mark.parametrize("ramp,same_as", [(1, dict(shift_reals=2)), (10**9, dict(shift_reals=0))])
def test_a_one_step_ramp_is_no_ramp_and_an_endless_one_shifts_nothing(tmp_path, ramp, same_as):
  """The training step reads the ramp: over R = 1 every real is shifted from the first step, as without a
  ramp; over R = 10^9 (a share ~1e-9) none is, as without shifts; both bitwise."""
  kw = dict(train_steps=2, eval_every=2, checkpoint_every=2)
  train.train_and_evaluate(image_config(tmp_path / "ramp", "mnist5k", shift_reals=2, shift_ramp=ramp, **kw))
  train.train_and_evaluate(image_config(tmp_path / "same", "mnist5k", **same_as, **kw))
  assert_same_state(tmp_path / "ramp", tmp_path / "same", 2)


def test_ramped_shifts_are_the_same_whatever_the_device_count():
  from gan_jax import sharding, steps
  key = jax.random.PRNGKey(12)
  one = steps.ramped_shifts(key, 16, 2, 0.5)
  eight = jax.shard_map(lambda: steps.ramped_shifts(key, 2, 2, 0.5, sharding.DATA_AXIS), mesh=sharding.make_mesh(8),
                        in_specs=(), out_specs=sharding.P(sharding.DATA_AXIS))()
  assert np.array_equal(np.asarray(one), np.asarray(eight)) and 0 < int(jnp.sum(jnp.all(one == 0, axis=1))) < 16


@pytest.mark.parametrize("overrides,message", [
    (dict(dataset="ring", model="mlp", shift_reals=1), r"--shift_reals=1: shifts images"),
    (dict(shift_reals=9), r"--shift_reals=9: a shift of 0 \(off\) to a quarter of the image side \(7 px"),
    (dict(shift_reals=-1), r"--shift_reals=-1: a shift of 0"),
    (dict(shift_fakes=True), r"--shift_fakes=True: shifts the fakes as --shift_reals shifts the reals"),
    (dict(shift_fakes=True, shift_reals=1, unroll_steps=2), r"does not combine with --unroll_steps"),
    (dict(shift_ramp=5), r"--shift_ramp=5: ramps up the shifts of --shift_reals: set --shift_reals=N"),
    (dict(shift_ramp=-1, shift_reals=1), r"--shift_ramp=-1: must be >= 0")])
def test_bad_shifts_are_refused(tmp_path, overrides, message):
  import dataclasses
  cfg = image_config(tmp_path, "mnist5k") if "dataset" not in overrides else toy_config(tmp_path)
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(dataclasses.replace(cfg, **overrides))


def test_shifted_fakes_reach_d_shifted_and_g_gets_no_gradient_from_pixels_shifted_out(tmp_path):
  """generator_objective shifts the fakes inside the differentiated function: shifted down by one row,
  the bottom row of each fake leaves the image (no gradient) and D judges translation(x, shift)."""
  from gan_jax.nets import build_nets
  cfg = image_config(tmp_path, "mnist5k", resolution=28, shift_reals=1, shift_fakes=True)
  nets = build_nets(cfg, (28, 28, 1), None, 10)
  obj = objectives.objective_from_config(cfg)
  assert obj.shift_fakes == 1
  x = jax.random.uniform(jax.random.PRNGKey(9), (4, 28, 28, 1), minval=-1.0)
  d_vars = nets.discriminator.init({"params": jax.random.PRNGKey(0)}, x, None, train=False)
  cols = {k: v for k, v in d_vars.items() if k != "params"}
  key, shift = jax.random.PRNGKey(3), jnp.array([[-1, 0]] * 4)  # out[i] = x[i - 1]: the last row is dropped
  loss = lambda v, s: objectives.generator_objective(obj, nets.discriminator, d_vars["params"], cols, v, None,  # noqa: E731
                                                     None, key, fake_shift=s)
  grad = jax.grad(lambda v: loss(v, shift)[0])(x)
  assert float(jnp.abs(grad[:, -1]).max()) == 0.0 and float(jnp.abs(grad[:, :-1]).max()) > 0
  shifted_by_hand = augment.translation(x, shift, fill=-1.0)
  assert np.array_equal(loss(x, shift)[1], loss(shifted_by_hand, None)[1])
  assert not np.array_equal(loss(x, shift)[1], loss(x, None)[1])


def test_fake_shifts_are_the_same_whatever_the_device_count_and_none_when_off(tmp_path):
  from gan_jax import sharding, steps
  from gan_jax.nets import build_nets
  cfg = image_config(tmp_path, "mnist5k", resolution=28, shift_reals=2, shift_fakes=True)
  nets = build_nets(cfg, (28, 28, 1), None, 10)
  key = jax.random.PRNGKey(10)
  one = steps.fake_shifts(steps.make_context(cfg, nets, None, None), key, 16)
  ctx8 = steps.make_context(cfg, nets, None, None, sharding.DATA_AXIS, 8)
  eight = jax.shard_map(lambda: steps.fake_shifts(ctx8, key, 2), mesh=sharding.make_mesh(8), in_specs=(),
                        out_specs=sharding.P(sharding.DATA_AXIS))()
  assert np.array_equal(np.asarray(one), np.asarray(eight)) and int(jnp.abs(one).max()) == 2
  off = image_config(tmp_path, "mnist5k", resolution=28, shift_reals=2)
  assert steps.fake_shifts(steps.make_context(off, nets, None, None), key, 16) is None


def test_both_players_judge_shifted_fakes_and_the_run_resumes_exactly(tmp_path, monkeypatch):
  """The step hands both D's update and G's update their shifts (a step that forgot one would judge
  unshifted fakes there); on, a run resumes bitwise."""
  seen = []
  real_shifted_fakes = objectives.shifted_fakes
  def recording(x, shift):
    seen.append(shift is not None)
    return real_shifted_fakes(x, shift)
  kw = dict(shift_reals=1, shift_fakes=True, train_steps=4, eval_every=2, checkpoint_every=2)
  with monkeypatch.context() as m:
    m.setattr(objectives, "shifted_fakes", recording)
    train.train_and_evaluate(image_config(tmp_path / "straight", "mnist5k", **kw))
  assert len(seen) >= 2 and all(seen), seen
  train.train_and_evaluate(image_config(tmp_path / "resumed", "mnist5k", **{**kw, "train_steps": 2}))
  train.train_and_evaluate(image_config(tmp_path / "resumed", "mnist5k", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 4)
