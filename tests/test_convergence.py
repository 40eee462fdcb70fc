"""Slow: the shipped flagfiles reach the figures the README promises."""
import json

import pytest

from gan_jax import train
from gan_jax.config import Config


@pytest.mark.slow
def test_ring_flags_cover_all_modes(tmp_path):
  """ring.flags, seed 0: 8/8 modes and >= 90% high-quality samples (PacGAN protocol)."""
  cfg = Config(workdir=str(tmp_path), dataset="ring", model="mlp", latent_dim=2, batch_size=256,
               train_steps=10000, lr_schedule="cosine", ema_decay=0.999, pack=2, steps_per_call=500,
               eval_every=5000, log_every=5000, checkpoint_every=5000, num_devices=1)
  final = train.train_and_evaluate(cfg)
  assert final["modes"] == 8 and final["high_quality"] >= 0.90, final
  assert json.loads((tmp_path / "eval" / "final_metrics.json").read_text())["modes"] == 8
