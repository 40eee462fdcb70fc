"""The model registry (`MODELS`), `build_nets(cfg, data_shape)` -> `GANNets`, and `apply_module`.

A model is one module under gan_jax/nets/ with a `build(opts: NetOptions, **options) -> (G, D)` and
one `MODELS.register(ModelSpec(...))` line here. The builder never reads the config: it gets the
options every model takes (`NetOptions`) and, as keyword arguments, the Config fields its spec
lists in `options`. This module imports no JAX: the registry serves flag help and validation.
"""
import dataclasses
from typing import Any, NamedTuple, Optional, Sequence

from gan_jax.errors import ConfigError
from gan_jax.registry import Ref, Registry, resolve

TOY, IMAGE = "toy", "image"  # the kinds of data a model takes (gan_jax.data.DatasetSpec.kind)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A model: its builder and what the rest of the code must know of it."""
  name: str
  build: Ref                 # (NetOptions, **options) -> (generator, discriminator) Flax modules
  help: str
  convolutional: bool        # conv nets run one step per call on XLA:CPU (--steps_per_call=auto)
  data: tuple = (TOY, IMAGE)  # the kinds of dataset it takes
  options: tuple = ()        # the Config fields passed to `build` as keyword arguments
  resolutions: tuple = ()    # the image sides it is built for (empty: every --resolution)
  refuses: tuple = ()        # Config fields it does not implement: validation refuses them unless off
  init_rows: int = 0         # D is initialised on this many training images (data-dependent init); 0: on zeros


@dataclasses.dataclass(frozen=True)
class NetOptions:
  """What every model is built from, besides its own options."""
  data_shape: tuple            # one sample's shape, e.g. (2,) or (32, 32, 1)
  num_classes: int = 0         # > 0: G and D conditioned on labels
  conditioning: str = "none"   # none | concat | acgan | projection
  spectral_norm: bool = False  # every layer of D normalised by its top singular value
  compute_dtype: str = "f32"   # f32 | bf16: the hidden layers' computation dtype
  bn_axis_name: Optional[str] = None  # the device axis batch-norm statistics are averaged over
  virtual_batch_norm: int = 0  # reference batch size of VBN in G; 0: off
  minibatch_discrimination: int = 0  # kernels in D's last layer; 0: off
  semi_supervised_classes: int = 0  # K > 0: D is a K+1-class classifier (--labeled_examples); 0: off


MODELS: Registry[ModelSpec] = Registry("model", "model")
MODELS.register(ModelSpec(
    "mlp", "gan_jax.nets.mlp:build", "the fully connected G and D of Goodfellow et al. 2014",
    convolutional=False, options=("g_hidden", "d_hidden", "g_activation", "d_activation", "maxout_pieces", "d_dropout",
                                "g_output", "mlp_bias_init")))
MODELS.register(ModelSpec(
    "dcgan", "gan_jax.nets.dcgan:build", "the all-convolutional G and D of Radford et al. 2015",
    convolutional=True, data=(IMAGE,), options=("width", "d_width")))
MODELS.register(ModelSpec(
    "dcgan_tf", "gan_jax.nets.dcgan_tf:build", "Radford's DCGAN as carpedm20's TensorFlow code writes it (5x5 kernels, "
    "four halvings): PacGAN's Stacked MNIST nets in VEEGAN's setting", convolutional=True, data=(IMAGE,),
    options=("width", "d_width"), refuses=("virtual_batch_norm",)))
MODELS.register(ModelSpec(
    "dcgan_small", "gan_jax.nets.dcgan_tf:build_small", "the small 3x3 DCGAN of the Unrolled GAN paper's Stacked MNIST "
    "experiment (--width=8 --d_width=2: D = 1/4 G)", convolutional=True, data=(IMAGE,), options=("width", "d_width"),
    refuses=("virtual_batch_norm",)))
MODELS.register(ModelSpec(
    "resnet", "gan_jax.nets.resnet:build", "the ResNet G and D of SNGAN / cGAN-PD (Miyato et al. 2018), Mimicry's "
    "32x32 layers (--width=256: G's channels; D's --d_width, 0: half of them; conditional batch norm in a "
    "conditional G)", convolutional=True, data=(IMAGE,), options=("width", "d_width", "upsample"),
    resolutions=(32,), refuses=("virtual_batch_norm",)))
MODELS.register(ModelSpec(
    "improved_gan", "gan_jax.nets.improved_gan:build", "the MNIST MLPs of Salimans et al. 2016 (G: batch norm, "
    "softplus; D: Gaussian noise, weight normalisation with a data-dependent init; --g_hidden=500,500 "
    "--d_hidden=1000,500,250,250,250)", convolutional=False, data=(IMAGE,),
    options=("g_hidden", "d_hidden", "d_input_noise"),
    refuses=("virtual_batch_norm",), init_rows=500))


class GANNets(NamedTuple):
  generator: Any            # apply(vars, z [B, latent_dim], labels [B] | None, train) -> x [B, *data_shape]
  discriminator: Any        # PackedDiscriminator: apply(vars, x [B, *data_shape], labels | None, train) -> logits [B/pack]
  latent_dim: int
  data_shape: tuple         # one sample's shape, e.g. (2,) or (32, 32, 1)
  num_classes: int = 0      # > 0: G and D are conditioned on labels (cfg.conditioning)
  latent_distribution: str = "normal"  # p_z: normal (N(0, I)) or uniform (U[-1, 1]^d)


LATENT_DISTRIBUTIONS = ("normal", "uniform")


def draw_latents(distribution: str, key, shape):
  """z ~ p_z of `shape`: N(0, I) ('normal') or U[-1, 1]^d ('uniform', Goodfellow et al. 2014; VEEGAN)."""
  import jax
  if distribution == "uniform":
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
  return jax.random.normal(key, shape)


def apply_module(module, params, collections, inputs, train: bool, rng=None, **kwargs):
  """Applies a network to `inputs` (a tuple); returns (output, collections after the call).

  In train mode the non-parameter collections (batch statistics, spectral-norm vectors) are
  mutable and come back updated; in inference mode they come back as given. `rng` feeds dropout.
  """
  variables = {"params": params, **collections}
  rngs = {"dropout": rng} if rng is not None else None
  if train and collections:
    return module.apply(variables, *inputs, train=True, rngs=rngs, mutable=list(collections), **kwargs)
  return module.apply(variables, *inputs, train=train, rngs=rngs, **kwargs), collections


def conditioning_classes(cfg, num_classes: int) -> int:
  """The classes G and D see: 0 for an unconditional GAN; a ConfigError when labels are missing."""
  if cfg.conditioning == "none":
    return 0
  if num_classes < 2:
    raise ConfigError("conditioning", cfg.conditioning,
                      f"needs a labelled dataset, and --dataset={cfg.dataset} has {num_classes} classes; "
                      "use --conditioning=none or a dataset with labels (mnist5k, a labelled tfds "
                      "dataset, a folder of class subfolders, the toy mixtures)")
  return num_classes


def net_options(cfg, data_shape: Sequence[int], axis_name: Optional[str], num_classes: int,
                semi_supervised_classes: int = 0) -> NetOptions:
  return NetOptions(data_shape=tuple(data_shape), num_classes=num_classes, conditioning=cfg.conditioning,
                    semi_supervised_classes=semi_supervised_classes,
                    spectral_norm=cfg.spectral_norm, compute_dtype=cfg.compute_dtype,
                    bn_axis_name=axis_name if cfg.bn_sync else None, virtual_batch_norm=cfg.virtual_batch_norm,
                    minibatch_discrimination=cfg.minibatch_discrimination)


def build_nets(cfg, data_shape: Sequence[int], axis_name: Optional[str] = None,
               num_classes: int = 0) -> GANNets:
  """Builds G and D of `cfg.model` for one sample shape and the dataset's `num_classes`.

  `axis_name` is the device axis for synced batch norm. D sits behind PacGAN packing
  (`--pack`), so it takes samples like G's. With --labeled_examples D is a K+1-class classifier of the
  dataset's K classes (G stays unconditional). Raises ConfigError when label conditioning or
  semi-supervision is asked of a dataset without labels.
  """
  from gan_jax.nets.layers import PackedDiscriminator
  spec = MODELS.get(cfg.model)
  classes = conditioning_classes(cfg, num_classes)
  if cfg.labeled_examples and num_classes < 2:
    raise ConfigError("labeled_examples", cfg.labeled_examples,
                      f"needs a labelled dataset, and --dataset={cfg.dataset} has {num_classes} classes")
  opts = net_options(cfg, data_shape, axis_name, classes, num_classes if cfg.labeled_examples else 0)
  g, d = resolve(spec.build)(opts, **{name: getattr(cfg, name) for name in spec.options})
  return GANNets(g, PackedDiscriminator(d, cfg.pack), cfg.latent_dim, tuple(data_shape), classes,
                 cfg.latent_distribution)
