"""LBFGS, Muon, Adafactor and SparseAdam beyond the catalogue's lockstep runs: signatures and defaults,
invalid hyperparameters, step-time errors, checkpoint interchange, Rosenbrock convergence, and
an engine check that a planted deviation in their state is caught."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _util import checkpoint_roundtrip
from torch import nn

import optimlab.optim as ours_optim
from optimlab.catalog import NEWER_API, Case, get, torch_has
from optimlab.parity import optim as engine

NAMES = ("LBFGS", "Muon", "Adafactor", "SparseAdam")
MODEL = {"LBFGS": "mlp", "Muon": "matrix", "Adafactor": "mlp", "SparseAdam": "sparse"}
KWARGS: dict[str, dict[str, Any]] = {
    "LBFGS": {"lr": 0.5, "max_iter": 4, "history_size": 3, "line_search_fn": "strong_wolfe"},
    "Muon": {"lr": 0.02},
    "Adafactor": {"lr": 0.05, "weight_decay": 0.1},
    "SparseAdam": {"lr": 0.05},
}


def pair(name: str) -> tuple[type, type]:
    return getattr(ours_optim, name), getattr(torch.optim, name)


def stepper(opt: torch.optim.Optimizer, model: nn.Module, kind: str, step: int, dtype: torch.dtype) -> Any:
    """One training step (through a closure, which LBFGS requires); returns step()'s result."""
    x, y = engine.batch(kind, step, dtype, "cpu")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = engine.loss_of(model, x, y)
        loss.backward()
        return loss

    return opt.step(closure)


# --- signatures, defaults, param_group keys -------------------------------------------------------

def _newer(name: str) -> set[str]:
    """The arguments of ``name`` that a torch newer than the installed one added (empty on the newest)."""
    return {arg for arg, release in NEWER_API.get(f"optim:{name}", {}).items() if not torch_has(release)}


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_torch(name: str) -> None:
    mine, theirs = pair(name)
    sig_o, sig_t = inspect.signature(mine.__init__), inspect.signature(theirs.__init__)
    got = [(p.name, p.kind, p.default) for p in sig_o.parameters.values()]
    want = [(p.name, p.kind, p.default) for p in sig_t.parameters.values()]
    if got and got[-1][0] == "state_dtype":  # issue 27: Muon's stored momentum, keyword-only, off by default
        assert got[-1] == ("state_dtype", inspect.Parameter.KEYWORD_ONLY, None)
        got = got[:-1]
    if got and got[-1][0] == "fused" and "fused" not in sig_t.parameters:
        # optimlab's one extension (issue 10, Adafactor): a trailing keyword-only fused=None
        assert got[-1] == ("fused", inspect.Parameter.KEYWORD_ONLY, None)
        got = got[:-1]
    newer = _newer(name)  # a newer torch's arguments, offered on every torch (LBFGS maximize=, torch 2.14)
    assert {p[0] for p in got if p[0] in newer} == newer and not newer & {p[0] for p in want}
    assert [p for p in got if p[0] not in newer] == want
    assert issubclass(mine, torch.optim.Optimizer) and issubclass(mine, ours_optim.Optimizer)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_param_group_keys(name: str) -> None:
    mine, theirs = pair(name)
    kind = MODEL[name]
    o = mine(engine.make_model(kind, torch.float64, "cpu").parameters())
    r = theirs(engine.make_model(kind, torch.float64, "cpu").parameters())
    newer = _newer(name)
    assert set(newer) <= set(o.defaults) and not newer & set(r.defaults)
    assert {k: v for k, v in o.defaults.items() if k not in newer} == r.defaults
    assert [sorted(set(g) - newer) for g in o.param_groups] == [sorted(g) for g in r.param_groups]


# --- invalid hyperparameters: same exception type and message as torch --------------------------

INVALID = [
    ("LBFGS", {"lr": -1.0}),
    ("LBFGS", {"lr": torch.tensor([0.1, 0.2])}),
    ("Muon", {"lr": -0.1}),
    ("Muon", {"momentum": -0.5}),
    ("Muon", {"weight_decay": -1.0}),
    ("Muon", {"adjust_lr_fn": "sqrt"}),
    ("Muon", {"lr": torch.tensor([0.1, 0.2])}),
    ("Adafactor", {"lr": -0.1}),
    ("Adafactor", {"beta2_decay": 0.5}),
    ("Adafactor", {"eps": (-1e-3, 1e-3)}),
    ("Adafactor", {"eps": (None, -1e-3)}),
    ("Adafactor", {"d": 0.5}),
    ("Adafactor", {"weight_decay": -0.1}),
    ("Adafactor", {"lr": torch.tensor([0.1, 0.2])}),
    ("SparseAdam", {"lr": 0.0}),
    ("SparseAdam", {"eps": 0.0}),
    ("SparseAdam", {"betas": (1.0, 0.999)}),
    ("SparseAdam", {"betas": (-0.1, 0.999)}),
    ("SparseAdam", {"betas": (0.9, 1.0)}),
    ("SparseAdam", {"lr": torch.tensor([0.1, 0.2])}),
]


def raised(fn: Callable[[], Any]) -> BaseException:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return e
    raise AssertionError("did not raise")


@pytest.mark.parametrize("name,kwargs", INVALID, ids=[f"{n}-{sorted(k)[0]}-{i}" for i, (n, k) in enumerate(INVALID)])
def test_invalid_hyperparameters_raise_like_torch(name: str, kwargs: dict[str, Any]) -> None:
    mine, theirs = pair(name)
    params = list(engine.make_model(MODEL[name], torch.float64, "cpu").parameters())
    want = raised(lambda: theirs(params, **kwargs))
    got = raised(lambda: mine(params, **kwargs))
    assert type(got) is type(want) and str(got) == str(want)


def test_construction_restrictions_like_torch() -> None:
    """LBFGS takes one group; Muon only 2-D parameters; SparseAdam no complex/sparse parameters."""
    mlp = list(engine.make_model("mlp", torch.float64, "cpu").parameters())
    cplx = list(engine.make_model("complex", torch.float64, "cpu").parameters())
    cases = [("LBFGS", [{"params": mlp[:2]}, {"params": mlp[2:], "lr": 0.1}]), ("Muon", mlp),
             ("SparseAdam", cplx), ("SparseAdam", [torch.zeros(3, 3).to_sparse().requires_grad_()])]
    for name, params in cases:
        mine, theirs = pair(name)
        want, got = raised(lambda: theirs(params)), raised(lambda: mine(params))  # noqa: B023
        assert type(got) is type(want) and str(got) == str(want), name


# --- errors at step() ---------------------------------------------------------------------------------

STEP_ERRORS = [
    ("SparseAdam", "mlp", {}),  # dense gradients
    ("Muon", "sparse", {}),  # sparse gradients
    ("Muon", "matrix", {"ns_steps": 100}),
    ("Muon", "matrix", {"ns_coefficients": (3.0, -3.0)}),
    ("Adafactor", "sparse", {}),
    ("Adafactor", "complex", {}),
    ("LBFGS", "mlp", {"line_search_fn": "armijo"}),
]


@pytest.mark.parametrize("name,kind,kwargs", STEP_ERRORS,
                         ids=[f"{n}-{k}-{i}" for i, (n, k, _) in enumerate(STEP_ERRORS)])
def test_step_errors_like_torch(name: str, kind: str, kwargs: dict[str, Any]) -> None:
    mine, theirs = pair(name)
    errors = []
    for cls in (theirs, mine):
        model = engine.make_model(kind, torch.float64, "cpu")
        opt = cls(model.parameters(), **kwargs)
        errors.append(raised(lambda: stepper(opt, model, kind, 1, torch.float64)))  # noqa: B023
    want, got = errors
    assert type(got) is type(want) and str(got) == str(want)


def test_lbfgs_step_requires_closure() -> None:
    for cls in pair("LBFGS"):
        opt = cls(engine.make_model("mlp", torch.float64, "cpu").parameters())
        with pytest.raises(TypeError):
            opt.step()


@pytest.mark.parametrize("name", NAMES)
def test_step_leaves_gradients_alone(name: str) -> None:
    """``step`` never writes into the caller's gradients (maximize negates a copy)."""
    kind = MODEL[name]
    model = engine.make_model(kind, torch.float64, "cpu")
    kwargs = {**KWARGS[name], **({"maximize": True} if name in ("Adafactor", "SparseAdam") else {})}
    opt = getattr(ours_optim, name)(model.parameters(), **kwargs)
    x, y = engine.batch(kind, 1, torch.float64, "cpu")
    engine.loss_of(model, x, y).backward()
    before = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    if name == "LBFGS":
        opt.step(lambda: engine.loss_of(model, x, y))  # the closure does not recompute gradients
    else:
        opt.step()
    after = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.equal(a.to_dense(), b.to_dense()) for a, b in zip(after, before, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_float32_tensor_lr_rounds_like_torch(name: str) -> None:
    """A float32 1-element lr tensor stays a tensor in the arithmetic, as in torch (the catalogue's
    ``lr_tensor`` cases use float64, where tensor and Python-float arithmetic agree anyway)."""
    kind = MODEL[name]
    kwargs = {**KWARGS[name], "lr": torch.tensor([0.0123], dtype=torch.float32)}
    models = []
    for cls in pair(name):
        model = engine.make_model(kind, torch.float32, "cpu")
        opt = cls(model.parameters(), **kwargs)
        for step in range(1, 6):
            stepper(opt, model, kind, step, torch.float32)
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_step_hooks_fire_and_closure_loss_is_returned(name: str) -> None:
    kind = MODEL[name]
    model = engine.make_model(kind, torch.float64, "cpu")
    opt = getattr(ours_optim, name)(model.parameters(), **KWARGS[name])
    seen: list[str] = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    x, y = engine.batch(kind, 1, torch.float64, "cpu")
    first = engine.loss_of(model, x, y).detach()
    loss = stepper(opt, model, kind, 1, torch.float64)
    assert seen == ["pre", "post"] and torch.equal(loss.detach(), first)


# --- checkpoint interchange ----------------------------------------------------------------------

@pytest.mark.parametrize("direction", ["torch->optimlab", "optimlab->torch"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_interchange(name: str, dtype: torch.dtype, direction: str) -> None:
    """Train one side for 5 steps, save/load its state_dict (weights_only) into a fresh optimizer of
    the other kind over a copy of the model, then continue both in lockstep: bit-for-bit equal."""
    mine, theirs = pair(name)
    first, second = (theirs, mine) if direction == "torch->optimlab" else (mine, theirs)
    kind, kwargs = MODEL[name], KWARGS[name]
    model = engine.make_model(kind, dtype, "cpu")
    opt = first(model.parameters(), **kwargs)
    for step in range(1, 6):
        stepper(opt, model, kind, step, dtype)
    twin = engine.make_model(kind, dtype, "cpu")
    twin.load_state_dict(model.state_dict())
    other = second(twin.parameters(), **kwargs)
    other.load_state_dict(checkpoint_roundtrip(opt.state_dict()))
    assert engine.compare_optimizers(other, opt, twin, model, bitwise=True).ok
    for step in range(6, 16):
        l_a = stepper(opt, model, kind, step, dtype)
        l_b = stepper(other, twin, kind, step, dtype)
        assert torch.equal(l_a, l_b)
        diff = engine.compare_optimizers(other, opt, twin, model, bitwise=True)
        assert diff.ok, f"step {step}: {diff.what}"


@pytest.mark.parametrize("name", NAMES)
def test_named_parameters_state_dict_like_torch(name: str) -> None:
    """Built from ``named_parameters()``, the state_dict carries ``param_names`` exactly as torch's."""
    kind = MODEL[name]
    dicts = []
    for cls in pair(name):
        model = engine.make_model(kind, torch.float64, "cpu")
        opt = cls(model.named_parameters(), **KWARGS[name])
        stepper(opt, model, kind, 1, torch.float64)
        dicts.append(opt.state_dict())
    mine, ref = dicts
    newer = _newer(name)
    assert [{k: v for k, v in g.items() if k not in newer} for g in mine["param_groups"]] == ref["param_groups"]
    assert mine["param_groups"][0]["param_names"]
    assert {k: sorted(v) for k, v in mine["state"].items()} == {k: sorted(v) for k, v in ref["state"].items()}


def test_sparse_adam_param_groups() -> None:
    """Two embeddings in groups with their own lr, betas and maximize: lockstep with torch, bit for bit."""
    sides = []
    for cls in pair("SparseAdam"):
        torch.manual_seed(0)
        embs = [nn.Embedding(12, 3, sparse=True).double(), nn.Embedding(7, 5, sparse=True).double()]
        opt = cls([{"params": embs[0].parameters()},
                   {"params": embs[1].parameters(), "lr": 0.2, "betas": (0.5, 0.8), "maximize": True}], lr=0.05)
        gen = torch.Generator().manual_seed(1)
        for _ in range(10):
            opt.zero_grad()
            loss = sum((e(torch.randint(0, e.num_embeddings, (9,), generator=gen)) ** 2).sum() for e in embs)
            loss.backward()
            opt.step()
        sides.append((embs, opt))
    (e_o, o), (e_r, r) = sides
    for a, b in zip(e_o, e_r, strict=True):
        assert torch.equal(a.weight, b.weight)
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(o.state[a.weight][key], r.state[b.weight][key])
        assert o.state[a.weight]["step"] == r.state[b.weight]["step"] == 10


# --- LBFGS on the Rosenbrock function ---------------------------------------------------------------

def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_rosenbrock_same_iterates_as_torch(line_search_fn: str | None, dtype: torch.dtype) -> None:
    """From (-1.5, 2), both reach the minimum (1, 1) through identical iterates and losses."""
    runs = []
    for cls in pair("LBFGS"):
        xy = torch.tensor([-1.5, 2.0], dtype=dtype, requires_grad=True)
        opt = cls([xy], line_search_fn=line_search_fn)

        def closure() -> torch.Tensor:
            opt.zero_grad()  # noqa: B023
            f = rosenbrock(xy)  # noqa: B023
            f.backward()
            return f

        runs.append([(opt.step(closure).detach(), xy.detach().clone()) for _ in range(20)])
    for (l_o, x_o), (l_r, x_r) in zip(*runs, strict=True):
        assert torch.equal(l_o, l_r) and torch.equal(x_o, x_r)
    final = runs[0][-1][1]
    # L-BFGS stops on tolerance_change (1e-9 in f) near the minimum: |x - 1| ~ sqrt(1e-9) scale
    assert (final - 1).abs().max() < 1e-3
    assert runs[0][0][1].sub(1).abs().max() > 0.1  # it did move from far away


# --- Adafactor's factoring over the last two dimensions of a ≥3-D parameter ------------------------

@pytest.mark.parametrize("foreach", [False, True])
def test_adafactor_factors_last_two_dims(foreach: bool) -> None:
    torch.manual_seed(0)
    init = [torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(6, dtype=torch.float64)]
    grads = [[torch.randn_like(t) for t in init] for _ in range(20)]
    sides = []
    for cls in pair("Adafactor"):
        params = [nn.Parameter(t.clone()) for t in init]
        opt = cls(params, lr=0.05, weight_decay=0.1, foreach=foreach, maximize=True)
        for gs in grads:
            for p, g in zip(params, gs, strict=True):
                p.grad = g.clone()
            opt.step()
        sides.append((params, opt))
    (p_o, o), (p_r, r) = sides
    st = o.state[p_o[0]]
    assert st["row_var"].shape == (3, 4, 1) and st["col_var"].shape == (3, 1, 5)
    assert set(o.state[p_o[1]]) == {"step", "variance"}
    for a, b in zip(p_o, p_r, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(p_o, p_r, strict=True):
        for key, v in r.state[b].items():
            assert torch.equal(o.state[a][key], v), key


# --- the engine catches a planted deviation in these optimizers' state -----------------------------

class _LBFGSWrongCurvature(ours_optim.LBFGS):
    """Stores ρ = 1/(yᵀs) one ulp off: only the ``ro`` history list differs at first."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        loss = super().step(closure)
        ro = self.state[self._params[0]].get("ro") or []
        for i, v in enumerate(ro):
            ro[i] = torch.nextafter(v, v + 1)
        return loss


class _MuonSixSteps(ours_optim.Muon):
    """Runs one Newton–Schulz iteration more than its param_groups say."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        for g in self.param_groups:
            g["ns_steps"] += 1
        try:
            return super().step(closure)
        finally:
            for g in self.param_groups:
                g["ns_steps"] -= 1


def test_engine_catches_planted_deviation() -> None:
    res = engine.run_case(get("optim", "LBFGS"), get("optim", "LBFGS").case("history_size"), torch.float64, steps=5,
                          ours_cls=_LBFGSWrongCurvature)
    assert not res.passed and "ro" in res.message
    case = Case("planted", {"lr": 0.02}, bitwise=True, extra={"model": "matrix"})
    res = engine.run_case(get("optim", "Muon"), case, torch.float64, steps=3, ours_cls=_MuonSixSteps)
    assert not res.passed


# --- random hyperparameters and batches (the catalogue's fuzz ranges) -------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_fuzz(name: str) -> None:
    # few examples and steps: the catalogue's fixed cases carry the 50-step coverage
    from optimlab.parity import fuzz

    report = fuzz.fuzz(get("optim", name), examples=5, steps=5)
    assert report.passed, report.reproducer()


def test_adagrad_fills_every_group_from_the_constructor_value():
    """torch's Adagrad fills every group's accumulators with the constructor's initial_accumulator_value,
    even where a group names its own."""
    a = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(4))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "initial_accumulator_value": 0.5}]  # noqa: E731
    ours = ours_optim.Adagrad(groups(a), lr=0.1, initial_accumulator_value=0.1)
    ref = torch.optim.Adagrad(groups(b), lr=0.1, initial_accumulator_value=0.1)
    for p, q in zip(a, b, strict=True):
        assert torch.equal(ours.state[p]["sum"], ref.state[q]["sum"])
