"""LinearCrossEntropyLoss / linear_cross_entropy: torch's module_db samples and error inputs (outputs, input and
parameter gradients, float64 and float32), chunking options, memory held for backward flat in N·C, double
backward, and torch.compile(fullgraph=True)."""

from __future__ import annotations

import os
import re
import warnings

import pytest
import torch
from _util import module_info

import optimlab
from optimlab.parity import compare
from optimlab.parity.memory import saved_bytes
from optimlab.parity.tolerances import for_dtype

OF = optimlab.nn.functional


def _module_db_info():
    return module_info(torch.nn.LinearCrossEntropyLoss)


# The whole module_db set is 857 samples per dtype (~110 s for both dtypes on 2 cores): CI runs a third per dtype,
# a different third for each, and OPTIMLAB_FULL_MODULE_DB=1 runs them all (done for the closing report).
_FULL = os.environ.get("OPTIMLAB_FULL_MODULE_DB") == "1"


def _float64_twin(ref, args, kw, x, t, go):
    """torch's float64 evaluation of a float32 sample (value, input and parameter gradients): accuracy's yardstick."""
    kw64 = dict(kw, dtype=torch.float64)
    if kw.get("weight") is not None:
        kw64["weight"] = kw["weight"].double()
    m = torch.nn.LinearCrossEntropyLoss(*args, **kw64)
    m.load_state_dict({k: v.double() for k, v in ref.state_dict().items()})
    x64 = x.detach().double().requires_grad_()
    t64 = t.double() if t.is_floating_point() else t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = m(x64, t64)
    return [out, *torch.autograd.grad(out, [x64, *m.parameters()], go.double())]


def _tol(dtype):
    t = for_dtype(dtype)
    return {"rtol": t.rtol, "atol": t.atol}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_module_db_samples(dtype):
    info = _module_db_info()
    torch.manual_seed(0)  # module_db draws its inputs from the global generator
    samples = info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True, training=True)
    offset = 0 if dtype == torch.float64 else 1
    checked = 0
    for k, s in enumerate(samples):
        if not _FULL and k % 3 != offset:
            continue
        args, kw = s.constructor_input.args, s.constructor_input.kwargs
        torch.manual_seed(k)
        ref = torch.nn.LinearCrossEntropyLoss(*args, **kw)
        torch.manual_seed(k)
        ours = optimlab.nn.LinearCrossEntropyLoss(*args, **kw)
        for (n_o, p_o), (n_r, p_r) in zip(ours.state_dict().items(), ref.state_dict().items(), strict=True):
            assert n_o == n_r and torch.equal(p_o, p_r)  # same parameter names, same init from the same seed
        x, t = s.forward_input.args
        xr, xo = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
        with warnings.catch_warnings(record=True) as w_r:
            warnings.simplefilter("always")
            lr = ref(xr, t)
        with warnings.catch_warnings(record=True) as w_o:
            warnings.simplefilter("always")
            lo = ours(xo, t)
        assert [w.category for w in w_o] == [w.category for w in w_r], k
        go = torch.randn(lr.shape, dtype=dtype, generator=torch.Generator().manual_seed(k))
        g_r = torch.autograd.grad(lr, [xr, *ref.parameters()], go)
        g_o = torch.autograd.grad(lo, [xo, *ours.parameters()], go)
        ref64 = _float64_twin(ref, args, kw, x, t, go) if dtype == torch.float32 else None
        for i, (a, b) in enumerate(zip([lo, *g_o], [lr, *g_r], strict=True)):
            if ref64 is None:
                torch.testing.assert_close(a, b, **_tol(dtype), msg=f"sample {k} [{i}]")
            else:  # the table, or torch's accuracy mode: error against float64 within 3x torch's own
                diff = compare.accuracy(a, b, ref64[i], f"sample {k} [{i}]")
                assert diff.ok, diff.what
        checked += 1
    assert checked >= len(samples) // 3


def test_module_db_error_inputs():
    info = _module_db_info()
    errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32, requires_grad=True,
                                           training=True)
    assert len(errors) >= 5
    for e in errors:
        mi = e.module_error_input
        c, f = mi.constructor_input, mi.forward_input
        with pytest.raises(e.error_type, match=e.error_regex):  # torch's type and message
            optimlab.nn.LinearCrossEntropyLoss(*c.args, **c.kwargs)(*f.args, **f.kwargs)


def _data(n, d, c, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=dtype), torch.randn(c, d, generator=g, dtype=dtype) * 0.3,
            torch.randint(0, c, (n,), generator=g), torch.randn(c, generator=g, dtype=dtype))


@pytest.mark.parametrize("opts", [dict(batch_chunk_size=3), dict(chunking_method="aspect_ratio:4"), dict()])
def test_chunking_options_change_nothing_but_the_chunks(opts):
    x, w, t, b = _data(37, 6, 50)
    kw = dict(linear_bias=b, ignore_index=4, reduction="sum")
    xs = [x.clone().requires_grad_() for _ in range(2)]
    one = OF.linear_cross_entropy(xs[0], w, t, **kw)
    many = OF.linear_cross_entropy(xs[1], w, t, options=optimlab.nn.LinearCrossEntropyOptions(**opts), **kw)
    torch.testing.assert_close(many, one)
    torch.testing.assert_close(torch.autograd.grad(many, xs[1])[0], torch.autograd.grad(one, xs[0])[0])
    # torch's options object is accepted too
    torch.testing.assert_close(OF.linear_cross_entropy(x, w, t, options=torch.nn.LinearCrossEntropyOptions(**opts),
                                                       **kw), one)


@pytest.mark.parametrize("kw", [dict(acc_policy="fast"), dict(chunking_method="rows"), dict(batch_chunk_size=0),
                                dict(acc_dtype=torch.int32)])
def test_options_validation_like_torch(kw):
    with pytest.raises(ValueError):
        torch.nn.LinearCrossEntropyOptions(**kw)
    with pytest.raises(ValueError):
        optimlab.nn.LinearCrossEntropyOptions(**kw)


def test_conflicting_chunk_size_and_method_raise_like_torch():
    x, w, t, _ = _data(64, 4, 40)
    for ns in (torch.nn, optimlab.nn):
        opts = ns.LinearCrossEntropyOptions(batch_chunk_size=5, chunking_method="aspect_ratio")
        with pytest.raises(ValueError, match="give different chunk sizes"):
            (torch.nn.functional if ns is torch.nn else OF).linear_cross_entropy(x, w, t, options=opts)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_memory_held_for_backward_does_not_grow_with_n_times_c(reduction):
    """autograd keeps the inputs, the (N,) targets and, for a scalar reduction, the gradients forward computed
    (N×D and C×D); torch's reference path keeps the (N, C) logits."""
    c, d = 4000, 16
    held = {}
    for n in (256, 1024):
        x, w, t, _ = _data(n, d, c, dtype=torch.float32)
        x.requires_grad_(), w.requires_grad_()
        held[n] = saved_bytes(lambda x, w: OF.linear_cross_entropy(x, w, t, reduction=reduction), x, w)
        ref = saved_bytes(lambda x, w: torch.nn.functional.linear_cross_entropy(x, w, t, reduction=reduction), x, w)
        assert ref >= n * c * 4  # the logits (sanity: the measurement sees what torch holds)
        grads = (n * d + c * d) * 4 if reduction == "mean" else 0
        assert held[n] <= 16 * n + grads  # the int64 targets, ∂x and ∂W (and nothing of size N·C)
        if reduction == "mean":
            assert held[n] >= grads  # forward's gradients are what backward returns
    assert held[1024] - held[256] <= (1024 - 256) * (16 + (4 * d if reduction == "mean" else 0))


def test_retain_graph_and_double_backward():
    x, w, t, b = _data(9, 5, 7)
    x.requires_grad_(), w.requires_grad_()
    loss = OF.linear_cross_entropy(x, w, t, linear_bias=b, label_smoothing=0.1)
    g1 = torch.autograd.grad(loss, x, retain_graph=True)[0]
    g2 = torch.autograd.grad(loss, x)[0]  # a second backward recomputes from the saved inputs
    torch.testing.assert_close(g1, g2)
    assert torch.autograd.gradgradcheck(
        lambda a, v: OF.linear_cross_entropy(a, v, t, linear_bias=b, label_smoothing=0.1,
                                             options=optimlab.nn.LinearCrossEntropyOptions(batch_chunk_size=4)),
        (x, w))


def test_compiled_fullgraph_matches_eager():
    x, w, t, b = _data(12, 6, 9, dtype=torch.float32)
    t[::4] = 2
    x.requires_grad_(), w.requires_grad_()

    def loss(x, w, options, smoothing):
        return OF.linear_cross_entropy(x, w, t, linear_bias=b, ignore_index=2, label_smoothing=smoothing,
                                       options=options)

    for options, smoothing in ((optimlab.nn.LinearCrossEntropyOptions(batch_chunk_size=5), 0.0), (None, 0.1)):
        torch._dynamo.reset()
        got = torch.compile(loss, fullgraph=True)(x, w, options, smoothing)
        want = loss(x, w, options, smoothing)
        torch.testing.assert_close(got, want)
        for a, e in zip(torch.autograd.grad(got, (x, w)), torch.autograd.grad(want, (x, w)), strict=True):
            torch.testing.assert_close(a, e)


def test_out_of_range_target_raises_index_error():
    x, w, t, _ = _data(4, 3, 5)
    t[1] = 5
    with pytest.raises(IndexError, match=re.escape("Target 5 is out of bounds.")):
        OF.linear_cross_entropy(x, w, t)


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kw", [dict(), dict(label_smoothing=0.2, ignore_index=1), dict(reduction="none")],
                         ids=["mean", "smoothing-ignore", "none"])
def test_autocast_chunked_matches_torch(input_dtype, kw):
    """Under bfloat16 autocast, in several chunks: torch's dtypes (float32 loss, each gradient in its input's
    dtype) and values: the loss at float32's tolerance (both cast the same bfloat16 logits up), gradients at
    bfloat16's (∂x, ∂W, ∂b come from bfloat16 matmuls in both; ∂W/∂b summed over chunks in float32 here)."""
    x, w, t, b = _data(29, 6, 13, dtype=torch.float32)
    x = x.to(input_dtype)
    t[::5] = 1
    grads, outs = [], []
    chunked = dict(options=optimlab.nn.LinearCrossEntropyOptions(batch_chunk_size=4))
    for fn, extra in ((OF.linear_cross_entropy, chunked), (torch.nn.functional.linear_cross_entropy, {})):
        args = [a.clone().requires_grad_() for a in (x, w, b)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "options ignored" warning for smoothing
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = fn(args[0], args[1], t, linear_bias=args[2], **kw, **extra)
        outs.append(out)
        grads.append(torch.autograd.grad(out.sum(), args))
    d = compare.tensors(outs[0], outs[1], "loss")
    assert d.ok, d.what
    for name, a, e in zip("xWb", *grads, strict=True):
        d = compare.tensors(a, e, f"grad {name}", tol=for_dtype(torch.bfloat16))
        assert d.ok, d.what
