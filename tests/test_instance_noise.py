"""--instance_noise (objectives.at_iteration, objectives.augmented): Gaussian noise of std
sigma_t = sigma_0 clip((T - t) / (T - S), 0, 1) (--instance_noise_steps T, --instance_noise_hold S) on every
image D judges in training, in both players' updates."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import config as config_lib, objectives, train
from gan_jax.errors import ConfigError
from tests.test_checkpoint import assert_same_state
from tests.test_semi_supervised import ssl_config


def _objective(sigma, steps=0, hold=0):
  return dataclasses.replace(objectives.objective_from_config(config_lib.Config()), instance_noise=sigma,
                             instance_noise_steps=steps, instance_noise_hold=hold)


@pytest.mark.parametrize("steps,hold", [(0, 0), (8, 0), (8, 4)])
def test_the_std_is_held_then_falls_linearly_to_zero_and_stays_there(steps, hold):
  sigma = 0.8
  for t in (0, 1, 2, 4, 5, 6, 8, 9, 100):
    want = sigma * min(1.0, max(0.0, (steps - t) / (steps - hold))) if steps else sigma
    got = objectives.at_iteration(_objective(sigma, steps, hold), jnp.asarray(t)).noise_std
    assert abs(float(got) - want) < 1e-6, (t, float(got), want)
  off = _objective(0.0)
  assert objectives.at_iteration(off, 3) is off and off.noise_std is None


def test_the_noise_has_the_std_is_fresh_per_key_and_zero_std_leaves_x_bitwise():
  x = jnp.zeros((64, 32, 32, 1))
  noisy = objectives.augmented(objectives.at_iteration(_objective(0.7), 0), x, jax.random.PRNGKey(0))
  assert abs(float(jnp.std(noisy)) - 0.7) < 0.007 and abs(float(jnp.mean(noisy))) < 0.007
  again = objectives.augmented(objectives.at_iteration(_objective(0.7), 0), x, jax.random.PRNGKey(1))
  assert abs(float(jnp.corrcoef(noisy.ravel(), again.ravel())[0, 1])) < 0.01
  digits = jax.random.uniform(jax.random.PRNGKey(2), x.shape, minval=-1.0)
  ended = objectives.at_iteration(_objective(0.7, steps=10), 10)
  assert np.array_equal(np.asarray(objectives.augmented(ended, digits, jax.random.PRNGKey(0))), np.asarray(digits))


def test_every_image_d_judges_in_training_is_noised_at_the_iterations_std(tmp_path, monkeypatch):
  """A semi-supervised run with feature matching (D's real, fake and labelled passes; G's fake pass and its
  real features): every input of `discriminate` is an output of `augmented` that added noise, and the stds the
  run used are sigma_0 (1 - t / T) for t = 0..3, each in every pass of its iteration."""
  noised, judged, stds = [], [], []
  real_augmented, real_discriminate = objectives.augmented, objectives.discriminate
  def recording_augmented(obj, x, key):
    out = real_augmented(obj, x, key)
    if obj.noise_std is not None:
      noised.append(out)
      jax.debug.callback(lambda s: stds.append(round(float(s), 6)), obj.noise_std)
    return out
  def recording_discriminate(discriminator, params, collections, x, labels, key):
    judged.append(x)
    return real_discriminate(discriminator, params, collections, x, labels, key)
  with monkeypatch.context() as m:
    m.setattr(objectives, "augmented", recording_augmented)
    m.setattr(objectives, "discriminate", recording_discriminate)
    train.train_and_evaluate(ssl_config(tmp_path, instance_noise=0.8, instance_noise_steps=4, train_steps=4,
                                        steps_per_call=1, eval_every=4, checkpoint_every=4))
  assert len(judged) >= 5 and all(any(x is out for out in noised) for x in judged)
  passes = len(stds) // 4
  assert passes >= 5 and sorted(stds) == sorted(
      round(0.8 * (1 - t / 4), 6) for t in range(4) for _ in range(passes)), stds


def test_off_never_adds_noise_and_on_resumes_exactly(tmp_path, monkeypatch):
  def never(*args):
    raise AssertionError("instance noise added with --instance_noise off")
  with monkeypatch.context() as m:
    m.setattr(objectives, "instance_noise", never)
    train.train_and_evaluate(ssl_config(tmp_path / "off", train_steps=3))
  kw = dict(instance_noise=0.5, instance_noise_steps=4)
  train.train_and_evaluate(ssl_config(tmp_path / "straight", **kw))
  train.train_and_evaluate(ssl_config(tmp_path / "resumed", **{**kw, "train_steps": 3}))
  train.train_and_evaluate(ssl_config(tmp_path / "resumed", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 6)


@pytest.mark.parametrize("overrides,message", [
    (dict(instance_noise=-0.1), r"--instance_noise=-0.1: must be >= 0"),
    (dict(instance_noise_steps=-1, instance_noise=0.5), r"--instance_noise_steps=-1: must be >= 0"),
    (dict(instance_noise_steps=100), r"--instance_noise_steps=100: anneals the instance noise: set --instance_noise"),
    (dict(instance_noise=0.5, instance_noise_steps=100, instance_noise_hold=100),
     r"--instance_noise_hold=100: .* S < T"),
    (dict(instance_noise=0.5, instance_noise_hold=10), r"--instance_noise_hold=10: holds"),
    (dict(instance_noise=0.5, instance_noise_steps=100, instance_noise_hold=-1), r"--instance_noise_hold=-1: ")])
def test_bad_instance_noise_is_refused(tmp_path, overrides, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(ssl_config(tmp_path, **overrides))
