"""The adamax optimizer (optimlab re-implementation)."""

__all__: list[str] = []
