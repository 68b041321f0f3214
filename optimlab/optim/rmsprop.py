"""The rmsprop optimizer (optimlab re-implementation)."""

__all__: list[str] = []
