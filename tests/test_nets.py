"""Networks: the fast transposed convolution equals nn.ConvTranspose; shapes; packing; maxout."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_jax.nets.layers import ConvTranspose2x, Maxout, pack_samples
from gan_jax.nets.mlp import MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("shape", [(2, 4, 4, 8), (3, 7, 5, 2)])
def test_subpixel_conv_transpose_equals_conv_transpose(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  fast = ConvTranspose2x(6, kernel_init=nn.initializers.normal(1.0))
  ref = nn.ConvTranspose(6, (4, 4), strides=(2, 2), padding="SAME")
  variables = fast.init(jax.random.key(1), x)
  variables = {"params": {"kernel": variables["params"]["kernel"],
                          "bias": jax.random.normal(jax.random.key(2), (6,))}}
  y_fast, y_ref = fast.apply(variables, x), ref.apply(variables, x)
  assert y_fast.shape == (shape[0], 2 * shape[1], 2 * shape[2], 6)
  np.testing.assert_allclose(y_fast, y_ref, atol=1e-5)
  # Gradients with respect to the input and every parameter agree too.
  cot = jax.random.normal(jax.random.key(3), y_ref.shape)
  grad = lambda m: jax.grad(lambda v, x: jnp.sum(m.apply(v, x) * cot), argnums=(0, 1))(variables, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), grad(fast), grad(ref))


@pytest.mark.parametrize("resolution", [28, 32, 64])
def test_dcgan_shapes(resolution):
  g = DCGANGenerator(resolution=resolution, channels=3, width=8)
  d = DCGANDiscriminator(resolution=resolution, width=8)
  z = jnp.zeros((2, 10))
  gv = g.init(jax.random.key(0), z, train=False)
  x = g.apply(gv, z, train=False)
  assert x.shape == (2, resolution, resolution, 3)
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  dv = d.init(jax.random.key(1), x, train=False)
  assert d.apply(dv, x, train=False).shape == (2,)
  # Batch norm everywhere but G's output and D's input.
  assert "batch_stats" in gv and "batch_stats" in dv
  assert "BatchNorm_0" in dv["batch_stats"] and "Conv_0" in dv["params"]
  assert not any("Dense" in k for k in dv["params"]), "D has no fully connected layer"


def test_dcgan_generator_32_matches_the_paper_layout():
  g = DCGANGenerator(resolution=32, channels=1, width=64)
  params = g.init(jax.random.key(0), jnp.zeros((1, 100)), train=False)["params"]
  assert params["Dense_0"]["kernel"].shape == (100, 4 * 4 * 256)
  assert params["ConvTranspose2x_0"]["kernel"].shape == (4, 4, 256, 128)
  assert params["ConvTranspose2x_1"]["kernel"].shape == (4, 4, 128, 64)
  assert params["ConvTranspose2x_2"]["kernel"].shape == (4, 4, 64, 1)


def test_dcgan_rejects_unsupported_resolution():
  g = DCGANGenerator(resolution=48)
  with pytest.raises(ValueError, match="28, 32 and 64"):
    g.init(jax.random.key(0), jnp.zeros((1, 4)), train=False)


def test_pack_samples():
  x = jnp.arange(12.0).reshape(6, 2)
  np.testing.assert_array_equal(pack_samples(x, 2), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
  img = jnp.arange(4 * 3 * 3 * 2.0).reshape(4, 3, 3, 2)
  packed = pack_samples(img, 2)
  assert packed.shape == (2, 3, 3, 4)
  np.testing.assert_array_equal(packed[1, ..., 2:], img[3])
  assert pack_samples(x, 1) is x


def test_maxout_takes_the_max_over_pieces():
  m = Maxout(features=3, pieces=4)
  x = jax.random.normal(jax.random.key(0), (5, 7))
  v = m.init(jax.random.key(1), x)
  k, b = v["params"]["Dense_0"]["kernel"], v["params"]["Dense_0"]["bias"]
  expected = (x @ k + b).reshape(5, 3, 4).max(-1)
  np.testing.assert_allclose(m.apply(v, x), expected, rtol=1e-5)


def test_mlp_shapes_and_dropout():
  g = MLPGenerator(hidden=(16,), out_shape=(28, 28, 1), output="tanh")
  z = jnp.ones((3, 5))
  x = g.apply(g.init(jax.random.key(0), z), z)
  assert x.shape == (3, 28, 28, 1)
  d = MLPDiscriminator(hidden=(8, 8), activation="maxout", maxout_pieces=5, dropout=0.5)
  v = d.init(jax.random.key(1), x, train=False)
  a = d.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)})
  b = d.apply(v, x, train=True, rngs={"dropout": jax.random.key(3)})
  assert a.shape == (3,) and not np.allclose(a, b)
  np.testing.assert_array_equal(d.apply(v, x, train=False), d.apply(v, x, train=False))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_hidden_activations_are_the_named_functions(activation):
  """G and D with --g_activation / --d_activation = tanh (Metz et al. 2017's 2-D nets) against numpy."""
  z = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
  g = MLPGenerator(hidden=(7, 4), out_shape=(2,), activation=activation)
  d = MLPDiscriminator(hidden=(6,), activation=activation)
  g_params = g.init(jax.random.PRNGKey(1), z)["params"]
  d_params = d.init(jax.random.PRNGKey(2), z[:, :2])["params"]
  f = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh}[activation]

  def dense(p, h):
    return h @ np.asarray(p["kernel"]) + np.asarray(p["bias"])

  h = np.asarray(z)
  for name in ("Dense_0", "Dense_1"):
    h = f(dense(g_params[name], h))
  np.testing.assert_allclose(g.apply({"params": g_params}, z), dense(g_params["Dense_2"], h), rtol=1e-5, atol=1e-6)
  x = np.asarray(z[:, :2])
  hidden = f(dense(d_params["Dense_0"], x))
  logits = d.apply({"params": d_params}, z[:, :2], train=False)
  out = dense(d_params["DiscriminatorHead_0"]["Dense_0"], hidden)[:, 0]
  np.testing.assert_allclose(logits, out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["zeros", "fan_in_uniform"])
def test_mlp_bias_init_draws_each_layers_biases_by_its_fan_in(kind):
  """--mlp_bias_init: zeros (flax's, today's runs) or U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on every dense layer.

  Layers of fan-in 1 (a 1-D z or x), 64 and 16: each layer's biases fill its own bound (a bound from the
  fan-out or a shared one fails), and G's first-layer kinks -b/w spread instead of sitting at 0.
  """
  from gan_jax import config as config_lib
  from gan_jax.nets import mlp
  assert config_lib.MLP_BIAS_INITS == mlp.BIAS_INITS
  g = MLPGenerator(hidden=(64, 16), out_shape=(1,), bias_init=kind)
  d = MLPDiscriminator(hidden=(64, 16), bias_init=kind)
  x = jnp.ones((3, 1))
  g_params = g.init(jax.random.key(0), x)["params"]
  for params in (g_params, d.init(jax.random.key(1), x)["params"]):
    for name, fan_in in (("Dense_0", 1), ("Dense_1", 64)):
      bias = np.asarray(params[name]["bias"])
      if kind == "zeros":
        assert not bias.any()
        continue
      bound = 1 / np.sqrt(fan_in)
      assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.8 * bound, (name, bias)
      assert abs(bias.std() - bound / np.sqrt(3)) < 0.25 * bound / np.sqrt(3)  # uniform, not one value
  assert np.abs(np.asarray(g_params["Dense_2"]["bias"])).max() <= 0.25  # fan-in 16: |b| <= 1/4
  p = g_params["Dense_0"]
  kinks = -np.asarray(p["bias"]) / np.asarray(p["kernel"])[0]
  assert (np.median(np.abs(kinks)) > 0.1) == (kind == "fan_in_uniform")
