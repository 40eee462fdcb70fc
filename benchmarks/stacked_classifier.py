"""Is Stacked MNIST's KL gap the classifier's? The mode metrics read by the shipped digit CNN and by a
stronger one, on the real-data floor and on trained runs.

  python benchmarks/stacked_classifier.py [--epochs=30] [--workdirs=RUN,...]

Trains a larger CNN (3x3 convs 32-32 / 64-64 / 128-128 with 2x2 max-pooling, dropout 0.5, dense 256) on
the 4,000 mnist5k training digits with random affine augmentation (rotation +-12 degrees, scale 0.9-1.1,
shear +-0.15, shift +-2.5 px), Adam 1e-3 with a cosine decay, batch 64; prints its accuracy on the 1,000
held-out digits (the shipped CNN's: 97.4 %). Then the Stacked MNIST metrics (gan_jax/metrics/stacked.py)
of 26,000 real held-out triples (the floor), 26,000 training triples and 26,000 samples of each run's
final G_ema, each read by both classifiers. If G's KL fell with the stronger reader, the gap to the floor
would be misreading; if it stays, G's digit histogram is what it is.
"""
import argparse
import time

from gan_jax import xla_cpu

xla_cpu.configure()  # As the entry points do.
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from gan_jax.data.images import PIXEL_VALUES, load_mnist5k  # noqa: E402
from gan_jax.metrics import digits, stacked  # noqa: E402


class WideDigitCNN(nn.Module):
  """x [N, 32, 32, 1] in [-1, 1] -> class logits [N, 10]."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    for width in (32, 64, 128):
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.Dropout(0.5, deterministic=not train)(x.reshape(x.shape[0], -1))
    x = nn.Dropout(0.5, deterministic=not train)(nn.relu(nn.Dense(256)(x)))
    return nn.Dense(10)(x)


def random_affine(images, key):
  """images [N, 32, 32, 1] in [-1, 1] -> each warped by its own rotation, scale, shear and shift."""
  n = images.shape[0]
  k_angle, k_scale, k_shift, k_shear = jax.random.split(key, 4)
  angle = jax.random.uniform(k_angle, (n,), minval=-0.21, maxval=0.21)
  scale = jax.random.uniform(k_scale, (n,), minval=0.9, maxval=1.1)
  shift = jax.random.uniform(k_shift, (n, 2), minval=-2.5, maxval=2.5)
  shear = jax.random.uniform(k_shear, (n,), minval=-0.15, maxval=0.15)
  yy, xx = jnp.meshgrid(jnp.arange(32.0) - 15.5, jnp.arange(32.0) - 15.5, indexing="ij")

  def warp(image, a, s, t, h):
    source_y = (jnp.cos(a) * yy - jnp.sin(a) * xx) / s + t[0] + 15.5
    source_x = (jnp.sin(a) * yy + jnp.cos(a) * xx) / s + h * yy + t[1] + 15.5
    return jax.scipy.ndimage.map_coordinates(image[..., 0], [source_y, source_x], order=1, mode="constant",
                                             cval=-1.0)[..., None]

  return jax.vmap(warp)(images, angle, scale, shift, shear)


def train_classifier(epochs: int, seed: int = 0):
  """-> (params, jitted logits fn) of WideDigitCNN trained on the mnist5k training digits."""
  x_train, y_train = load_mnist5k(32, "train")
  x_held, y_held = load_mnist5k(32, "test")
  x_train, x_held = PIXEL_VALUES[x_train], PIXEL_VALUES[x_held]  # to [-1, 1], as the data feeds map them
  model = WideDigitCNN()
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 32, 32, 1)))["params"]
  tx = optax.adam(optax.cosine_decay_schedule(1e-3, epochs * (len(x_train) // 64)))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y, key):
    k_aug, k_drop = jax.random.split(key)
    loss_fn = lambda p: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
        model.apply({"params": p}, random_affine(x, k_aug), True, rngs={"dropout": k_drop}), y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  logits_fn = jax.jit(lambda p, x: model.apply({"params": p}, x))
  rng, key, start = np.random.default_rng(seed), jax.random.PRNGKey(seed + 1), time.time()
  for _ in range(epochs):
    order = rng.permutation(len(x_train))
    for i in range(0, len(order) - 63, 64):
      key, k = jax.random.split(key)
      params, opt_state = step(params, opt_state, x_train[order[i:i + 64]], y_train[order[i:i + 64]], k)
  accuracy = np.mean(np.asarray(logits_fn(params, x_held)).argmax(1) == y_held)
  print(f"WideDigitCNN: {epochs} epochs in {time.time() - start:.0f} s, held-out accuracy {accuracy:.4f} "
        f"(the shipped digit CNN: 0.974)")
  return params, logits_fn


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=30)
  parser.add_argument("--workdirs", default="", help="trained stacked_mnist5k runs (comma-separated)")
  args = parser.parse_args()
  params, logits_fn = train_classifier(args.epochs)

  def wide(images):  # the reader stacked.channel_digits calls: (logits, features)
    x = digits.to_classifier_input(images)
    return np.concatenate([np.asarray(logits_fn(params, x[i:i + 1000])) for i in range(0, len(x), 1000)]), None

  from gan_jax.data.stacked import StackedDigits
  sets = [("real held-out triples (the floor)", lambda: StackedDigits("test", 28, seed=0).get_batch(0, 26_000)["x"]),
          ("real training triples", lambda: StackedDigits("train", 28, seed=0).get_batch(0, 26_000)["x"])]
  sets += [(workdir, lambda w=workdir: final_samples(w)) for workdir in filter(None, args.workdirs.split(","))]
  print("\n| triples (26,000) | classifier | modes (>= 1/4 share) / (>= 1 sample) | KL | channels' KL | "
        "dependence |\n|---|---|---|---|---|---|")
  for name, draw in sets:
    images = draw()
    for reader_name, reader in (("shipped CNN", None), ("WideDigitCNN", wide)):
      r = stacked.mode_metrics(stacked.channel_digits(images, reader))
      print(f"| {name} | {reader_name} | {r['stacked_modes']} / {r['stacked_modes_any']} | {r['stacked_kl']:.3f} | "
            f"{' / '.join(f'{c:.3f}' for c in r['stacked_kl_channels'])} | {r['stacked_dependence']:.3f} |",
            flush=True)


def final_samples(workdir: str):
  """26,000 samples of the run's final G_ema, as its evaluation draws them (latents of seed 0)."""
  from gan_jax import generate, restore
  _, nets, state, _, _ = restore.load_for_sampling(workdir)
  return generate.generate_samples(nets, state, 26_000, seed=0)


if __name__ == "__main__":
  main()
