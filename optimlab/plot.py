"""``python -m optimlab plot-schedule EXPR``: draw a scheduler's lr (and momentum) against the step.

``EXPR`` is a scheduler call such as ``"OneCycleLR(max_lr=0.1, total_steps=1000)"`` or a composition
``"SequentialLR([LinearLR(start_factor=0.1, total_iters=10), CosineAnnealingLR(T_max=90)], milestones=[10])"``.
Every scheduler call gets the optimizer injected (first positional argument, or ``optimizer=`` where it is
not first, as in ``ChainedScheduler``); the bare name ``optimizer`` may also be written out.

The expression is parsed with :mod:`ast` and evaluated by a small interpreter, never ``eval``: it accepts
calls to known scheduler names (optimlab's ``lr_scheduler`` classes and ``SWALR``), literals (numbers,
strings, ``True``/``False``/``None``), lists, tuples, dicts and unary minus/plus; anything else (attribute
access, other names, lambdas, operators, ``*``/``**`` unpacking) raises :class:`ScheduleExprError`.

Python API: :func:`build` (expression → scheduler), :func:`simulate` (→ :class:`Trace`), :func:`plot`
(→ PNG/SVG/PDF file); matplotlib is imported only by :func:`plot` (``pip install optimlab[plot]``).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["ScheduleExprError", "Trace", "build", "figure", "main", "plot", "scheduler_classes", "simulate"]

MAX_EXPR_CHARS = 10_000
DEFAULT_STEPS = 1000
MAX_STEPS = 1_000_000  # a plot has a few thousand pixels; more points only cost time and memory


class ScheduleExprError(ValueError):
    """The schedule expression is not a call of known schedulers on literals."""


# --------------------------------------------------------------------------- the optimizer stand-in

OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "SGD": {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "Adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
}


class _GroupsOnly(torch.optim.Optimizer):
    """An optimizer that holds param groups and updates nothing: a scheduler only reads and writes
    ``param_groups`` (lr, momentum/betas) and ``defaults``, so this stands in for SGD or Adam."""

    def __init__(self, lrs: Sequence[float], defaults: dict[str, Any]) -> None:
        groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
        super().__init__(groups, {"lr": lrs[0], **defaults})

    def step(self, closure: Any = None) -> None:  # noqa: D102 - nothing to update
        return None


def make_optimizer(kind: str, lrs: Sequence[float]) -> torch.optim.Optimizer:
    """A stand-in ``kind`` optimizer (SGD with momentum 0.9, or Adam) with one param group per lr."""
    if kind not in OPTIMIZER_DEFAULTS:
        raise ValueError(f"unknown optimizer {kind!r}; expected one of {', '.join(OPTIMIZER_DEFAULTS)}")
    if not lrs:
        raise ValueError("at least one learning rate is needed")
    return _GroupsOnly(lrs, OPTIMIZER_DEFAULTS[kind])


# --------------------------------------------------------------------------- the expression language


def scheduler_classes() -> dict[str, type]:
    """Scheduler names an expression may call: optimlab's concrete schedulers plus ``SWALR``."""
    from torch.optim.lr_scheduler import LRScheduler as TorchBase

    from .optim import lr_scheduler, swa_utils

    out: dict[str, type] = {}
    for name in getattr(lr_scheduler, "__all__", dir(lr_scheduler)):
        obj = getattr(lr_scheduler, name, None)
        if isinstance(obj, type) and issubclass(obj, TorchBase) and not inspect.isabstract(obj) \
                and name not in ("LRScheduler", "_LRScheduler"):
            out[name] = obj
    out["SWALR"] = swa_utils.SWALR
    return out


def _where(node: ast.AST) -> str:
    return f" at column {node.col_offset + 1}" if hasattr(node, "col_offset") else ""


def parse(expr: str) -> ast.expr:
    """Parse ``expr`` into an expression tree (syntax only; names and node types are checked by :func:`build`)."""
    if len(expr) > MAX_EXPR_CHARS:
        raise ScheduleExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise ScheduleExprError(f"not a valid expression: {e.msg} (column {e.offset})") from None
    except (RecursionError, MemoryError):
        raise ScheduleExprError("expression nested too deeply") from None
    if not isinstance(tree.body, ast.Call):
        raise ScheduleExprError("the expression must be a scheduler call, e.g. \"StepLR(step_size=30)\"")
    return tree.body


class _Interpreter:
    """Evaluates the whitelisted subset of Python expressions; see the module docstring."""

    LITERALS = (int, float, str, bool, type(None))

    def __init__(self, optimizer: torch.optim.Optimizer, classes: dict[str, type]) -> None:
        self.optimizer = optimizer
        self.classes = classes

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, self.LITERALS):
                raise ScheduleExprError(f"literal of type {type(node.value).__name__} not allowed{_where(node)}")
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.eval(node.operand)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ScheduleExprError(f"unary {'-' if isinstance(node.op, ast.USub) else '+'} applies to "
                                        f"numbers only{_where(node)}")
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.List):
            return [self.eval(e) for e in self._plain(node.elts)]
        if isinstance(node, ast.Tuple):
            return tuple(self.eval(e) for e in self._plain(node.elts))
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ScheduleExprError(f"'**' unpacking is not allowed{_where(node)}")
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, ast.Name):
            if node.id == "optimizer":
                return self.optimizer
            if node.id in self.classes:
                raise ScheduleExprError(f"{node.id} must be called{_where(node)}")
            raise ScheduleExprError(f"unknown name {node.id!r}{_where(node)}; known schedulers: "
                                    f"{', '.join(sorted(self.classes))}")
        if isinstance(node, ast.Call):
            return self.call(node)
        what = {ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "lambda",
                ast.BinOp: "arithmetic operators", ast.BoolOp: "boolean operators", ast.Compare: "comparisons"}
        kind = what.get(type(node), type(node).__name__)
        raise ScheduleExprError(f"{kind} is not allowed in a schedule expression{_where(node)}")

    @staticmethod
    def _plain(elts: list[ast.expr]) -> list[ast.expr]:
        for e in elts:
            if isinstance(e, ast.Starred):
                raise ScheduleExprError(f"'*' unpacking is not allowed{_where(e)}")
        return elts

    def call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in self.classes:
            if isinstance(node.func, ast.Name):
                raise ScheduleExprError(f"unknown scheduler {node.func.id!r}{_where(node)}; known schedulers: "
                                        f"{', '.join(sorted(self.classes))}")
            raise ScheduleExprError(f"only scheduler names may be called{_where(node)}")
        cls = self.classes[node.func.id]
        args = [self.eval(a) for a in self._plain(node.args)]
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise ScheduleExprError(f"'**' unpacking is not allowed{_where(node)}")
            kwargs[kw.arg] = self.eval(kw.value)
        self._inject(cls, args, kwargs)
        try:
            return cls(*args, **kwargs)
        except Exception as e:  # the scheduler's own validation: report it against the expression
            raise ScheduleExprError(f"{node.func.id}(...) raised {type(e).__name__}: {e}") from e

    def _inject(self, cls: type, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Give ``cls`` the optimizer unless the expression already passes one."""
        params = list(inspect.signature(cls).parameters)
        if "optimizer" not in params or "optimizer" in kwargs:
            return
        if any(isinstance(a, torch.optim.Optimizer) for a in args):
            return
        if params[0] == "optimizer":
            args.insert(0, self.optimizer)
        else:
            kwargs["optimizer"] = self.optimizer


def build(expr: str, optimizer: torch.optim.Optimizer) -> Any:
    """The scheduler described by ``expr``, on ``optimizer`` (see the module docstring for the language)."""
    return _Interpreter(optimizer, scheduler_classes()).eval(parse(expr))


# --------------------------------------------------------------------------- running the schedule


@dataclass
class Trace:
    """The schedule over ``steps`` (0 .. N-1): ``lrs[g][k]`` is group g's lr at step k; ``momenta`` the
    momentum (SGD) or β1 (Adam) when the scheduler changes it; ``metrics`` the values fed to
    ReduceLROnPlateau (``metrics[k-1]`` was passed to the k-th ``step``)."""

    expr: str
    optimizer: str
    initial_lrs: list[float]
    steps: list[int]
    lrs: list[list[float]]
    momenta: list[list[float]] | None = None
    momentum_name: str = "momentum"
    metrics: list[float] = field(default_factory=list)
    fixed: bool = False  # run with optimlab's corrected behaviour (lr_scheduler.fixed)


def _takes_metrics(scheduler: Any) -> bool:
    params = list(inspect.signature(scheduler.step).parameters)
    return bool(params) and params[0] == "metrics"


def _momenta(opt: torch.optim.Optimizer) -> list[float] | None:
    out = []
    for g in opt.param_groups:
        if "betas" in g:
            out.append(float(g["betas"][0]))
        elif "momentum" in g:
            out.append(float(g["momentum"]))
        else:
            return None
    return out


def simulate(expr: str, steps: int | None = None, lrs: Sequence[float] = (0.1,), optimizer: str = "SGD",
             metrics: Sequence[float] | None = None, fixed: bool = False) -> Trace:
    """Build ``expr`` on a stand-in optimizer and record every group's lr (and momentum) for ``steps`` points.

    Defaults for ``steps``: ``len(metrics) + 1`` with metrics, the scheduler's ``total_steps`` (OneCycleLR),
    else 1000. ReduceLROnPlateau needs ``metrics`` (one per step); other schedulers refuse them.
    ``fixed`` runs the schedule with the family's corrected behaviour for torch's known scheduler bugs
    (:func:`optimlab.optim.lr_scheduler.fixed`); the switch is restored afterwards.
    """
    from .optim import lr_scheduler

    with lr_scheduler.fixed(fixed):
        trace = _simulate(expr, steps, lrs, optimizer, metrics)
    trace.fixed = fixed
    return trace


def _simulate(expr: str, steps: int | None, lrs: Sequence[float], optimizer: str,
              metrics: Sequence[float] | None) -> Trace:
    opt = make_optimizer(optimizer, lrs)
    sched = build(expr, opt)
    plateau = _takes_metrics(sched)
    if plateau and metrics is None:
        raise ScheduleExprError(f"{type(sched).__name__} follows a metric: give one value per step (--metrics FILE)")
    if metrics is not None and not plateau:
        raise ScheduleExprError(f"{type(sched).__name__} takes no metrics; --metrics is for ReduceLROnPlateau")
    if steps is None:
        steps = len(metrics) + 1 if metrics is not None else int(getattr(sched, "total_steps", DEFAULT_STEPS))
    if not 1 <= steps <= MAX_STEPS:
        raise ScheduleExprError(f"steps must be between 1 and {MAX_STEPS:,}, got {steps}")
    if metrics is not None and len(metrics) < steps - 1:
        raise ScheduleExprError(f"{steps} steps need {steps - 1} metric values, got {len(metrics)}")
    fed = list(metrics[:steps - 1]) if metrics else []
    trace = Trace(expr, optimizer, list(lrs), [], [[] for _ in opt.param_groups], metrics=fed)
    momenta: list[list[float]] = []
    kind = "β1 (Adam betas[0])" if "betas" in opt.defaults else "momentum"
    for k in range(steps):
        if k:
            opt.step()
            try:
                sched.step(metrics[k - 1]) if plateau else sched.step()
            except Exception as e:
                raise ScheduleExprError(f"{type(sched).__name__}.step() raised {type(e).__name__} at step {k}: "
                                        f"{e}") from e
        trace.steps.append(k)
        for g, group in enumerate(opt.param_groups):
            trace.lrs[g].append(float(group["lr"]))
        m = _momenta(opt)
        if m is not None:
            momenta.append(m)
    if momenta and any(row != momenta[0] for row in momenta):
        trace.momenta = [list(col) for col in zip(*momenta, strict=True)]
        trace.momentum_name = kind
    return trace


# --------------------------------------------------------------------------- drawing


def figure(trace: Trace, log: bool = False, title: str | None = None) -> Any:
    """A matplotlib ``Figure`` of ``trace``: an lr panel, plus momentum and metric panels when present.
    Drawn on the Agg canvas directly (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plot-schedule needs matplotlib: pip install 'optimlab[plot]' (or pip install "
                          "matplotlib)") from e
    panels = ["lr"] + (["momentum"] if trace.momenta else []) + (["metric"] if trace.metrics else [])
    fig = Figure(figsize=(9, 3.2 + 2.2 * (len(panels) - 1)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "lr":
            for g, values in enumerate(trace.lrs):
                ax.plot(trace.steps, values, label=f"group {g} (initial lr {trace.initial_lrs[g]:g})", lw=1.6,
                        drawstyle="steps-post")
            ax.set_ylabel("learning rate")
            if log:
                ax.set_yscale("log")
        elif panel == "momentum":
            for g, values in enumerate(trace.momenta or []):
                ax.plot(trace.steps, values, label=f"group {g}", lw=1.6, drawstyle="steps-post")
            ax.set_ylabel(trace.momentum_name)
        else:
            ax.plot(trace.steps[1:], trace.metrics, color="0.35", marker=".", ms=3, lw=0.8,
                    label="metric fed to step()")
            ax.set_ylabel("metric")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    opt = ", ".join(f"{k}={v}" for k, v in OPTIMIZER_DEFAULTS[trace.optimizer].items() if k in ("momentum", "betas"))
    fig.suptitle(title or "\n".join(textwrap.wrap(trace.expr, 100)), fontsize="medium")
    axes[0].set_title(f"{trace.optimizer}({opt}), {len(trace.steps)} steps"
                     + (", corrected mode (lr_scheduler.fixed)" if trace.fixed else ""), fontsize="small", color="0.4")
    return fig


def plot(trace: Trace, out: str | Path, log: bool = False, title: str | None = None) -> Path:
    """Draw ``trace`` (see :func:`figure`) and save it to ``out`` (format from the suffix)."""
    out = Path(out)
    figure(trace, log, title).savefig(out, dpi=120)
    return out


# --------------------------------------------------------------------------- the command


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def read_metrics(path: str | Path) -> list[float]:
    """One number per line; blank lines and ``#`` comments are skipped."""
    values = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            values.append(float(line))
        except ValueError:
            raise ScheduleExprError(f"{path}:{n}: not a number: {line!r}") from None
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m optimlab plot-schedule",
        description="Plot a scheduler's learning rate (and momentum / Adam β1 when it cycles them) against the "
                    "step. EXPR is a scheduler call; the optimizer is injected, e.g. "
                    "\"OneCycleLR(max_lr=0.1, total_steps=1000)\" or \"SequentialLR([LinearLR(start_factor=0.1, "
                    "total_iters=10), CosineAnnealingLR(T_max=90)], milestones=[10])\".")
    p.add_argument("expr", help="scheduler expression (calls of scheduler names on literals only)")
    p.add_argument("--steps", type=int, help="points to plot, steps 0..N-1 (default: total_steps, the number of "
                                             "metrics + 1, or 1000)")
    p.add_argument("--lrs", type=_floats, default=[0.1], help="initial lr of each param group, comma-separated "
                                                              "(default: 0.1)")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZER_DEFAULTS), default="SGD",
                   help="SGD (momentum 0.9) or Adam (betas 0.9, 0.999): what momentum cycling acts on")
    p.add_argument("--metrics", help="file with one metric per line, fed to ReduceLROnPlateau.step()")
    p.add_argument("--log", action="store_true", help="logarithmic lr axis")
    p.add_argument("--fixed", action="store_true", help="optimlab's corrected behaviour for torch's known scheduler "
                                                        "bugs (e.g. OneCycleLR past total_steps holds its final lr)")
    p.add_argument("--out", default="schedule.png", help="output image (.png, .svg, .pdf; default: schedule.png)")
    return p


def main(argv: list[str]) -> int:
    """Run the command; returns the exit status (0 done, 1 missing matplotlib, 2 bad input)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help or a usage error, already printed by argparse
        return int(e.code or 0)
    try:
        metrics = read_metrics(args.metrics) if args.metrics else None
        trace = simulate(args.expr, args.steps, args.lrs, args.optimizer, metrics, fixed=args.fixed)
    except (ScheduleExprError, OSError, ValueError) as e:
        print(f"plot-schedule: {e}", file=sys.stderr)
        return 2
    try:
        out = plot(trace, args.out, log=args.log)
    except ImportError as e:
        print(f"plot-schedule: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # unwritable path, unknown image format
        print(f"plot-schedule: cannot write {args.out}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(trace.steps)} steps, {len(trace.lrs)} param group(s)"
          f"{', ' + trace.momentum_name if trace.momenta else ''})")
    return 0
