"""Importing optimlab costs no more than importing torch: nothing heavy is loaded until used (issue 26).

Each import runs in a fresh interpreter; the modules it left in ``sys.modules`` are checked, not its time (timed
assertions flake; docs/losses.md quotes the measured import times)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch._dynamo", "torch._inductor", "matplotlib", "rich", "optimlab.parity", "optimlab.catalog")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("module", ["optimlab", "optimlab.nn", "optimlab.optim"])
def test_import_loads_nothing_heavy(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert not heavy, f"import {module} loaded {heavy[:8]}"


def test_submodules_load_on_first_use() -> None:
    """``import optimlab`` loads neither family; ``optimlab.nn`` as an attribute loads it."""
    loaded = _loaded_after("import optimlab")
    assert "optimlab.nn" not in loaded and "optimlab.optim" not in loaded
    loaded = _loaded_after("import optimlab\noptimlab.nn.MSELoss")
    assert "optimlab.nn" in loaded and "optimlab.optim" not in loaded


def test_compiled_ctc_still_breaks_the_graph_lazily() -> None:
    """The CTC graph-break wrapper is made on first use under compile, not at import."""
    from optimlab.nn.functional import ctc

    assert callable(ctc._untraced())
