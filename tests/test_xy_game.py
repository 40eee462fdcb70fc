"""The game V(x, y) = x y against its closed forms (tutorial sec. 5.1)."""
import numpy as np
import pytest

from gan_jax import xy_game


@pytest.mark.parametrize("eta", [0.05, 0.3])
def test_one_simultaneous_step_multiplies_the_radius_by_sqrt_1_plus_eta_squared(eta):
  points = np.asarray(xy_game.trajectory(xy_game.simultaneous_step, [1.0, 0.5], eta, 20))
  radii = np.hypot(points[:, 0], points[:, 1])
  np.testing.assert_allclose(radii[1:] / radii[:-1], np.sqrt(1 + eta ** 2), rtol=1e-5)


def test_the_gradient_flow_is_the_closed_form_circle():
  start, times = np.array([1.0, 0.5]), np.linspace(0.5, 4 * np.pi, 12)
  points = np.asarray(xy_game.gradient_flow(start, times))
  r, phi = np.hypot(*start), np.arctan2(start[1], start[0])
  np.testing.assert_allclose(np.hypot(points[:, 0], points[:, 1]), r, rtol=1e-5)
  np.testing.assert_allclose(points, np.stack([r * np.cos(times + phi), r * np.sin(times + phi)], 1), atol=1e-4)


def test_alternating_steps_stay_bounded_where_simultaneous_ones_spiral_out():
  eta, steps = 0.3, 400
  alternating = np.asarray(xy_game.trajectory(xy_game.alternating_step, [1.0, 0.5], eta, steps))
  simultaneous = np.asarray(xy_game.trajectory(xy_game.simultaneous_step, [1.0, 0.5], eta, steps))
  assert np.hypot(*alternating.T).max() < 1.5 * np.hypot(1.0, 0.5)
  np.testing.assert_allclose(np.hypot(*simultaneous[-1]), np.hypot(1.0, 0.5) * (1 + eta ** 2) ** (steps / 2),
                             rtol=1e-3)
