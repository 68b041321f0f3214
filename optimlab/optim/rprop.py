"""The rprop optimizer (optimlab re-implementation)."""

__all__: list[str] = []
