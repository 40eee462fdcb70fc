"""D's features reused for classification (Radford et al. 2015, sec. 5.1): a linear probe on them."""
import jax
import jax.numpy as jnp
import numpy as np

PROBE_LABELS = 100  # the few-label column; the other uses every training label


def discriminator_features(nets, state, images, batch: int = 500):
  """D's last feature map, flattened: [N, F].

  A conditional D is told class 0 for every image, so no label reaches the features: those of a
  projection or AC-GAN D do not depend on it; a concat D's are its features as if every image were a 0.
  """
  variables = {"params": state.d_params, **state.d_collections}  # an argument: a closed-over D is constant-folded

  def features(v, x):
    labels = jnp.zeros((x.shape[0],), jnp.int32) if nets.num_classes else None
    return nets.discriminator.apply(v, x, labels, train=False, features=True)[1]

  fn = jax.jit(features)
  return np.concatenate([np.asarray(fn(variables, jnp.asarray(images[i:i + batch]))).reshape(
      len(images[i:i + batch]), -1) for i in range(0, len(images), batch)])


def linear_probe(train_f, train_y, test_f, test_y, num_labels=None, seed: int = 0):
  """Held-out accuracy of a logistic regression on D's features, trained on `num_labels` labels."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler
  idx = np.arange(len(train_f))
  if num_labels is not None and num_labels < len(train_f):
    idx = np.random.default_rng(seed).choice(len(train_f), num_labels, replace=False)
  scaler = StandardScaler().fit(train_f[idx])
  clf = LogisticRegression(max_iter=2000).fit(scaler.transform(train_f[idx]), train_y[idx])
  return float(np.mean(clf.predict(scaler.transform(test_f)) == test_y))


def probe_metric(inputs) -> dict:
  """The registry's 'd_probe': D's features of every training image (with its label) and of the
  held-out images; accuracy on the held-out images with PROBE_LABELS and with all labels."""
  train = inputs.dataset.get_batch(0, inputs.dataset.num_examples)
  held_out = inputs.held_out.get_batch(0, inputs.held_out.num_examples)
  train_f = discriminator_features(inputs.nets, inputs.state, train["x"])
  held_f = discriminator_features(inputs.nets, inputs.state, held_out["x"])
  return {f"d_features_linear_acc_{name}_labels": linear_probe(train_f, train["label"], held_f, held_out["label"], n)
          for name, n in ((str(PROBE_LABELS), PROBE_LABELS), ("all", None))}
