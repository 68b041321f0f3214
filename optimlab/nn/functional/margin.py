"""Margin, ranking and embedding losses (functional forms)."""

__all__: list[str] = []
