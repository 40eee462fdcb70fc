"""Issue 30: the SNGAN / cGAN-PD ResNets (gan_jax/nets/resnet.py): Mimicry's parameter counts, shapes,
spectral normalisation of every D layer, conditioning, upsampling, resume and many devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import train
from gan_jax.errors import ConfigError
from gan_jax.nets import NetOptions, resnet
from tests.conftest import toy_config
from tests.test_checkpoint import assert_same_state
from tests.test_sharding import assert_trees_close

# Mimicry's torch_mimicry/nets/sngan/sngan_32.py and cgan_pd/cgan_pd_32.py (10 classes), counted from its
# code under torch: sum(p.numel() for p in net.parameters() if p.requires_grad).
MIMICRY_COUNTS = {"none": (4_276_739, 1_053_825), "projection": (4_304_387, 1_055_105)}


def nets(width=256, d_width=0, channels=3, classes=0, conditioning="none", spectral_norm=True, upsample="bilinear"):
  opts = NetOptions(data_shape=(32, 32, channels), num_classes=classes, conditioning=conditioning,
                    spectral_norm=spectral_norm)
  return resnet.build(opts, width, d_width, upsample)


def init(g, d, latent=128, batch=4, classes=0, seed=0):
  z = jax.random.normal(jax.random.PRNGKey(seed), (batch, latent))
  y = jnp.arange(batch) % classes if classes else None
  gv = g.init(jax.random.PRNGKey(1), z, y, train=False)
  x = g.apply(gv, z, y, train=False)
  dv = d.init(jax.random.PRNGKey(2), x, y, train=False)
  return z, y, gv, x, dv


def count(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


@pytest.mark.parametrize("conditioning", ["none", "projection"])
def test_parameter_counts_equal_mimicrys(conditioning):
  classes = 10 if conditioning != "none" else 0
  g, d = nets(classes=classes, conditioning=conditioning)
  z, y = jnp.zeros((2, 128)), (jnp.zeros((2,), jnp.int32) if classes else None)
  g_vars = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z, y, train=False))
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.PRNGKey(0), x, y, train=False), x)
  assert (count(g_vars["params"]), count(d_vars["params"])) == MIMICRY_COUNTS[conditioning]


@pytest.mark.parametrize("channels,classes", [(1, 0), (3, 10)])
def test_shapes_range_and_features(channels, classes):
  g, d = nets(width=16, d_width=8, channels=channels, classes=classes,
              conditioning="projection" if classes else "none")
  z, y, _, x, dv = init(g, d, batch=5, classes=classes)
  assert x.shape == (5, 32, 32, channels) and float(jnp.max(jnp.abs(x))) <= 1.0
  logits, h, class_logits = d.apply(dv, x, y, train=False, features=True)
  assert logits.shape == (5,) and h.shape == (5, 8, 8, 8) and class_logits is None
  assert float(jnp.min(h)) >= 0.0  # the map after D's last ReLU


def test_every_discriminator_layer_is_spectrally_normalised():
  """With spectral norm D is unchanged when every weight matrix (kernels and the class embedding) is
  scaled by 10: each layer divides by its own top singular value. A layer left out breaks this."""
  g, d = nets(width=16, d_width=8, classes=10, conditioning="projection")
  _, y, _, x, dv = init(g, d, classes=10)
  matrices = [p for p in jax.tree_util.tree_leaves_with_path(dv["params"]) if p[1].ndim >= 2]
  assert len(matrices) == 2 + 3 * 2 + 2 + 1 + 1  # 3x3 convs (4 blocks), two 1x1 shortcuts, Linear, embedding
  vectors = [path for path, _ in jax.tree_util.tree_leaves_with_path(dv["batch_stats"]) if path[-1].key.endswith("/u")]
  assert len(vectors) == len(matrices)  # one power-iteration vector per matrix
  scaled = {**dv, "params": jax.tree.map(lambda p: 10.0 * p if p.ndim >= 2 else p, dv["params"])}
  np.testing.assert_allclose(d.apply(scaled, x, y, train=False), d.apply(dv, x, y, train=False), rtol=2e-4)
  _, plain = nets(width=16, d_width=8, classes=10, conditioning="projection", spectral_norm=False)
  pv = plain.init(jax.random.PRNGKey(2), x, y, train=False)
  scaled = {"params": jax.tree.map(lambda p: 10.0 * p if p.ndim >= 2 else p, pv["params"])}
  assert not np.allclose(plain.apply(scaled, x, y, train=False), plain.apply(pv, x, y, train=False), rtol=0.1)


def test_conditional_batch_norm_and_the_projection_read_the_labels():
  g, d = nets(width=16, d_width=8, classes=10, conditioning="projection")
  z, y, gv, x, dv = init(g, d, classes=10)
  other = (y + 1) % 10
  assert not np.allclose(g.apply(gv, z, other, train=False), x, atol=1e-4)
  assert not np.allclose(d.apply(dv, x, other, train=False), d.apply(dv, x, y, train=False), atol=1e-4)
  table = gv["params"]["GBlock_0"]["ConditionalBatchNorm_0"]["Embed_0"]["embedding"]  # [classes, 2C]: gamma, beta
  gamma, beta = np.split(np.asarray(table), 2, axis=1)
  assert table.shape == (10, 2 * 16) and abs(gamma.mean() - 1) < 0.01 and 0.01 < gamma.std() < 0.03
  assert not beta.any()


def test_conditional_batch_norm_is_its_formula():
  """gamma_y * (x - mean) / sqrt(var + eps) + beta_y, the statistics over the batch and space."""
  bn = resnet.ConditionalBatchNorm(num_classes=3, train=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 2, 2, 4)) * 3 + 1
  y = jnp.array([0, 1, 2, 0, 1, 2])
  variables = bn.init(jax.random.PRNGKey(1), x, y)
  table = jax.random.normal(jax.random.PRNGKey(2), (3, 8))
  out, _ = bn.apply({**variables, "params": {"Embed_0": {"embedding": table}}}, x, y, mutable=["batch_stats"])
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  expected = table[y, None, None, :4] * (x - mean) / jnp.sqrt(var + 1e-5) + table[y, None, None, 4:]
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_upsampling_bilinear_like_pytorch_and_nearest():
  row = jnp.arange(4.0).reshape(1, 1, 4, 1)
  # F.interpolate(scale_factor=2, mode='bilinear', align_corners=False), computed by hand: half-pixel
  # centres, the ends clamped.
  np.testing.assert_allclose(resnet.upsample2x(row, "bilinear")[0, 0, :, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
  np.testing.assert_array_equal(resnet.upsample2x(row, "nearest")[0, 0, :, 0], [0, 0, 1, 1, 2, 2, 3, 3])
  g_bilinear, d = nets(width=16, d_width=8)
  g_nearest, _ = nets(width=16, d_width=8, upsample="nearest")
  z, _, gv, x, _ = init(g_bilinear, d)
  assert not np.allclose(g_nearest.apply(gv, z, None, train=False), x, atol=1e-4)  # same parameters


def test_the_resnet_model_refuses_what_it_does_not_implement(tmp_path):
  base = dict(model="resnet", dataset="mnist5k", width=16, eval_metrics="")
  config_lib.validate(toy_config(tmp_path, resolution=32, **base))
  with pytest.raises(ConfigError, match="--resolution=64: --model=resnet is built for 32 px"):
    config_lib.validate(toy_config(tmp_path, resolution=64, **base))
  with pytest.raises(ConfigError, match="--virtual_batch_norm=8: --model=resnet does not implement it"):
    config_lib.validate(toy_config(tmp_path, resolution=32, virtual_batch_norm=8, **base))
  with pytest.raises(ConfigError, match="--upsample=bicubic: valid choices: bilinear, nearest"):
    config_lib.validate(toy_config(tmp_path, resolution=32, upsample="bicubic", **base))
  assert config_lib.UPSAMPLINGS == resnet.UPSAMPLINGS


def resnet_config(workdir, **kw):
  from tests.test_images import image_config
  base = dict(model="resnet", resolution=32, width=8, d_width=4, latent_dim=16, batch_size=16, spectral_norm=True,
              loss="hinge", conditioning="projection", eval_metrics="")
  return image_config(workdir, "mnist5k", **{**base, **kw})


@pytest.mark.integration
def test_a_resumed_resnet_run_ends_bitwise_where_a_straight_one_does(tmp_path):
  """Unconditional, so that the two ResNet integration tests cover both conditionings (the 8-device one
  is conditional: the projection's embedding and G's class-conditional batch norm)."""
  kw = dict(train_steps=4, eval_every=2, checkpoint_every=2, conditioning="none")
  train.train_and_evaluate(resnet_config(tmp_path / "straight", **kw))
  train.train_and_evaluate(resnet_config(tmp_path / "resumed", **{**kw, "train_steps": 2}))
  train.train_and_evaluate(resnet_config(tmp_path / "resumed", **kw))
  assert_same_state(tmp_path / "straight", tmp_path / "resumed", 4)


@pytest.mark.integration
def test_eight_devices_equal_one_for_the_resnet(tmp_path):
  """One iteration on 8 devices equals one on 1: the losses, each player's gradient (Adam's first moment,
  (1 - beta1) g), G's global batch-norm statistics and D's spectral-norm vectors. (Parameters are not
  compared: the convolution biases before a batch norm have a zero gradient up to round-off, and Adam's
  first step moves them by +-lr by its sign alone, whatever device count.)"""
  from tests.test_sharding import STEP_METRICS, one_step_on
  cfg = resnet_config(tmp_path, conditioning="projection", bn_sync=True)
  (m1, s1), (m8, s8) = one_step_on(cfg, 1, (32, 32, 1), 10), one_step_on(cfg, 8, (32, 32, 1), 10)
  for key in STEP_METRICS:
    np.testing.assert_allclose(m8[key], m1[key], rtol=1e-5, err_msg=key)
  for one, eight in ((s1.g_opt_state, s8.g_opt_state), (s1.d_opt_state, s8.d_opt_state)):
    mu1, mu8 = one[0].mu, eight[0].mu
    scale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(mu1))
    assert_trees_close(mu1, mu8, 1e-4 * scale)  # float32 sums over 16 x 32 x 32 positions, in another order
  assert "batch_stats" in s1.g_collections and "batch_stats" in s1.d_collections  # BN statistics; SN vectors
  assert_trees_close(s1.g_collections, s8.g_collections, 1e-5)
  assert_trees_close(s1.d_collections, s8.d_collections, 1e-5)


def test_the_linear_schedule_decays_each_players_rate_to_zero_over_its_updates():
  """SNGAN's linear decay: lr_t = lr (1 - t / T), T = the player's updates in the run (D: train_steps x
  d_steps), the rate Adam's first update uses being lr itself."""
  from gan_jax.state import SCHEDULES
  schedule = SCHEDULES["linear"](2e-4, 5 * 100)
  for t in (0, 1, 250, 499, 500, 600):
    np.testing.assert_allclose(float(schedule(t)), 2e-4 * max(0.0, 1 - t / 500), rtol=1e-4, atol=1e-12)  # float32


def test_sngan_flags_are_mimicrys_recipe_and_the_cpu_flags_reduce_it():
  import os

  from tests.conftest import REPO
  lines = lambda name: [l.strip() for l in open(os.path.join(REPO, "experiments", name))  # noqa: E731
                        if l.startswith("--")]
  recipe = lines("sngan.flags")
  for flag in ("--model=resnet", "--width=256", "--d_width=128", "--spectral_norm", "--loss=hinge", "--d_steps=5",
               "--batch_size=64", "--train_steps=100000", "--lr_g=2e-4", "--lr_d=2e-4", "--beta1=0.0",
               "--beta2=0.9", "--lr_schedule=linear", "--latent_dim=128", "--dataset=tfds:cifar10"):
    assert flag in recipe, flag
  assert lines("sngan_cpu.flags")[:2] == ["--flagfile=sngan.flags", "--dataset=mnist5k"]
