"""optimlab.optim's base class and elementwise optimizers: API surface, bookkeeping and flags
that the lockstep parity catalogue does not reach (signatures, hooks, low precision, GradScaler)."""

from __future__ import annotations

import inspect

import pytest
import torch

import optimlab.optim as oo
from optimlab import parity
from optimlab.catalog import Case, get
from optimlab.optim._many import Many, each, maximum_
from optimlab.parity.optim import batch, loss_of, make_model

NAMES = ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adagrad", "Adadelta", "RMSprop", "Rprop", "ASGD"]
FUSED = ["SGD", "Adam", "AdamW", "Adagrad"]


def _pair(name: str, **kw):
    m_o, m_r = make_model("mlp", torch.float64, "cpu"), make_model("mlp", torch.float64, "cpu")
    return (getattr(oo, name)(m_o.parameters(), **kw), m_o), (getattr(torch.optim, name)(m_r.parameters(), **kw), m_r)


def _train(opt, model, steps: int, start: int = 1, closure: bool = False):
    losses = []
    for step in range(start, start + steps):
        x, y = batch("mlp", step, torch.float64, "cpu")

        def fn():
            opt.zero_grad()
            loss = loss_of(model, x, y)
            loss.backward()
            return loss

        if closure:
            losses.append(opt.step(fn))
        else:
            fn()
            opt.step()
    return losses


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_defaults_match_torch(name):
    ours, ref = getattr(oo, name), getattr(torch.optim, name)
    assert issubclass(ours, torch.optim.Optimizer) and issubclass(ours, oo.Optimizer)
    s_o, s_r = inspect.signature(ours.__init__), inspect.signature(ref.__init__)
    params_o = [(p.name, p.kind, p.default) for p in s_o.parameters.values()]
    if [p[0] for p in params_o[-2:]] == ["state_dtype", "param_rounding"]:  # issue 27's keyword-only options
        assert all(p[1:] == (inspect.Parameter.KEYWORD_ONLY, None) for p in params_o[-2:])
        params_o = params_o[:-2]
    if "fused" not in s_r.parameters:  # optimlab's one extension: a trailing keyword-only fused=None
        assert params_o[-1] == ("fused", inspect.Parameter.KEYWORD_ONLY, None)
        params_o = params_o[:-1]
    assert params_o == [(p.name, p.kind, p.default) for p in s_r.parameters.values()]
    (o, _), (r, _) = _pair(name)
    assert o.defaults == r.defaults
    assert o.param_groups[0].keys() == r.param_groups[0].keys()


@pytest.mark.parametrize("name", NAMES)
def test_closure_loss_returned_and_grads_skipped(name):
    (o, m_o), (r, m_r) = _pair(name)
    losses_o = _train(o, m_o, 3, closure=True)
    losses_r = _train(r, m_r, 3, closure=True)
    assert all(isinstance(lo, torch.Tensor) for lo in losses_o)
    assert [x.item() for x in losses_o] == [x.item() for x in losses_r]
    unused_o, unused_r = m_o.unused, m_r.unused  # never receives a gradient
    assert torch.equal(unused_o, unused_r)
    assert (unused_o in o.state) == (unused_r in r.state)  # Adagrad creates state up front, like torch
    assert o.state_dict()["state"].keys() == r.state_dict()["state"].keys()


@pytest.mark.parametrize("name", ["Adam", "SGD", "RMSprop"])
@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(name, set_to_none):
    (o, m), _ = _pair(name, foreach=True)
    _train(o, m, 1)
    o.zero_grad(set_to_none=set_to_none)
    for p in m.parameters():
        if p is m.unused:
            continue
        assert (p.grad is None) if set_to_none else bool((p.grad == 0).all())


def test_hooks_and_named_parameters():
    calls = []
    m_o, m_r = make_model("mlp", torch.float64, "cpu"), make_model("mlp", torch.float64, "cpu")
    o, r = oo.Adam(m_o.named_parameters(), lr=0.01), torch.optim.Adam(m_r.named_parameters(), lr=0.01)
    o.register_step_pre_hook(lambda opt, a, k: calls.append("pre"))
    o.register_step_post_hook(lambda opt, a, k: calls.append("post"))
    o.register_state_dict_post_hook(lambda opt, sd: calls.append("sd") or sd)
    _train(o, m_o, 2)
    _train(r, m_r, 2)
    sd_o, sd_r = o.state_dict(), r.state_dict()
    assert calls == ["pre", "post", "pre", "post", "sd"]
    assert sd_o["param_groups"][0]["param_names"] == sd_r["param_groups"][0]["param_names"]
    o.add_param_group({"params": [("extra", torch.nn.Parameter(torch.zeros(2, dtype=torch.float64)))], "lr": 0.5})
    assert o.param_groups[1]["betas"] == o.defaults["betas"] and o.param_groups[1]["lr"] == 0.5


def test_adding_a_group_mid_training_keeps_lockstep():
    """A parameter added later has its own step count: bucketing by step keeps foreach == torch."""
    for foreach in (False, True):
        (o, m_o), (r, m_r) = _pair("Adam", lr=0.01, foreach=foreach)
        _train(o, m_o, 3)
        _train(r, m_r, 3)
        extra_o = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        extra_r = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        o.add_param_group({"params": [extra_o]})
        r.add_param_group({"params": [extra_r]})
        for step in range(4):
            for p in (extra_o, extra_r):
                p.grad = torch.full_like(p, 0.5 + step)
            _train(o, m_o, 1, start=4 + step)
            _train(r, m_r, 1, start=4 + step)
        assert torch.equal(extra_o, extra_r)
        for p_o, p_r in zip(m_o.parameters(), m_r.parameters(), strict=True):
            assert torch.equal(p_o, p_r)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("foreach", [False, True])
def test_low_precision_params(name, dtype, foreach):
    """bf16/fp16 parameters (and state) follow torch's in lockstep under the low-precision tolerance."""
    if name == "RAdam" and foreach and dtype == torch.float16:
        pytest.skip("torch's foreach RAdam divides (√v + ε) by a zero step size on unrectified steps; in "
                    "float16 ε=1e-8 underflows, so where v underflows too it makes 0/0 = NaN that the "
                    "documented algorithm (torch's for-loop, and ours on both paths) never computes")
    comp = get("optim", name)
    case = next(c for c in comp.cases if c.name == f"plain/foreach={foreach}")
    res = parity.run_case(comp, case, dtype, "cpu", steps=10)
    assert res.passed, res.message


@pytest.mark.parametrize("name", NAMES)
def test_foreach_default_and_flag_errors(name):
    """foreach=None picks the per-tensor path on CPU (torch's default); foreach with
    differentiable is refused like torch's multi-tensor path."""
    (o, _), _ = _pair(name)
    assert not o._use_foreach(o.param_groups[0], o.param_groups[0]["params"])
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    q = p.clone()
    opt = getattr(oo, name)([q], foreach=True, differentiable=True)
    q.grad = torch.ones(3, dtype=torch.float64)
    ref = getattr(torch.optim, name)([p.clone()], foreach=True, differentiable=True)
    ref.param_groups[0]["params"][0].grad = torch.ones(3, dtype=torch.float64)
    try:
        ref.step()
    except Exception as e_r:  # noqa: BLE001 - the type is the contract
        with pytest.raises(type(e_r)):
            opt.step()
    else:  # torch's SGD runs its foreach path under autograd
        opt.step()
        assert torch.equal(q, ref.param_groups[0]["params"][0])


@pytest.mark.parametrize("name", FUSED)
def test_fused_honours_grad_scaler_contract(name):
    """GradScaler hands fused optimizers ``grad_scale`` (grads are scaled) and ``found_inf`` (skip)."""
    (o, m_o), (r, m_r) = _pair(name, lr=0.01, fused=True)
    assert o._step_supports_amp_scaling and r._step_supports_amp_scaling
    for opt, model in ((o, m_o), (r, m_r)):
        x, y = batch("mlp", 1, torch.float64, "cpu")
        (loss_of(model, x, y) * 8.0).backward()
        opt.grad_scale = torch.tensor(8.0)
        opt.found_inf = torch.tensor(0.0)
        opt.step()
        before = [p.detach().clone() for p in model.parameters()]
        opt.found_inf = torch.tensor(1.0)
        opt.step()
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    tol = parity.tolerances.for_dtype(torch.float64)
    for p_o, p_r in zip(m_o.parameters(), m_r.parameters(), strict=True):
        torch.testing.assert_close(p_o, p_r, rtol=tol.rtol, atol=tol.atol)
    for s_o, s_r in zip(o.state_dict()["state"].values(), r.state_dict()["state"].values(), strict=True):
        if "step" in s_r:
            assert float(s_o["step"]) == float(s_r["step"]) and s_o["step"].dtype == s_r["step"].dtype


def test_fused_rejects_what_torch_rejects():
    for name in FUSED:
        p = torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))
        q = torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))
        p.grad, q.grad = torch.ones_like(p), torch.ones_like(q)
        with pytest.raises(RuntimeError):
            getattr(torch.optim, name)([q], fused=True).step()
        with pytest.raises(RuntimeError):
            getattr(oo, name)([p], fused=True).step()


def test_step_counter_like_torch():
    (o, m_o), (r, m_r) = _pair("Adam", lr=0.01)
    _train(o, m_o, 2)
    _train(r, m_r, 2)
    s_o, s_r = o.state[m_o[0].weight]["step"], r.state[m_r[0].weight]["step"]
    assert s_o.dtype == s_r.dtype and s_o.device == s_r.device and float(s_o) == float(s_r) == 2.0


def test_lr_tensor_requires_one_element():
    with pytest.raises(ValueError):
        torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=torch.tensor([0.1, 0.2]))
    for name in NAMES:
        with pytest.raises(ValueError, match="1-element"):
            getattr(oo, name)([torch.zeros(2, requires_grad=True)], lr=torch.tensor([0.1, 0.2]))


def test_many_matches_per_tensor_ops():
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(5, generator=g, dtype=torch.float64) for _ in range(3)]
    ys = [torch.rand(5, generator=g, dtype=torch.float64) + 0.5 for _ in range(3)]
    a, b = Many([x.clone() for x in xs]), Many(ys)
    a.mul_(0.9).addcdiv_(b, b.sqrt(), value=-0.1)
    maximum_(a, b)
    c = 1 - 0.9 ** b
    d = each(torch.where, Many([y.gt(1) for y in ys]), a, 2.0)
    for x, y, got_a, got_c, got_d in zip(xs, ys, a, c, d, strict=True):
        want = x.clone().mul_(0.9).addcdiv_(y, y.sqrt(), value=-0.1)
        want = torch.maximum(want, y)
        assert torch.equal(got_a, want)
        assert torch.equal(got_c, 1 - 0.9**y)
        assert torch.equal(got_d, torch.where(y.gt(1), want, 2.0))


def test_tensor_betas_accepted_like_torch():
    case = Case("betas-tensor", {"lr": 0.01, "betas": (torch.tensor(0.8), torch.tensor(0.99))}, dtypes=(torch.float64,))
    res = parity.run_case(get("optim", "Adam"), case, torch.float64, "cpu", steps=10)
    assert res.passed, res.message
