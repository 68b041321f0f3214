"""Connectionist temporal classification loss (functional forms)."""

__all__: list[str] = []
