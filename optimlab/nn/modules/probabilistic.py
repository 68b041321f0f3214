"""Likelihood losses: cross entropy, NLL, BCE, KL divergence, Poisson and Gaussian NLL (modules)."""

__all__: list[str] = []
