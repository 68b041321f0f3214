"""``differentiable=True``: gradients flow through ``step()`` exactly as through torch's, checked
numerically with :func:`torch.autograd.gradcheck` (as torch's own test_optim does)."""

from __future__ import annotations

import pytest
import torch

import optimlab.optim as oo

CONFIGS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "maximize": True}),
    ("Adam", {"lr": 0.1, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("AdamW", {"lr": 0.1}),
    ("Adamax", {"lr": 0.1, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.1, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.1, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1}),
    ("Adadelta", {"lr": 0.5, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.1, "centered": True, "momentum": 0.9, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.1, "maximize": True}),
    ("Rprop", {"lr": 0.1}),
    ("ASGD", {"lr": 0.1, "t0": 1.0, "weight_decay": 0.1}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CONFIGS]


def _inputs(name: str, kwargs: dict, steps: int = 3):
    """A parameter, a gradient and optimizer state (float64, 10 elements); scalar state (step, eta, …)
    comes from a few warm-up steps."""
    g = torch.Generator().manual_seed(0)
    p = torch.rand(10, generator=g, dtype=torch.float64)
    warm = getattr(torch.optim, name)([p], **kwargs)
    for _ in range(steps):
        p.grad = torch.rand(10, generator=g, dtype=torch.float64) - 0.5
        warm.step()
    state = warm.state[p]
    keys = sorted(k for k, v in state.items() if torch.is_tensor(v) and v.shape == p.shape)
    grad = torch.rand(10, generator=g, dtype=torch.float64) - 0.5
    fixed = {k: v.clone() for k, v in state.items() if k not in keys}
    # Random state (as torch's test does) rather than the warm-up's: no ties between max_exp_avg_sq
    # and exp_avg_sq (or |g| and exp_inf), where max() has no derivative and gradcheck would fail.
    values = [torch.rand(10, generator=g, dtype=torch.float64) + 0.1 for _ in keys]
    if "grad_avg" in keys:  # centered RMSprop needs square_avg > grad_avg² (else √ of a negative)
        values[keys.index("grad_avg")] *= 0.1
    return p.detach().clone(), grad, keys, values, fixed


def _step(cls, kwargs, keys, fixed):
    """(p, grad, *state) -> (p', *state'): one differentiable step of ``cls``."""
    def f(p, grad, *state):
        p = p.clone()
        p.grad = grad
        opt = cls([p], differentiable=True, **kwargs)
        opt.state[p].update({k: v.clone() for k, v in fixed.items()})
        opt.state[p].update({k: v.clone() for k, v in zip(keys, state, strict=True)})
        opt.step()
        return (p, *(opt.state[p][k] for k in keys))
    return f


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_gradients_through_step(name, kwargs):
    p, grad, keys, state, fixed = _inputs(name, kwargs)
    inputs = tuple(t.requires_grad_() for t in (p, grad, *state))
    ours = _step(getattr(oo, name), kwargs, keys, fixed)
    ref = _step(getattr(torch.optim, name), kwargs, keys, fixed)
    out_o, out_r = ours(*inputs), ref(*inputs)
    for a, b in zip(out_o, out_r, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # the same vector-Jacobian products as torch's differentiable step...
    w = [torch.linspace(-1, 1, o.numel(), dtype=torch.float64).reshape(o.shape) for o in out_r]
    g_o = torch.autograd.grad(out_o, inputs, w, allow_unused=True)
    if name == "ASGD":
        # torch's ASGD multiplies by its 0-d ``mu`` state tensor and then overwrites it in place,
        # so its own backward raises; ours reads μ as a number (the values above still match).
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            torch.autograd.grad(out_r, inputs, w, allow_unused=True)
        g_r = None
    else:
        g_r = torch.autograd.grad(out_r, inputs, w, allow_unused=True)
    for a, b in zip(g_o, g_r or g_o, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # ...and they are the true derivatives (finite differences)
    assert torch.autograd.gradcheck(ours, inputs, fast_mode=True)


@pytest.mark.parametrize("name", sorted({n for n, _ in CONFIGS}))
def test_hypergradient_through_tensor_lr(name):
    """With ``lr`` a tensor that requires grad, d(θ')/d(lr) reaches the learning rate where torch's
    does, and where torch's step cannot take such an lr, ours raises the same exception type."""
    results = []
    for ns in (oo, torch.optim):
        lr = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
        p = torch.linspace(-1, 1, 6, dtype=torch.float64, requires_grad=True).clone()
        p.grad = torch.linspace(0.5, -0.2, 6, dtype=torch.float64)
        try:
            opt = getattr(ns, name)([p], lr=lr, differentiable=True)
            opt.step()
            opt.step()
            (d_lr,) = torch.autograd.grad(p.sum(), lr)
            results.append(d_lr)
        except (TypeError, RuntimeError) as e:
            results.append(type(e))
    if isinstance(results[1], type):
        assert results[0] is results[1]
    else:
        assert isinstance(results[0], torch.Tensor) and results[0].abs() > 0
        torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=0)


# Hyperparameters as tensors that require grad (torch's test_optim "differentiable hyperparams" tests):
# (optimizer, constructor kwargs, the names of those made tensors requiring grad).
HYPER = [
    ("Adam", {}, ("lr",)),
    ("Adam", {}, ("weight_decay",)),
    ("Adam", {}, ("beta1", "beta2")),
    ("Adam", {}, ("lr", "weight_decay", "beta1", "beta2")),
    ("Adam", {"decoupled_weight_decay": True, "maximize": True}, ("lr", "weight_decay", "beta1", "beta2")),
    ("Adam", {"amsgrad": True}, ("lr", "beta1", "beta2")),  # torch's backward raises (in-place max): so must ours
    ("AdamW", {}, ("lr", "weight_decay", "beta1", "beta2")),
    ("SGD", {}, ("lr",)),
    ("SGD", {"momentum": 0.9}, ("weight_decay",)),
    ("SGD", {"momentum": 0.9, "nesterov": True}, ("lr", "weight_decay")),
    ("SGD", {"momentum": 0.9, "maximize": True}, ("lr", "weight_decay", "momentum")),  # torch raises: so must ours
]
VALUES = {"lr": 0.01, "weight_decay": 0.5, "beta1": 0.9, "beta2": 0.99, "momentum": 0.8}


def _meta_loss(cls, kwargs, names):
    """f(*hyper) = the loss after two differentiable steps (graphs kept through the gradients), as a
    function of the hyperparameters ``names``."""
    def f(*hyper):
        kw = dict(kwargs, differentiable=True, **dict(zip(names, hyper, strict=True)))
        if "beta1" in kw:
            kw["betas"] = (kw.pop("beta1"), kw.pop("beta2"))
        g = torch.Generator().manual_seed(3)
        p = torch.rand(10, generator=g, dtype=torch.float64).requires_grad_()
        x = torch.rand(10, generator=g, dtype=torch.float64)
        params = p.clone()
        opt = cls([params], **kw)
        if "momentum" in kw:  # as torch's test: a given buffer (torch detaches the one it seeds from g)
            opt.state[params]["momentum_buffer"] = torch.rand(10, generator=g, dtype=torch.float64)
        for _ in range(3):
            loss = ((x * params).sum() - 2.0) ** 2
            loss.backward(inputs=(params,), create_graph=True)
            opt.step()
            opt.zero_grad()
        return loss
    return f


@pytest.mark.parametrize("name,kwargs,names", HYPER, ids=[f"{n}-{'-'.join(h)}-{kw}" for n, kw, h in HYPER])
def test_gradients_wrt_tensor_hyperparameters(name, kwargs, names):
    """d(loss after 3 steps)/d(lr, β, λ, μ): the same as through torch's step, and the true derivative
    (gradcheck). Before, β2 and λ as tensors needing grad raised (addcmul_'s value/add's alpha)."""
    hyper = [torch.tensor(VALUES[n], dtype=torch.float64, requires_grad=True) for n in names]
    f_o, f_r = _meta_loss(getattr(oo, name), kwargs, names), _meta_loss(getattr(torch.optim, name), kwargs, names)
    try:
        g_r = torch.autograd.grad(f_r(*hyper), hyper)
    except RuntimeError as e:  # where torch's backward cannot go through its own in-place state updates
        with pytest.raises(type(e)):
            torch.autograd.grad(f_o(*hyper), hyper)
        return
    g_o = torch.autograd.grad(f_o(*hyper), hyper)
    for a, b in zip(g_o, g_r, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    assert any(a.abs() > 0 for a in g_o)
    assert torch.autograd.gradcheck(f_o, tuple(hyper))
