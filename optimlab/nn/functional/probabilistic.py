"""Likelihood losses: cross entropy, NLL, BCE, KL divergence, Poisson and Gaussian NLL (functional forms)."""

__all__: list[str] = []
