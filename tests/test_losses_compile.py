"""Every loss under ``torch.compile(fullgraph=True)``: forward and input gradients of the compiled module against
torch's eager result (the parity engine's compiled dimension, ``tolerances.COMPILED_LOSS``), one catalogued case
per loss, chosen to run the paths compile could break (class-index range checks, ignore masks, weights, label
smoothing, the regression work buffers, NaN-skipping hinges, warnings). Kept small: compiling is slow on 2 cores.

CTCLoss cannot be one graph in torch (dynamic-shape ops); ours runs eagerly behind one graph break
(``torch.compiler.disable``), checked on a tiny case with the engine's note asserted. GaussianNLLLoss is not one
graph in torch (a data-dependent ``var < 0`` check) but is in optimlab (the check is eager-only)."""

from __future__ import annotations

import pytest
import torch

from optimlab import catalog
from optimlab.catalog import Case
from optimlab.catalog.losses_prob import ctc
from optimlab.parity import losses

# (loss, case, dtype): float32 unless float64 exercises something more (double-precision sums)
CASES = [
    ("L1Loss", "mean", torch.float32),
    ("MSELoss", "broadcast-target", torch.float32),  # size warning + broadcast + scratch-free path
    ("HuberLoss", "none", torch.float32),
    ("SmoothL1Loss", "beta-0.2", torch.float32),
    ("SoftMarginLoss", "mean", torch.float32),
    ("CrossEntropyLoss", "smoothing-weight-ignore", torch.float64),  # ignore mask, weights, smoothing
    ("CrossEntropyLoss", "kdim-4d-none", torch.float32),  # (N, C, d1, d2) in float32
    ("NLLLoss", "kdim-5d-weight", torch.float64),  # (N, C, d1, ...) picks
    ("BCELoss", "weight", torch.float64),  # range check skipped while compiling
    ("BCEWithLogitsLoss", "pos_weight-and-weight", torch.float32),
    ("KLDivLoss", "mean", torch.float32),  # the 'mean' warning
    ("PoissonNLLLoss", "full", torch.float32),
    ("GaussianNLLLoss", "var-one-dim-smaller", torch.float32),
    ("MultiMarginLoss", "weight", torch.float64),
    ("MultiLabelMarginLoss", "mean", torch.float32),
    ("MultiLabelSoftMarginLoss", "mean", torch.float32),
    ("MarginRankingLoss", "margin", torch.float32),
    ("HingeEmbeddingLoss", "mean", torch.float32),
    ("CosineEmbeddingLoss", "mean", torch.float32),
    ("TripletMarginLoss", "swap", torch.float32),
    ("TripletMarginWithDistanceLoss", "mean", torch.float32),
]
GRAPH_BREAKS = [("CTCLoss", "tiny", torch.float32)]
TINY_CTC = Case("tiny", {}, extra={"inputs": ctc(t=3, n=2, c=4, s=1), "double_backward": False, "accuracy": True})


@pytest.mark.parametrize(("name", "case", "dtype"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_fullgraph_compile_matches_torch_eager(name: str, case: str, dtype: torch.dtype) -> None:
    comp = catalog.get("losses", name)
    res = losses.run_case(comp, comp.case(case), dtype, compile=True)
    assert res.passed, res.message
    assert res.message == "", res.message  # one graph, compiled (no fallback or torch-raises note)


@pytest.mark.parametrize(("name", "case", "dtype"), GRAPH_BREAKS, ids=[c[0] for c in GRAPH_BREAKS])
def test_graph_breaks_only_where_torch_breaks_too(name: str, case: str, dtype: torch.dtype) -> None:
    comp = catalog.get("losses", name)
    res = losses.run_case(comp, TINY_CTC if case == "tiny" else comp.case(case), dtype, compile=True)
    assert res.passed, res.message
    assert "as torch's is not either" in res.message


def test_every_loss_is_covered() -> None:
    """Every loss of the classic catalogue files (new loss families bring their own compile tests)."""
    from optimlab.catalog import losses as regression_margin
    from optimlab.catalog import losses_prob

    classic = {c.name for c in [*regression_margin.COMPONENTS, *losses_prob.COMPONENTS]}
    assert classic == {c[0] for c in CASES + GRAPH_BREAKS}


def test_compiled_case_fails_when_ours_breaks_the_graph() -> None:
    """The engine reports a loss that cannot be one graph where torch's can (here: a host sync planted in MSE)."""
    import optimlab.nn as onn

    class SyncingMSE(onn.MSELoss):
        def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if bool((input > 0).any()):  # data-dependent branch: no fullgraph
                return super().forward(input, target)
            return super().forward(input, target)

    comp = catalog.get("losses", "MSELoss")
    res = losses.run_case(comp, comp.case("mean"), torch.float32, ours_cls=SyncingMSE, compile=True)
    assert not res.passed
    assert "fullgraph compile fails where torch's compiles" in res.message


def test_range_checks_still_raise_eagerly() -> None:
    """Skipping host checks is for traced code only: eager mode keeps torch's exceptions."""
    import optimlab.nn.functional as OF

    x = torch.randn(3, 4)
    with pytest.raises(IndexError):
        OF.cross_entropy(x, torch.tensor([0, 4, 1]))
    with pytest.raises(RuntimeError):
        OF.binary_cross_entropy(torch.full((3,), 1.5), torch.zeros(3))
    with pytest.raises(RuntimeError):
        OF.multi_margin_loss(x, torch.tensor([0, 4, 1]))
    with pytest.raises(RuntimeError):
        OF.multilabel_margin_loss(x, torch.tensor([[0, 5, -1, 0]] * 3))
