"""The adadelta optimizer (optimlab re-implementation)."""

__all__: list[str] = []
