"""Losses beyond torch: focal, GIoU/DIoU box losses, 0-1 loss (functional forms)."""

__all__: list[str] = []
