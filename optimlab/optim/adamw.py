"""The adamw optimizer (optimlab re-implementation)."""

__all__: list[str] = []
