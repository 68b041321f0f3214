"""torch 2.14's optimizer API, offered on every torch optimlab accepts: ``LBFGS(maximize=)``, LBFGS's step on an
empty parameter group, Muon's ``adjust_lr_fn="spectral_unclamped"``.

Where the installed torch has them, the catalogue's cases (``since="2.14"``) compare them with torch bit for bit;
on torch 2.13 those cases are reported skipped, and the tests here check the options against their definitions
instead (maximizing f is minimizing -f; "spectral_unclamped" is "original" without its clamp), which hold on both.
"""

from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch

from optimlab import catalog, optim, parity
from optimlab.cli import main
from optimlab.parity.optim import batch, compare_optimizers, loss_of, make_model

HAS_214 = catalog.torch_has("2.14")
NEW_CASES = [(comp, case) for comp in catalog.components("optim") for case in comp.cases if case.since == "2.14"]


def test_catalogue_has_the_new_options():
    names = {(comp.name, case.name) for comp, case in NEW_CASES}
    assert {("LBFGS", "maximize"), ("LBFGS", "maximize-strong_wolfe"),
            ("Muon", "adjust-spectral_unclamped")} <= names


@pytest.mark.parametrize("comp,case", [(c, k) for c, k in NEW_CASES if not k.kwargs.get("fused")],
                         ids=[f"{c.name}:{k.name}" for c, k in NEW_CASES if not k.kwargs.get("fused")])
def test_new_cases_compared_where_torch_has_them(comp, case):
    """torch 2.14: bit for bit with torch over 50 steps. torch 2.13: skipped, and the report says why."""
    res = parity.run_case(comp, case, torch.float64)
    assert res.skipped is (not HAS_214)
    if res.skipped:
        assert "needs torch>=2.14" in res.message and torch.__version__ in res.message
    else:
        assert res.passed and res.bitwise, res.message


@pytest.mark.parametrize("version,has", [("2.13.0+cpu", False), ("2.14.1+cu130", True), ("2.14.0", True),
                                         ("2.15.0a0+git1234", True), ("2.9.1", False), ("3.0.0", True)])
def test_torch_has(monkeypatch, version, has):
    monkeypatch.setattr(torch, "__version__", version)
    assert catalog.torch_has("2.14") is has
    assert catalog.unmet(catalog.Case("x", since="2.14")) == (
        None if has else f"needs torch>=2.14 (the API it exercises is new there); installed: torch {version}")


def test_fuzzers_draw_the_new_options_only_where_torch_has_them():
    assert ("maximize" in catalog.get("optim", "LBFGS").fuzz) is HAS_214
    assert ("spectral_unclamped" in catalog.get("optim", "Muon").fuzz["adjust_lr_fn"].options) is HAS_214


def test_parity_command_reports_skips(capsys):
    assert main(["parity", "--only", "LBFGS", "--steps", "2", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    if HAS_214:
        assert "skipped" not in out and "SKIP" not in out
    else:
        assert "SKIP LBFGS[maximize] float64: needs torch>=2.14" in out
        assert ", 3 skipped (1 components)" in out


# --- LBFGS(maximize=) -------------------------------------------------------------------------------------------

def test_lbfgs_maximize_signature_and_group():
    param = inspect.signature(optim.LBFGS).parameters["maximize"]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is False
    opt = optim.LBFGS([torch.zeros(2, requires_grad=True)], maximize=True)
    assert opt.param_groups[0]["maximize"] is True
    assert optim.LBFGS([torch.zeros(2, requires_grad=True)]).param_groups[0]["maximize"] is False
    with pytest.raises(TypeError):
        optim.LBFGS([torch.zeros(2, requires_grad=True)], 1, 20, None, 1e-7, 1e-9, 100, None, True)


class _NoNegationInLineSearch(optim.LBFGS):
    """A planted bug: the line search's evaluations forget to negate the loss when maximizing."""

    def _evaluate_at(self, closure, x0, t, d):  # type: ignore[no-untyped-def]
        loss, grad = super()._evaluate_at(closure, x0, t, d)
        return (-loss if self._maximize() else loss), grad


def _run_lbfgs(cls: type, kw: dict, sign: float, steps: int = 12) -> tuple[torch.optim.Optimizer, torch.nn.Module,
                                                                           list[float]]:
    model = make_model("bounded", torch.float64, "cpu")
    opt = cls(model.parameters(), **kw)
    losses = []
    for step in range(1, steps + 1):
        x, y = batch("mlp", step, torch.float64, "cpu")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = sign * loss_of(model, x, y)
            loss.backward()
            return loss

        losses.append(float(opt.step(closure).detach()))
    return opt, model, losses


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_maximize_is_minimizing_the_negated_loss(line_search_fn):
    """maximize=True on f takes bit for bit the steps maximize=False takes on -f (negation is exact); the
    step returns the closure's own loss, and a line search that forgets the sign is caught."""
    kw = {"lr": 0.1 if line_search_fn is None else 1, "max_iter": 4, "history_size": 5,
          "line_search_fn": line_search_fn}
    up, m_up, l_up = _run_lbfgs(optim.LBFGS, {**kw, "maximize": True}, 1.0)
    down, m_down, l_down = _run_lbfgs(optim.LBFGS, kw, -1.0)
    for a, b in zip(m_up.parameters(), m_down.parameters(), strict=True):
        assert torch.equal(a, b)
    st_up, st_down = up.state_dict()["state"][0], down.state_dict()["state"][0]
    assert st_up.keys() == st_down.keys()
    for key in ("d", "t", "H_diag", "prev_flat_grad", "prev_loss", "func_evals", "n_iter"):
        a, b = st_up[key], st_down[key]
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, key
    assert l_up == [-v for v in l_down]
    assert l_up[-1] > l_up[0]  # it climbs (bounded model: the loss stays finite)
    if line_search_fn is not None:
        _, m_bug, _ = _run_lbfgs(_NoNegationInLineSearch, {**kw, "maximize": True}, 1.0)
        assert not all(torch.equal(a, b) for a, b in zip(m_bug.parameters(), m_up.parameters(), strict=True))


def _closure(opt, model, x, y):
    """LBFGS's closure: the loss of ``model`` on (x, y), with fresh gradients."""

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_of(model, x, y)
        loss.backward()
        return loss

    return closure


@pytest.mark.skipif(not HAS_214, reason="torch < 2.14 has no LBFGS(maximize=) to compare with; the negated-loss "
                    "test above checks the definition on every torch")
def test_lbfgs_maximize_checkpoint_interchange():
    """A maximizing LBFGS checkpoint moves between torch and optimlab; a group without "maximize" (saved by
    torch < 2.14) loads as maximize=False."""
    kw = {"lr": 0.1, "max_iter": 3, "history_size": 3, "maximize": True}
    src = make_model("bounded", torch.float64, "cpu")
    ref = torch.optim.LBFGS(src.parameters(), **kw)
    ref.step(_closure(ref, src, *batch("mlp", 1, torch.float64, "cpu")))
    m_o, m_r = copy.deepcopy(src), copy.deepcopy(src)
    ours = optim.LBFGS(m_o.parameters(), max_iter=3, history_size=3)
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))
    ref2 = torch.optim.LBFGS(m_r.parameters(), max_iter=3, history_size=3)
    ref2.load_state_dict(copy.deepcopy(ref.state_dict()))
    assert ours.param_groups[0]["maximize"] is True
    for step in range(2, 6):
        x, y = batch("mlp", step, torch.float64, "cpu")
        for opt, model in ((ours, m_o), (ref2, m_r)):
            opt.step(_closure(opt, model, x, y))
        assert compare_optimizers(ours, ref2, m_o, m_r, bitwise=True).ok


def test_lbfgs_group_without_maximize_key_minimizes():
    """A checkpoint from torch < 2.14 (or an older optimlab) has no "maximize" in its group."""
    model = make_model("bounded", torch.float64, "cpu")
    opt = optim.LBFGS(model.parameters(), lr=0.1, max_iter=3, maximize=True)
    del opt.param_groups[0]["maximize"]
    closure = _closure(opt, model, *batch("mlp", 1, torch.float64, "cpu"))
    first = float(opt.step(closure))
    assert float(closure()) < first


def test_lbfgs_empty_group_returns_the_closure_loss():
    """torch 2.14: nothing to optimize, the step only evaluates the closure (torch 2.13 raised IndexError)."""
    calls = []

    def closure() -> torch.Tensor:
        calls.append(torch.is_grad_enabled())
        return torch.tensor(3.0)

    ours = optim.LBFGS([{"params": []}])
    assert float(ours.step(closure)) == 3.0 and calls == [True]
    if HAS_214:
        assert float(torch.optim.LBFGS([{"params": []}]).step(closure)) == 3.0


# --- Muon(adjust_lr_fn="spectral_unclamped") --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(16, 8), (4, 16), (8, 8), (3, 5, 2)])
def test_spectral_unclamped_ratio(shape):
    from optimlab.optim.muon import lr_ratio

    a, b = shape[:2]
    assert lr_ratio("spectral_unclamped", torch.Size(shape)) == math.sqrt(a / b)
    assert lr_ratio("original", torch.Size(shape)) == math.sqrt(max(1, a / b))


def _muon_first_step(adjust_lr_fn: str, weight_decay: float = 0.0) -> tuple[torch.nn.Module, torch.nn.Module]:
    model = make_model("matrix", torch.float64, "cpu")
    before = copy.deepcopy(model)
    opt = optim.Muon(model.parameters(), lr=0.02, weight_decay=weight_decay, adjust_lr_fn=adjust_lr_fn)
    x, y = batch("matrix", 1, torch.float64, "cpu")
    loss_of(model, x, y).backward()
    opt.step()
    return before, model


def test_spectral_unclamped_is_original_without_the_clamp():
    """Tall matrices (A ≥ B) step exactly as "original"; wide ones (A < B) by √(A/B) of its step."""
    start, orig = _muon_first_step("original")
    _, spec = _muon_first_step("spectral_unclamped")
    wide = 0
    for p0, po, ps in zip(start.parameters(), orig.parameters(), spec.parameters(), strict=True):
        if p0.grad is None and po.grad is None:
            continue
        a, b = p0.shape
        if a >= b:
            assert torch.equal(po, ps)
        else:
            wide += 1
            torch.testing.assert_close(ps - p0, (po - p0) * math.sqrt(a / b), rtol=1e-12, atol=0)
            assert not torch.allclose(ps, po)
    assert wide  # the matrix model has a wide weight (4×16)


def test_spectral_unclamped_accepted_and_others_rejected():
    p = [torch.zeros(4, 16, requires_grad=True)]
    assert optim.Muon(p, adjust_lr_fn="spectral_unclamped").param_groups[0]["adjust_lr_fn"] == "spectral_unclamped"
    with pytest.raises(ValueError, match="Adjust learning rate function spectral is not supported"):
        optim.Muon(p, adjust_lr_fn="spectral")
