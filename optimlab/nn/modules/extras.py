"""Losses beyond torch: focal, GIoU/DIoU box losses, 0-1 loss (modules)."""

__all__: list[str] = []
