"""The adafactor optimizer (optimlab re-implementation)."""

__all__: list[str] = []
