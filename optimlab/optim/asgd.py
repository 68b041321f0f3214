"""The asgd optimizer (optimlab re-implementation)."""

__all__: list[str] = []
