"""Train the digit classifier shipped as gan_jax/metrics/digits_cnn.msgpack.

  python experiments/train_digit_classifier.py [--epochs=15] [--out=gan_jax/metrics/digits_cnn.msgpack]

Trains on the 4,000 mnist5k training digits with random +-2 px shifts, reports the accuracy on the
1,000 held-out digits (tests/test_metrics.py recomputes it from the shipped weights).
"""
import os

from absl import app, flags

from gan_jax import cli, xla_cpu

xla_cpu.configure()  # Before JAX starts its CPU backend, as every entry point.
import numpy as np  # noqa: E402

flags.DEFINE_integer("epochs", 15, "Training epochs.")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string("out", None, "Where to write the weights (default: the packaged file).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.epochs <= 0:
    cli.fail(f"--epochs={FLAGS.epochs}: must be a positive number")
  import flax.serialization
  import jax
  import jax.numpy as jnp
  import optax
  from gan_jax.data.images import load_mnist5k
  from gan_jax.metrics import digits

  x_train, y_train = load_mnist5k(32, "train")
  x_test, y_test = load_mnist5k(32, "test")
  x_train = x_train.astype(np.float32) / 127.5 - 1
  x_test = x_test.astype(np.float32) / 127.5 - 1
  model = digits.DigitCNN()
  params = model.init(jax.random.PRNGKey(FLAGS.seed), jnp.zeros((1, 32, 32, 1)))["params"]
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(FLAGS.seed)
  for epoch in range(FLAGS.epochs):
    order = rng.permutation(len(x_train))
    for i in range(0, len(order) - 63, 64):
      idx = order[i:i + 64]
      dy, dx = rng.integers(-2, 3, size=2)
      xb = np.roll(x_train[idx], (dy, dx), axis=(1, 2))
      params, opt_state, loss = step(params, opt_state, xb, y_train[idx])
    probs, _ = digits.classify(x_test, params)
    print(f"epoch {epoch + 1}: loss {float(loss):.4f}, held-out accuracy {np.mean(probs.argmax(1) == y_test):.4f}")
  from gan_jax import workdir
  out = FLAGS.out or digits.WEIGHTS
  with cli.one_line_errors():
    workdir.write_atomic(out, lambda f: f.write(flax.serialization.to_bytes(params)), mode="wb")
  print(f"wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)")


if __name__ == "__main__":
  app.run(main)
