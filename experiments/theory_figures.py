"""The tutorial's figures that need no training: Figure 16 and the x y game's non-convergence.

  python experiments/theory_figures.py [--out=docs]

docs/figure16_generator_costs.png: the minimax, non-saturating and maximum-likelihood generator costs of
  gan_jax.losses.LOSSES, each evaluated on the logit l = log(D / (1 - D)) of a single sample, against D(G(z)).
docs/xy_game.png: V(x, y) = x y from (1, 0.5): simultaneous gradient steps (eta = 0.1, 150 steps) spiral
  out by sqrt(1 + eta^2) per step, alternating ones orbit, the continuous-time play is a circle.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from absl import app, flags  # noqa: E402

from gan_jax import xla_cpu  # noqa: E402

xla_cpu.configure()
import jax  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax import losses, pictures, xy_game  # noqa: E402

flags.DEFINE_string("out", "docs", "Folder the two PNGs are written to.")
GENERATOR_COSTS = ("minimax", "nonsaturating", "maximum_likelihood")
START, ETA, STEPS = (1.0, 0.5), 0.1, 150


def generator_costs(d_values):
  """{name: J(G) [N]} of each registered generator cost, one sample at a time, at D(G(z)) = d_values [N]."""
  logits = np.log(d_values) - np.log1p(-d_values)
  return {name: np.asarray(jax.vmap(lambda l: losses.get_loss(name).g_loss(l[None]))(logits))  # noqa: B023
          for name in GENERATOR_COSTS}


def main(_):
  os.makedirs(flags.FLAGS.out, exist_ok=True)
  d_values = np.linspace(1e-3, 1 - 1e-3, 999, dtype=np.float32)
  pictures.generator_costs_png(generator_costs(d_values), d_values,
                               os.path.join(flags.FLAGS.out, "figure16_generator_costs.png"))
  paths = {f"simultaneous, eta = {ETA}": np.asarray(xy_game.trajectory(xy_game.simultaneous_step, START, ETA, STEPS)),
           f"alternating, eta = {ETA}": np.asarray(xy_game.trajectory(xy_game.alternating_step, START, ETA, STEPS))}
  circle = np.asarray(xy_game.gradient_flow(START, np.linspace(0.0, 2 * np.pi, 200)))
  pictures.xy_game_png(paths, circle, os.path.join(flags.FLAGS.out, "xy_game.png"),
                       f"V(x, y) = x y: {STEPS} gradient steps from {START}")
  print(f"wrote {flags.FLAGS.out}/figure16_generator_costs.png and {flags.FLAGS.out}/xy_game.png")


if __name__ == "__main__":
  app.run(main)
