"""The semi-supervised D as a classifier (Salimans et al. 2016, sec. 5): accuracy on the held-out split.

D's K class logits (the K+1-class head, `nets.layers.DiscriminatorHead`), in inference mode (no noise, no
dropout, running statistics), on every held-out image: never trained on, so the number is a test accuracy.
With --d_ema_decay the reported D is the averaged one (improved-gan tests its averaged D); the current
weights' accuracy is reported beside it.
"""
import jax
import jax.numpy as jnp
import numpy as np


def class_logits(nets, d_params, d_collections, images, batch: int = 500) -> np.ndarray:
  """D's class logits [N, K] of images [N, ...] (train=False) at weights `d_params`."""
  variables = {"params": d_params, **d_collections}  # an argument: a closed-over D is constant-folded
  fn = jax.jit(lambda v, x: nets.discriminator.apply(v, x, None, train=False, features=True)[2])
  return np.concatenate([np.asarray(fn(variables, jnp.asarray(images[i:i + batch])))
                         for i in range(0, len(images), batch)])


def errors(nets, d_params, d_collections, held) -> int:
  """How many of the held-out images {'x', 'label'} D's argmax class gets wrong."""
  predicted = np.argmax(class_logits(nets, d_params, d_collections, held["x"]), axis=-1)
  return int(np.sum(predicted != held["label"]))


def classifier_metric(inputs) -> dict:
  """The registry's 'classifier': {'held_out_accuracy': share of held-out images the evaluated D's argmax
  class gets right (D's EMA when kept, else D), 'held_out_errors': how many it gets wrong (of
  'held_out_examples'), 'held_out_accuracy_current_d': the current weights' accuracy}."""
  held = inputs.shared_real("held_out_batch", lambda: inputs.held_out.get_batch(0, inputs.held_out.num_examples))
  state, n = inputs.state, len(held["label"])
  current = errors(inputs.nets, state.d_params, state.d_collections, held)
  wrong = current if state.ema_d_params is None else errors(inputs.nets, state.ema_d_params, state.d_collections, held)
  return {"held_out_accuracy": (n - wrong) / n, "held_out_errors": wrong, "held_out_examples": n,
          "held_out_accuracy_current_d": (n - current) / n}
