"""Checkpoint interchange: torch's optimizer state loads into optimlab's mid-training (and back),
through ``torch.save``/``torch.load(weights_only=True)``, and both then continue in lockstep."""

from __future__ import annotations

import pytest
import torch
from _util import OPTIM_CONFIGS, checkpoint_roundtrip, raised

import optimlab.optim as oo
from optimlab.catalog import components
from optimlab.parity import compare
from optimlab.parity._common import call_both
from optimlab.parity.optim import batch, compare_optimizers, make_model, stepper
from optimlab.parity.sched import _builder, hyper, make_optimizer, metric_at
from optimlab.parity.tolerances import SCHED

# every optimizer: the flag-rich element-wise configurations, and the special ones with the model kind
# they need (Muon: 2-D parameters only; SparseAdam: sparse gradients) and whether step takes a closure
CONFIGS = {
    **{name: (kw, "mlp", False) for name, kw in OPTIM_CONFIGS.items()},
    "Adafactor": ({"lr": 0.05, "weight_decay": 0.05}, "mlp", False),
    "LBFGS": ({"lr": 0.5, "max_iter": 4, "history_size": 3, "line_search_fn": "strong_wolfe"}, "mlp", True),
    "Muon": ({"lr": 0.02, "weight_decay": 0.05, "nesterov": False}, "matrix", False),
    "SparseAdam": ({"lr": 0.05, "betas": (0.5, 0.9)}, "sparse", False),
}


def _steps(opt, model, start: int, n: int, kind: str = "mlp", closure: bool = False) -> None:
    for step in range(start, start + n):
        x, y = batch(kind, step, torch.float64, "cpu")
        stepper(opt, model, opt.step, closure, x, y)()


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("source", ["torch", "optimlab"])
def test_state_dict_interchange(name, source):
    """Train ``source``'s optimizer 5 steps, checkpoint it (model and optimizer, through torch.save and
    torch.load(weights_only=True)), load the checkpoint into a fresh torch optimizer and a fresh
    optimlab optimizer, and step both 10 more times: they must stay bitwise in lockstep.

    (Both sides load, because torch's ``load_state_dict`` casts non-step state such as ASGD's
    ``eta`` or NAdam's ``mu_product`` to the parameter's dtype.)"""
    kw, kind, closure = CONFIGS[name]
    m_src = make_model(kind, torch.float64, "cpu")
    src = (getattr(torch.optim, name) if source == "torch" else getattr(oo, name))(m_src.parameters(), **kw)
    _steps(src, m_src, 1, 5, kind, closure)
    optim_ckpt = checkpoint_roundtrip(src.state_dict())
    sides = []
    for cls in (getattr(oo, name), getattr(torch.optim, name)):
        model = make_model(kind, torch.float64, "cpu")
        model.load_state_dict(checkpoint_roundtrip(m_src.state_dict()))
        opt = cls(model.parameters(), **kw)
        # each side loads its own copy: torch's load_state_dict keeps (does not copy) state tensors
        # that already have the parameter's dtype and device
        opt.load_state_dict(checkpoint_roundtrip(src.state_dict()))
        sides.append((opt, model))
    (ours, m_ours), (ref, m_ref) = sides
    assert ours.state_dict()["param_groups"] == ref.state_dict()["param_groups"] == optim_ckpt["param_groups"]
    for step in range(6, 16):
        _steps(ours, m_ours, step, 1, kind, closure)
        _steps(ref, m_ref, step, 1, kind, closure)
        diff = compare_optimizers(ours, ref, m_ours, m_ref, bitwise=True)
        assert diff.ok, f"step {step}: {diff.what}"
    # and the continued checkpoint still round-trips into torch
    again = getattr(torch.optim, name)(make_model(kind, torch.float64, "cpu").parameters(), **kw)
    again.load_state_dict(checkpoint_roundtrip(ours.state_dict()))


def test_old_checkpoint_with_float_steps_is_upgraded():
    """Pre-1.12 checkpoints stored ``step`` as a Python number; torch turns it into a tensor on load."""
    m = make_model("mlp", torch.float64, "cpu")
    opt = oo.Adam(m.parameters(), lr=0.01)
    _steps(opt, m, 1, 2)
    sd = opt.state_dict()
    for st in sd["state"].values():
        st["step"] = float(st["step"])
    ref = torch.optim.Adam(make_model("mlp", torch.float64, "cpu").parameters(), lr=0.01)
    ref.load_state_dict(sd)
    opt.load_state_dict(sd)
    for st_o, st_r in zip(opt.state_dict()["state"].values(), ref.state_dict()["state"].values(), strict=True):
        assert torch.is_tensor(st_o["step"]) and st_o["step"].dtype == st_r["step"].dtype
        assert float(st_o["step"]) == float(st_r["step"]) == 2.0


# ----------------------------------------------------------------------------------------- schedulers

SCHED_CASES = [(comp, case) for comp in components("sched") for case in comp.cases]
BEFORE, AFTER = 7, 25  # steps before the checkpoint, and after it


def _sched_side(comp, case, ns_index: int):
    """(optimizer, scheduler builder) for one side; the builder takes an optimizer."""
    kind, lrs = case.get("optimizer", "SGD"), tuple(case.get("lrs", (0.1,)))
    return make_optimizer(kind, lrs), _builder(comp.name, case, dict(case.kwargs), comp.namespaces[ns_index])


def _advance(opt, sched, case, step: int) -> None:
    metrics, epochs = case.get("metrics"), case.get("epochs")
    args = (metric_at(metrics, step),) if metrics is not None else ()
    if epochs is not None:
        args = (*args, epochs(step))
    opt.step()
    sched.step(*args)


def _sched_diff(opt_a, sched_a, opt_b, sched_b, what: str, bitwise: bool) -> compare.Diff:
    diff = compare.Diff()
    for (key, v_a), (_, v_b) in zip(hyper(opt_a), hyper(opt_b), strict=True):
        diff.merge(compare.scalars(v_a, v_b, f"{what} {key}", SCHED, bitwise))
    for j, (v_a, v_b) in enumerate(zip(sched_a.get_last_lr(), sched_b.get_last_lr(), strict=True)):
        diff.merge(compare.scalars(v_a, v_b, f"{what} get_last_lr()[{j}]", SCHED, bitwise))
    return diff


@pytest.mark.parametrize("comp,case", SCHED_CASES, ids=[f"{c.name}-{k.name}" for c, k in SCHED_CASES])
def test_scheduler_state_dict_interchange(comp, case):
    """Step torch's and optimlab's scheduler 7 times, checkpoint each (optimizer and scheduler state
    through torch.save / torch.load(weights_only=True)), and load each checkpoint into a freshly built
    scheduler of both implementations (optimizer state loaded too, as a resume does). For 25 more steps
    every resumed scheduler's lrs (and momentum/betas) equal the uninterrupted run of the checkpoint's
    source. Cases whose construction raises in torch (invalid arguments) have nothing to checkpoint."""
    import warnings

    warnings.simplefilter("ignore")  # deprecation warnings of the epoch argument, lr before step order
    (o_opt, o_mk), (r_opt, r_mk) = _sched_side(comp, case, 0), _sched_side(comp, case, 1)
    o_sched, r_sched, problem, raised_ = call_both(lambda: o_mk(o_opt), lambda: r_mk(r_opt))
    assert problem is None, problem
    if raised_:
        return
    for step in range(1, BEFORE + 1):
        _, _, problem, raised_ = call_both(lambda: _advance(o_opt, o_sched, case, step),
                                           lambda: _advance(r_opt, r_sched, case, step))
        assert problem is None, problem
        if raised_:  # an invalid case that fails while stepping, in both: nothing to checkpoint
            return
    sources = {"optimlab": (o_opt, o_sched), "torch": (r_opt, r_sched)}
    ckpts = {k: checkpoint_roundtrip({"optim": opt.state_dict(), "sched": s.state_dict()})
             for k, (opt, s) in sources.items()}
    resumed = []
    for src, ckpt in ckpts.items():
        for ns_index in (0, 1):
            opt, mk = _sched_side(comp, case, ns_index)
            sched = mk(opt)
            opt.load_state_dict(ckpt["optim"])
            sched.load_state_dict(ckpt["sched"])
            resumed.append((f"{src} checkpoint into {comp.namespaces[ns_index]}", src, opt, sched))
    for step in range(BEFORE + 1, BEFORE + AFTER + 1):
        errors = {src: raised(lambda opt=opt, sched=sched: _advance(opt, sched, case, step))[0]
                  for src, (opt, sched) in sources.items()}
        for what, src, opt, sched in resumed:
            err, _ = raised(lambda opt=opt, sched=sched: _advance(opt, sched, case, step))
            assert err is errors[src], f"step {step}: {what} raises {err}, the uninterrupted run {errors[src]}"
            if err is None:
                diff = _sched_diff(opt, sched, *sources[src], f"step {step}: {what}", case.bitwise)
                assert diff.ok, diff.what
        if any(errors.values()):  # a case that fails at a later step (e.g. a nested SequentialLR)
            return
