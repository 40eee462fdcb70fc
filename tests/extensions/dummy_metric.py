"""A metric outside gan_jax: the samples' mean brightness (higher is better, for the test)."""
import numpy as np


def brightness(inputs):
  return {"brightness": float(np.mean(inputs.samples))}
