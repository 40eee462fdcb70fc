"""gan_jax.nets.resnet against Mimicry's own SNGAN / cGAN-PD 32x32 code: parameter counts, and the same
outputs once Mimicry's weights are copied in.

  python benchmarks/resnet_vs_mimicry.py --mimicry=DIR   # DIR: a checkout of kwotsin/mimicry

Needs torch (the `bench` extra). Mimicry's package __init__ imports its training and metrics code
(TensorFlow and more); only torch_mimicry.nets is loaded here. G is compared in inference mode (batch
norm on its initial running statistics, and on conditional G the class embedding), D without spectral
normalisation on gan-jax's side and Mimicry's weights taken as its layers use them, divided by their
converged top singular values (gan-jax's spectral norm is tested on its own in tests/test_resnet.py): what is compared is every layer's wiring, shape and weight layout.
"""
import argparse
import sys
import types

import numpy as np

from gan_jax import xla_cpu

xla_cpu.configure()


def load_mimicry(root: str):
  package = types.ModuleType("torch_mimicry")
  package.__path__ = [root + "/torch_mimicry"]
  sys.modules["torch_mimicry"] = package
  from torch_mimicry.nets.cgan_pd import cgan_pd_32
  from torch_mimicry.nets.sngan import sngan_32
  return sngan_32, cgan_pd_32


def weight(m):
  """A layer's weight as its forward uses it: Mimicry's own spectral-norm layers (torch_mimicry.modules.
  spectral_norm) divide it by sigma in every call; torch's hook-based one is removed by strip_spectral_norm."""
  w = m.sn_weights() if hasattr(m, "sn_weights") else m.weight
  return w.detach().numpy()


def conv(m):
  return {"kernel": weight(m).transpose(2, 3, 1, 0), "bias": m.bias.detach().numpy()}


def bn(m):
  return {"scale": m.weight.detach().numpy(), "bias": m.bias.detach().numpy()}


def g_params(g, conditional: bool):
  """Mimicry's G state -> gan-jax's parameter tree (the linear layer's outputs from NCHW to NHWC order)."""
  width = g.ngf
  w = g.l1.weight.detach().numpy().T.reshape(-1, width, 4, 4).transpose(0, 2, 3, 1).reshape(-1, 16 * width)
  b = g.l1.bias.detach().numpy().reshape(width, 4, 4).transpose(1, 2, 0).reshape(-1)
  params = {"Dense_0": {"kernel": w, "bias": b}, "BatchNorm_0": bn(g.b5), "Conv_0": conv(g.c5)}
  for i, block in enumerate((g.block2, g.block3, g.block4)):
    norms = [{"Embed_0": {"embedding": n.embed.weight.detach().numpy()}} if conditional
             else {"BatchNorm_0": bn(n)} for n in (block.b1, block.b2)]
    params[f"GBlock_{i}"] = {"ConditionalBatchNorm_0": norms[0], "ConditionalBatchNorm_1": norms[1],
                             "Conv_0": conv(block.c1), "Conv_1": conv(block.c2), "Conv_2": conv(block.c_sc)}
  return params


def d_params(d, conditional: bool):
  b1, b2, b3, b4 = d.block1, d.block2, d.block3, d.block4
  convs = [b1.c1, b1.c2, b1.c_sc, b2.c1, b2.c2, b2.c_sc, b3.c1, b3.c2, b4.c1, b4.c2]
  params = {f"Conv_{i}": conv(m) for i, m in enumerate(convs)}
  head = {"Dense_0": {"kernel": weight(d.l5).T, "bias": d.l5.bias.detach().numpy()}}
  if conditional:
    head["Embed_0"] = {"embedding": weight(d.l_y)}
  params["DiscriminatorHead_0"] = head
  return params


def strip_spectral_norm(module):
  """Mimicry's D with each weight divided by its converged top singular value, as plain layers."""
  import torch
  module.train()
  with torch.no_grad():
    for _ in range(100):  # power iterations (one per training-mode forward)
      module(torch.zeros(1, 3, 32, 32), *([torch.zeros(1, dtype=torch.long)] if hasattr(module, "l_y") else []))
  module.eval()
  for m in module.modules():
    if hasattr(m, "weight_orig"):
      torch.nn.utils.remove_spectral_norm(m)
  return module


def compare(conditional: bool, sngan_32, cgan_pd_32):
  import jax
  import jax.numpy as jnp
  import torch
  from gan_jax.nets import NetOptions, resnet
  torch.manual_seed(0)
  if conditional:
    tg, td = cgan_pd_32.CGANPDGenerator32(num_classes=10), cgan_pd_32.CGANPDDiscriminator32(num_classes=10)
  else:
    tg, td = sngan_32.SNGANGenerator32(), sngan_32.SNGANDiscriminator32()
  tg.eval()
  strip_spectral_norm(td)
  opts = NetOptions(data_shape=(32, 32, 3), num_classes=10 if conditional else 0,
                    conditioning="projection" if conditional else "none", spectral_norm=False)
  g, d = resnet.build(opts, 256, 128, "bilinear")
  z = np.random.default_rng(0).normal(size=(8, 128)).astype(np.float32)
  y = np.arange(8) % 10
  labels = jnp.asarray(y) if conditional else None
  g_vars = g.init(jax.random.PRNGKey(0), jnp.asarray(z), labels, train=False)
  g_vars = {**g_vars, "params": jax.tree.map(jnp.asarray, g_params(tg, conditional))}
  with torch.no_grad():
    t_x = tg(torch.from_numpy(z), torch.from_numpy(y)) if conditional else tg(torch.from_numpy(z))
    x = g.apply(g_vars, jnp.asarray(z), labels, train=False)
    t_logits = td(t_x, torch.from_numpy(y)) if conditional else td(t_x)
  d_vars = {"params": jax.tree.map(jnp.asarray, d_params(td, conditional))}
  logits = d.apply(d_vars, jnp.asarray(t_x.numpy().transpose(0, 2, 3, 1)), labels, train=False)
  count = lambda tree: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))  # noqa: E731
  g_err = float(np.max(np.abs(np.asarray(x) - t_x.numpy().transpose(0, 2, 3, 1))))
  d_err = float(np.max(np.abs(np.asarray(logits) - t_logits.numpy().reshape(-1))))
  return {"conditional": conditional, "g_params": count(g_vars["params"]),
          "g_params_mimicry": sum(p.numel() for p in tg.parameters()), "g_max_abs_diff": g_err,
          "d_max_abs_diff": d_err, "d_logit_scale": float(np.max(np.abs(t_logits.numpy())))}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mimicry", required=True, help="a checkout of kwotsin/mimicry")
  args = parser.parse_args()
  modules = load_mimicry(args.mimicry)
  for conditional in (False, True):
    print(compare(conditional, *modules))


if __name__ == "__main__":
  main()
