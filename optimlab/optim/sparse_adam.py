"""The sparse_adam optimizer (optimlab re-implementation)."""

__all__: list[str] = []
