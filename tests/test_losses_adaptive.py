"""AdaptiveLogSoftmaxWithLoss: torch's module has no module_db entry, so its behaviour (torch's test_nn checks) is
tested here, with parity against torch's module from the same seed (outputs, input and parameter gradients,
float64 and float32); the catalogue's cases (errors included) run in tests/test_parity.py."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.parity.tolerances import for_dtype


def _pair(*args, seed=0, **kw):
    torch.manual_seed(seed)
    ref = torch.nn.AdaptiveLogSoftmaxWithLoss(*args, **kw)
    torch.manual_seed(seed)
    ours = optimlab.nn.AdaptiveLogSoftmaxWithLoss(*args, **kw)
    return ours, ref


def test_same_parameters_names_and_init_from_the_same_seed():
    ours, ref = _pair(16, 30, [5, 12, 20], div_value=2.0, head_bias=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values(), strict=True))
    assert [type(m).__name__ for m in ours.tail[0]] == ["Linear", "Linear"]
    ours.reset_parameters()
    assert not torch.equal(ours.head.weight, ref.head.weight)
    ours.load_state_dict(ref.state_dict())  # torch's checkpoint loads
    assert torch.equal(ours.tail[2][1].weight, ref.tail[2][1].weight)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_log_prob_predict_match_torch(dtype):
    tol = {"rtol": for_dtype(dtype).rtol, "atol": for_dtype(dtype).atol}
    ours, ref = _pair(12, 25, [3, 9, 17], div_value=2.0, head_bias=True, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 12, generator=g, dtype=torch.float64).to(dtype) * 3
    t = torch.randint(0, 25, (40,), generator=g)
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_o, out_r = ours(xo, t), ref(xr, t)
    assert type(out_o).__name__ == "_ASMoutput" and out_o._fields == ("output", "loss")
    torch.testing.assert_close(out_o.output, out_r.output, **tol)
    torch.testing.assert_close(out_o.loss, out_r.loss, **tol)
    co = torch.randn(40, generator=g, dtype=torch.float64).to(dtype)
    s_o, s_r = (out_o.output * co).sum() + out_o.loss, (out_r.output * co).sum() + out_r.loss
    g_o = torch.autograd.grad(s_o, [xo, *ours.parameters()])
    g_r = torch.autograd.grad(s_r, [xr, *ref.parameters()])
    for a, b in zip(g_o, g_r, strict=True):
        torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(ours.log_prob(x), ref.log_prob(x), **tol)
    assert torch.equal(ours.predict(x), ref.predict(x))


def test_log_prob_is_a_distribution_and_agrees_with_forward_and_predict():
    ours, _ = _pair(8, 15, [4, 9])
    x = torch.randn(50, 8) * 4
    lp = ours.log_prob(x)
    assert lp.shape == (50, 15)
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(50))
    t = torch.randint(0, 15, (50,))
    torch.testing.assert_close(ours(x, t).output, lp.gather(1, t.unsqueeze(1)).squeeze(1))
    assert torch.equal(ours.predict(x), lp.argmax(1))
    # every prediction in the shortlist (the early return) and none in it
    with torch.no_grad():
        ours.head.weight.zero_()
        ours.head.weight[0, 0] = 1e3
    xs = torch.rand(6, 8) + 0.1
    assert torch.equal(ours.predict(xs), torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("bad", [[], [5, 3], [0, 4], [4, 15], [4, 4], [2.5]])
def test_bad_cutoffs_raise_value_error(bad):
    with pytest.raises(ValueError):
        torch.nn.AdaptiveLogSoftmaxWithLoss(8, 15, bad)
    with pytest.raises(ValueError):
        optimlab.nn.AdaptiveLogSoftmaxWithLoss(8, 15, bad)


def test_bad_targets_raise_like_torch():
    ours, ref = _pair(8, 15, [4, 9])
    x = torch.randn(5, 8)
    for t in (torch.tensor([0, 1, 15, 2, 3]), torch.tensor([0, -1, 2, 2, 3]), torch.zeros(5, 2, dtype=torch.long),
              torch.zeros(4, dtype=torch.long)):
        with pytest.raises(RuntimeError) as e_r:
            ref(x, t)
        with pytest.raises(RuntimeError) as e_o:
            ours(x, t)
        assert str(e_o.value) == str(e_r.value)


def test_compiled_fullgraph_matches_eager():
    """torch's module cannot compile with fullgraph (its row selection is data-dependent); ours runs each tail on
    every row under torch.compile and keeps the cluster's rows with ``where``."""
    ours, _ = _pair(8, 15, [4, 9])
    x = torch.randn(10, 8, requires_grad=True)
    t = torch.randint(0, 15, (10,))
    torch._dynamo.reset()
    got = torch.compile(lambda x, t: ours(x, t).loss, fullgraph=True)(x, t)
    want = ours(x, t).loss
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_autocast_dtypes_like_torch(input_dtype):
    """Under bfloat16 autocast, as torch's: results in the input's dtype (forward with shortlist targets,
    log_prob, predict), values at bfloat16's tolerance; float32 input with a tail target raises torch's
    RuntimeError (its index_copy_ of bfloat16 into float32), bfloat16 input returns."""
    ours, ref = _pair(16, 20, [4, 10])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 16, generator=g).to(input_dtype)
    short, mixed = torch.tensor([0, 3, 1, 2, 0, 1, 3]), torch.tensor([0, 5, 12, 3, 19, 1, 9])
    tol = for_dtype(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for o, r in ((ours(x, short).output, ref(x, short).output), (ours.log_prob(x), ref.log_prob(x)),
                     (ours.predict(x), ref.predict(x))):
            assert o.dtype == r.dtype
            torch.testing.assert_close(o, r, rtol=tol.rtol, atol=tol.atol)
        if input_dtype == torch.float32:
            with pytest.raises(RuntimeError):
                ref(x, mixed)
            with pytest.raises(RuntimeError):
                ours(x, mixed)
        else:
            torch.testing.assert_close(ours(x, mixed).output, ref(x, mixed).output, rtol=tol.rtol, atol=tol.atol)
