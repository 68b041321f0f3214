"""Connectionist temporal classification loss (modules)."""

__all__: list[str] = []
