"""Stochastic weight averaging utilities mirroring ``torch.optim.swa_utils`` (SWALR, AveragedModel,
update_bn): filled in by the schedulers work (issue 5)."""

__all__: list[str] = []
