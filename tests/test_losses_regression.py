"""Regression losses (L1, MSE, Huber, SmoothL1): double backward, torch-like errors/warnings/attributes and
fuzzed parity beyond the catalogue's fixed cases (which tests/test_parity.py runs)."""

from __future__ import annotations

import warnings

import pytest
import torch
from _util import raised as _raised

import optimlab
from optimlab import catalog
from optimlab.parity import fuzz
from optimlab.parity.tolerances import TENSOR

OF, TF = optimlab.nn.functional, torch.nn.functional





def _xy(shape=(3, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True))


@pytest.mark.parametrize("fn,kw", [
    (OF.l1_loss, {}), (OF.l1_loss, {"weight": torch.rand(3, 4, dtype=torch.float64)}),
    (OF.mse_loss, {"reduction": "sum"}),
    (OF.huber_loss, {}), (OF.huber_loss, {"delta": 0.3, "reduction": "none"}),
    (OF.huber_loss, {"weight": torch.rand(3, 4, dtype=torch.float64)}),
    (OF.smooth_l1_loss, {"beta": 0.5}), (OF.smooth_l1_loss, {"beta": 0.0, "reduction": "sum"}),
], ids=["l1", "l1-weight", "mse", "huber", "huber-delta", "huber-weight", "smooth_l1", "smooth_l1-beta0"])
def test_gradgradcheck(fn, kw):
    x, y = _xy()
    assert torch.autograd.gradgradcheck(lambda a, b: fn(a, b, **kw), (x, y))


@pytest.mark.parametrize("beta", [0.25, 1.0, 4.0])
def test_smooth_l1_is_huber_over_beta(beta):
    x, y = _xy(seed=1)
    x, y = x.detach() * 3, y.detach()
    torch.testing.assert_close(OF.smooth_l1_loss(x, y, beta=beta, reduction="none"),
                               OF.huber_loss(x, y, delta=beta, reduction="none") / beta)


def test_smooth_l1_beta0_is_l1_including_gradient():
    x, y = _xy(seed=2)
    a = OF.smooth_l1_loss(x, y, beta=0.0)
    b = OF.l1_loss(x, y)
    assert torch.equal(a, b)
    assert torch.equal(torch.autograd.grad(a, x)[0], torch.autograd.grad(b, x)[0])


@pytest.mark.parametrize("call", [
    lambda F, x, y: F.huber_loss(x, y, delta=0.0),
    lambda F, x, y: F.smooth_l1_loss(x, y, beta=-1.0),
    lambda F, x, y: F.l1_loss(x, y[:, :3]),
    lambda F, x, y: F.l1_loss(x, y, weight=torch.ones(4)),
    lambda F, x, y: F.huber_loss(x, y, weight=torch.ones(3, 1)),
    lambda F, x, y: F.smooth_l1_loss(x, y, reduction="avg"),
], ids=["huber-delta0", "smoothl1-negative-beta", "shape", "l1-weight-size", "huber-weight-size", "bad-reduction"])
def test_errors_like_torch(call):
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    exc_t, _ = _raised(lambda: call(TF, x, y))
    exc_o, msg_o = _raised(lambda: call(OF, x, y))
    assert exc_t is not None and exc_o is exc_t
    assert msg_o  # a message, not a bare exception


def test_huber_delta_type_error():
    with pytest.raises(TypeError, match="delta must be a float or int"):
        optimlab.nn.HuberLoss(delta="1")


@pytest.mark.parametrize("name,kw", [("L1Loss", {"size_average": False}), ("SmoothL1Loss", {"reduce": False})])
def test_legacy_arguments_warn_and_set_reduction(name, kw):
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        ours = getattr(optimlab.nn, name)(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(torch.nn, name)(**kw)
    assert ours.reduction == ref.reduction


@pytest.mark.parametrize("name,kw", [("HuberLoss", {"delta": 0.5}), ("SmoothL1Loss", {"beta": 2.0}), ("L1Loss", {})])
def test_module_attributes_match_torch(name, kw):
    ours, ref = getattr(optimlab.nn, name)(**kw), getattr(torch.nn, name)(**kw)
    for attr in ("reduction", "delta", "beta"):
        assert getattr(ours, attr, None) == getattr(ref, attr, None)
    assert ours.state_dict().keys() == ref.state_dict().keys()


def test_inputs_not_modified():
    x, y = _xy()
    x0, y0 = x.detach().clone(), y.detach().clone()
    for fn in (OF.l1_loss, OF.huber_loss, OF.smooth_l1_loss):
        fn(x, y).backward()
    assert torch.equal(x.detach(), x0) and torch.equal(y.detach(), y0)


@pytest.mark.parametrize("name", ["L1Loss", "HuberLoss", "SmoothL1Loss"])
def test_fuzz(name):
    rep = fuzz.fuzz(catalog.get("losses", name), examples=6)
    assert rep.passed, rep.reproducer()


def test_huber_mixed_dtype_gradient():
    """torch's huber backward raises on a float64 target with a float32 input; ours returns the gradient of the
    float32 result, which must equal the float64 computation's up to float32 rounding."""
    x, y = _xy(seed=3)
    x32 = x.detach().float().requires_grad_()
    out = OF.huber_loss(x32, y.detach(), delta=0.7)
    assert out.dtype == torch.float32
    (g32,) = torch.autograd.grad(out, x32)
    ref = x32.detach().double().requires_grad_()
    (g64,) = torch.autograd.grad(TF.huber_loss(ref, y.detach(), delta=0.7), ref)
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32, g64.float())


@pytest.mark.parametrize("fn", [OF.mse_loss, OF.huber_loss, OF.smooth_l1_loss])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_custom_backward_repeatable_and_matches_torch(fn, reduction):
    """The fused Function's backward can run twice (retain_graph) and gives torch's gradients for both inputs."""
    x, y = _xy((5, 3), seed=4)
    x, y = (x * 2).detach().requires_grad_(), y.detach().requires_grad_()
    out = fn(x, y, reduction=reduction)
    go = torch.ones_like(out)
    first = torch.autograd.grad(out, (x, y), go, retain_graph=True)
    second = torch.autograd.grad(out, (x, y), go)
    ref = torch.autograd.grad(getattr(TF, fn.__name__)(x, y, reduction=reduction), (x, y), go)
    for a, b, r in zip(first, second, ref, strict=True):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("name,kw", [("mse_loss", {}), ("huber_loss", {"delta": 0.7}),
                                     ("smooth_l1_loss", {"beta": 0.5})])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("layout", ["contiguous", "broadcast", "transposed"])
def test_clamped_quadratic_many_pieces(name, kw, reduction, layout):
    """Inputs larger than one forward piece (2^19 elements), contiguous or not, match torch."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1200, 1000, generator=g, requires_grad=True)
    y = torch.randn(1200, 1000, generator=g)
    if layout == "broadcast":
        y = y[:1].expand(1200, 1000)
    elif layout == "transposed":
        y = y.t().contiguous().t()
    tol = TENSOR[torch.float32]
    ours = getattr(OF, name)(x, y, reduction=reduction, **kw)
    ref = getattr(TF, name)(x, y, reduction=reduction, **kw)
    torch.testing.assert_close(ours, ref, rtol=tol.rtol, atol=tol.atol)
    go = torch.randn(ref.shape, generator=g)
    (g_o,) = torch.autograd.grad(ours, x, go)
    (g_r,) = torch.autograd.grad(ref, x, go)
    torch.testing.assert_close(g_o, g_r, rtol=tol.rtol, atol=tol.atol)


@pytest.mark.parametrize("name", ["mse_loss", "huber_loss", "smooth_l1_loss"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_clamped_quadratic_holds_nothing_and_backward_repeats(name: str, reduction: str) -> None:
    """The gradient is recomputed from the inputs (as torch's kernels do): no input-sized tensor is held for
    backward, and a retained graph gives the same gradient twice. Pieces span several scratch buffers' worth."""
    from optimlab.parity.memory import saved_bytes

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1 << 19, generator=g, requires_grad=True)
    y = torch.randn(3, 1 << 19, generator=g)
    ours = getattr(OF, name)
    assert saved_bytes(lambda a, b: ours(a, b, reduction=reduction), x, y) == 0
    out = ours(x, y, reduction=reduction)
    go = torch.ones_like(out)
    (first,) = torch.autograd.grad(out, x, go, retain_graph=True)
    (second,) = torch.autograd.grad(out, x, go)
    assert torch.equal(first, second)
    (ref,) = torch.autograd.grad(getattr(TF, name)(x, y, reduction=reduction), x, go)
    torch.testing.assert_close(first, ref)


def test_work_buffer_survives_inference_mode() -> None:
    """Inference mode and a recorded call (which uses the per-thread work buffer) agree, in either order."""
    from optimlab.nn.functional import regression

    regression._SCRATCH.__dict__.pop("buffers", None)  # the first buffer is made inside inference mode
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 1 << 18, generator=g, dtype=torch.float64), torch.randn(2, 1 << 18, generator=g,
                                                                                  dtype=torch.float64)
    with torch.inference_mode():
        first = OF.huber_loss(x, y)
    xr = x.clone().requires_grad_()
    second = OF.huber_loss(xr, y)
    second.backward()
    with torch.inference_mode():
        third = OF.huber_loss(x, y)
    # inference composes the primitives, the recorded call runs in pieces (issue 26): equal up to the sums' order
    assert first.item() == third.item()
    torch.testing.assert_close(first, second, rtol=1e-12, atol=0)
    torch.testing.assert_close(second, TF.huber_loss(x, y))


def test_traceable_dtype_rules_equal_torchs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_reduction.result_type``/``can_cast`` (used while Dynamo traces, which cannot trace torch's) give torch's
    answers for every pair of dtypes, 0-d and dimensioned."""
    from optimlab.nn import _reduction as R

    dtypes = [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16, torch.bfloat16,
              torch.float32, torch.float64, torch.complex64]
    expected = {}
    for a in dtypes:
        for b in dtypes:
            for da, db in ((1, 1), (0, 1), (1, 0), (0, 0)):
                x, y = torch.zeros((2,) * da, dtype=a), torch.zeros((2,) * db, dtype=b)
                expected[a, b, da, db] = (torch.result_type(x, y), torch.can_cast(a, b))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    for (a, b, da, db), (rt, cc) in expected.items():
        x, y = torch.zeros((2,) * da, dtype=a), torch.zeros((2,) * db, dtype=b)
        assert R.result_type(x, y) == rt, (a, b, da, db)
        assert R.can_cast(a, b) == cc, (a, b)


# ---------------------------------------------------------------------------------------------- memory for backward
@pytest.mark.parametrize(("name", "kept"), [("mse_loss", 1), ("huber_loss", 1), ("smooth_l1_loss", 1)])
def test_quadratic_losses_keep_a_bounded_difference(name: str, kept: int) -> None:
    """Small recorded inputs keep ``kept`` input-sized tensor (MSE's composition: the difference; Huber / smooth L1
    through ``_SmallQuadratic``: the gradient's slope ``a·c``), where torch's kernel keeps only the inputs: bounded
    by ``_SMALL`` elements.
    Larger inputs go through the Function that recomputes, which keeps nothing but the inputs."""
    from optimlab.nn.functional import regression
    from optimlab.parity.memory import saved_bytes

    fn = getattr(optimlab.nn.functional, name)
    y_small, y_large = torch.randn(320), torch.randn(regression._SMALL + 1)
    small = saved_bytes(fn, torch.randn(320, requires_grad=True), y_small)
    assert small == kept * 320 * 4, small
    assert saved_bytes(fn, torch.randn(regression._SMALL + 1, requires_grad=True), y_large) == 0
