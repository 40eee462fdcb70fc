"""Non-convergence of gradient play: the game V(x, y) = x y (NIPS 2016 tutorial, sec. 5.1, exercise 2).

Player x minimises V, player y maximises it; the only equilibrium is (0, 0). The continuous-time
gradient flow dx/dt = -dV/dx = -y, dy/dt = dV/dy = x is a rotation: x(t) = r cos(t + phi),
y(t) = r sin(t + phi), radius r constant forever. Simultaneous gradient steps of size eta,
  (x, y) <- (x - eta y, y + eta x),
multiply the radius by sqrt(1 + eta^2) every step: the iterates spiral outward. Alternating steps
(x first, then y with the new x) have a determinant-1 update matrix and stay on a bounded orbit.
Gradients come from `jax.grad` of `value`, never from the closed forms, which the tests compare them with.
"""
import jax
import jax.numpy as jnp


def value(x, y):
  """V(x, y) = x y."""
  return x * y


_grad_x, _grad_y = jax.grad(value, argnums=0), jax.grad(value, argnums=1)


def simultaneous_step(point, eta: float):
  """(x, y) -> (x - eta dV/dx, y + eta dV/dy), both gradients at the old point."""
  x, y = point
  return jnp.stack([x - eta * _grad_x(x, y), y + eta * _grad_y(x, y)])


def alternating_step(point, eta: float):
  """x moves first; y then ascends at the new x (as a GAN's D and G steps alternate)."""
  x, y = point
  x = x - eta * _grad_x(x, y)
  return jnp.stack([x, y + eta * _grad_y(x, y)])


def trajectory(step, start, eta: float, steps: int):
  """The iterates [steps + 1, 2] of `step` from `start` [2]."""
  def body(point, _):
    nxt = step(point, eta)
    return nxt, nxt
  _, points = jax.lax.scan(body, jnp.asarray(start, jnp.float32), None, length=steps)
  return jnp.concatenate([jnp.asarray(start, jnp.float32)[None], points])


def gradient_flow(start, times, substeps: int = 100):
  """The continuous-time play at `times` [T] (from t = 0), by classical Runge-Kutta on the gradient field
  (-dV/dx, dV/dy) with `substeps` steps per interval: [T, 2]."""
  def field(p):
    return jnp.stack([-_grad_x(p[0], p[1]), _grad_y(p[0], p[1])])

  def rk4(p, h):
    k1 = field(p)
    k2 = field(p + h / 2 * k1)
    k3 = field(p + h / 2 * k2)
    k4 = field(p + h * k3)
    return p + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

  def interval(p, dt):
    p = jax.lax.fori_loop(0, substeps, lambda _, q: rk4(q, dt / substeps), p)
    return p, p
  times = jnp.asarray(times, jnp.float32)
  _, points = jax.lax.scan(interval, jnp.asarray(start, jnp.float32), jnp.diff(times, prepend=0.0))
  return points
