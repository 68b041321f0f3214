"""Margin, ranking and embedding losses (modules)."""

__all__: list[str] = []
