"""Random hyperparameters (the catalogue's ``fuzz`` ranges) and random batches for each elementwise
optimizer, in lockstep with torch; hypothesis shrinks any failure to a minimal reproducer."""

from __future__ import annotations

import pytest

from optimlab import catalog
from optimlab.parity import fuzz

NAMES = ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adagrad", "Adadelta", "RMSprop", "Rprop", "ASGD"]


@pytest.mark.parametrize("name", NAMES)
def test_fuzz(name):
    # few examples and steps: the catalogue's fixed cases carry the 50-step coverage
    report = fuzz.fuzz(catalog.get("optim", name), examples=4, steps=6)
    assert report.passed, report.reproducer()
