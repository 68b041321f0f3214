"""Every catalogued (component, case, dtype) must pass the parity engine against torch."""

from __future__ import annotations

import pytest

from optimlab import parity

PLAN = parity.plan()


@pytest.mark.parametrize(
    "comp,case,dtype", PLAN,
    ids=[f"{c.family}:{c.name}:{k.name}:{str(d).replace('torch.', '')}" for c, k, d in PLAN],
)
def test_parity(comp, case, dtype, device):
    res = parity.run_case(comp, case, dtype, device)
    if res.skipped:  # the case exercises an API newer than the installed torch (catalog.Case.since)
        pytest.skip(res.message)
    assert res.passed, f"{comp.name}[{case.name}] {res.dtype}: {res.message}"
