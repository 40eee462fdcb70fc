"""gan-jax: Generative Adversarial Networks as pure functions over JAX pytrees."""

__version__ = "0.1.0"
