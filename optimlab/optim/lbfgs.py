"""L-BFGS with an optional strong-Wolfe line search (torch's form, after minFunc).

The parameters are handled as one flat vector x; ``step(closure)`` runs up to ``max_iter`` quasi-Newton
iterations. Everything here is ordinary tensor arithmetic: the two-loop recursion, cubic interpolation
and the bracketing/zoom line search of Nocedal & Wright (Alg. 3.5/3.6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import _to_scalar

from .optimizer import Optimizer, validate

__all__ = ["LBFGS", "cubic_minimum", "strong_wolfe", "two_loop_direction"]


def cubic_minimum(x1: Any, f1: Any, g1: Any, x2: Any, f2: Any, g2: Any, bounds: tuple[Any, Any] | None = None) -> Any:
    """The minimiser of the cubic through (x1, f1, f1'=g1) and (x2, f2, f2'=g2), clamped to ``bounds``
    (default: the interval between x1 and x2); the bounds' midpoint when the cubic has no minimum.

    d1 = g1 + g2 - 3(f1-f2)/(x1-x2);  d2 = √(d1² - g1g2);  x* = x2 - (x2-x1)(g2+d2-d1)/(g2-g1+2d2)  (x1 ≤ x2).
    """
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1**2 - g1 * g2
    if not disc >= 0:
        return (lo + hi) / 2.0
    d2 = disc.sqrt()
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


def strong_wolfe(evaluate: Callable[[Any], tuple[float, Tensor]], t: Any, d: Tensor, f: float, g: Tensor, gtd: Tensor,
                 c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9,
                 max_ls: int = 25) -> tuple[float, Tensor, Any, int]:
    """A step t along d satisfying f(x+td) ≤ f + c1·t·gtd and |∇f(x+td)·d| ≤ -c2·gtd.

    ``evaluate(t)`` returns (loss, flat gradient) at x + t·d. Returns (loss, gradient, t, evaluations).
    Bracketing: extrapolate by cubic interpolation until an interval containing a Wolfe point is
    found; zoom: shrink it, keeping steps at least a tenth of the interval away from its ends.
    """
    d_norm = d.abs().max()
    g = g.clone(memory_format=torch.contiguous_format)
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = g_new.dot(d)

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    it = 0
    while it < max_ls:
        if f_new > (f + c1 * t * gtd) or (it > 1 and f_new >= f_prev):
            pts, fs, gs, gtds = [t_prev, t], [f_prev, f_new], [g_prev, g_new.clone(memory_format=torch.contiguous_format)], [gtd_prev, gtd_new]  # noqa: E501
            break
        if abs(gtd_new) <= -c2 * gtd:
            pts, fs, gs, gtds = [t], [f_new], [g_new], []
            done = True
            break
        if gtd_new >= 0:
            pts, fs, gs, gtds = [t_prev, t], [f_prev, f_new], [g_prev, g_new.clone(memory_format=torch.contiguous_format)], [gtd_prev, gtd_new]  # noqa: E501
            break
        t_next = cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new.clone(memory_format=torch.contiguous_format), gtd_new
        t = t_next
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        it += 1
    if it == max_ls:  # no bracket found: fall back to [0, t]
        pts, fs, gs = [0, t], [f, f_new], [g, g_new]

    # zoom: pts[low] is the best point so far, pts[high] the other end of the bracket
    insufficient = False
    low, high = (0, 1) if fs[0] <= fs[-1] else (1, 0)
    while not done and it < max_ls:
        if abs(pts[1] - pts[0]) * d_norm < tolerance_change:
            break
        t = cubic_minimum(pts[0], fs[0], gtds[0], pts[1], fs[1], gtds[1])
        top, bottom = max(pts), min(pts)
        margin = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < margin:  # too close to an end of the bracket
            if insufficient or t >= top or t <= bottom:
                t = top - margin if abs(t - top) < abs(t - bottom) else bottom + margin
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        it += 1
        if f_new > (f + c1 * t * gtd) or f_new >= fs[low]:  # Armijo fails, or no better than the best
            pts[high], fs[high], gs[high], gtds[high] = t, f_new, g_new.clone(memory_format=torch.contiguous_format), gtd_new  # noqa: E501
            low, high = (0, 1) if fs[0] <= fs[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (pts[high] - pts[low]) >= 0:  # the old best becomes the far end
                pts[high], fs[high], gs[high], gtds[high] = pts[low], fs[low], gs[low], gtds[low]
            pts[low], fs[low], gs[low], gtds[low] = t, f_new, g_new.clone(memory_format=torch.contiguous_format), gtd_new  # noqa: E501
    return fs[low], gs[low], pts[low], evals


def two_loop_direction(flat_grad: Tensor, dirs: list[Tensor], steps: list[Tensor], rho: list[Any], h_diag: Any,
                       al: list[Any]) -> Tensor:
    """d = -H·g by the L-BFGS two-loop recursion over the pairs (y_i = ``dirs``, s_i = ``steps``),
    ρ_i = 1/(y_iᵀs_i), with H₀ = ``h_diag``·I; ``al`` receives the first loop's coefficients."""
    n = len(dirs)
    q = flat_grad.neg()
    for i in range(n - 1, -1, -1):
        al[i] = steps[i].dot(q) * rho[i]
        q.add_(dirs[i], alpha=-al[i])
    r = torch.mul(q, h_diag)
    for i in range(n):
        beta = dirs[i].dot(r) * rho[i]
        r.add_(steps[i], alpha=al[i] - beta)
    return r


class LBFGS(Optimizer):
    r"""Limited-memory BFGS as :class:`torch.optim.LBFGS` (one parameter group; all parameters on one
    device; ``step`` needs a closure that re-evaluates the loss).

    Each iteration: d = -H_k g by the two-loop recursion over the last ``history_size`` pairs
    (s = t·d, y = Δg, kept when yᵀs > 1e-10, H₀ = yᵀs/yᵀy), then x ← x + t·d with t = ``lr``
    (the first iteration: min(1, 1/‖g‖₁)·lr), or t from a strong-Wolfe line search.
    Stops at ``max_iter`` iterations, ``max_eval`` evaluations, ‖g‖∞ ≤ ``tolerance_grad``,
    or changes (‖t·d‖∞, |Δf|, gᵀd) below ``tolerance_change``.

    Args:
        params: iterable of parameters or named parameters (a single group).
        lr (float | Tensor): step length (default: 1).
        max_iter (int): iterations per ``step`` (default: 20).
        max_eval (int, optional): function evaluations per ``step`` (default: max_iter * 5 // 4).
        tolerance_grad (float): first-order optimality tolerance (default: 1e-7).
        tolerance_change (float): tolerance on function value / parameter changes (default: 1e-9).
        history_size (int): number of (s, y) pairs kept (default: 100).
        line_search_fn (str, optional): "strong_wolfe" or None (default: None).
        maximize (bool): maximize the objective instead of minimizing it (default: False). Keyword-only, new
            in torch 2.14 and offered here on every torch: L-BFGS then minimizes -f (the losses and the flat
            gradient it works with are negated; ``step`` still returns the closure's own loss).

    State (on the first parameter, torch's keys): ``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``,
    ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``, and ``al`` once history is used.
    """

    def __init__(self, params: Any, lr: float | Tensor = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None, *, maximize: bool = False) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn, maximize=maximize))
        validate(len(self.param_groups) == 1, "LBFGS doesn't support per-parameter options (parameter groups)")
        self._params: list[Tensor] = self.param_groups[0]["params"]
        self._numel_cache: int | None = None

    # --- the parameters as one flat (real) vector ---------------------------------------------------

    def _real(self) -> list[Tensor]:
        return [torch.view_as_real(p) if torch.is_complex(p) else p for p in self._params]

    def _numel(self) -> int:
        if self._numel_cache is None:
            self._numel_cache = sum(p.numel() for p in self._real())
        return self._numel_cache

    def _maximize(self) -> bool:
        # .get: a group loaded from a checkpoint of torch < 2.14 (or of optimlab before it) has no "maximize"
        return bool(self.param_groups[0].get("maximize", False))

    def _flat_grad(self) -> Tensor:
        """∇f as one vector (zeros for parameters without a gradient; sparse gradients densified); -∇f when
        maximizing."""
        parts = []
        for p in self._params:
            if p.grad is None:
                v = p.new_zeros(p.numel())
            else:
                v = (p.grad.to_dense() if p.grad.is_sparse else p.grad).view(-1)
            parts.append(torch.view_as_real(v).view(-1) if torch.is_complex(v) else v)
        flat = torch.cat(parts, 0)
        return flat.neg_() if self._maximize() else flat

    def _move(self, t: Any, d: Tensor) -> None:
        """x ← x + t·d."""
        offset = 0
        for p in self._real():
            n = p.numel()
            p.add_(d[offset:offset + n].view_as(p), alpha=t)
            offset += n
        validate(offset == self._numel(), f"Expected offset {offset} to equal {self._numel()}", AssertionError)

    def _evaluate_at(self, closure: Callable[[], Any], x0: list[Tensor], t: Any, d: Tensor) -> tuple[float, Tensor]:
        """(f, ∇f) at x0 + t·d; the parameters are put back to x0 afterwards."""
        self._move(t, d)
        loss = float(closure())
        loss = -loss if self._maximize() else loss
        grad = self._flat_grad()
        for p, saved in zip(self._params, x0, strict=True):
            p.copy_(saved)
        return loss, grad

    # torch.compile runs this step eagerly, as torch does for its LBFGS (Dynamo cannot trace the
    # closure's backward, and the line search branches on loss values read back to the host).
    @torch._disable_dynamo
    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Up to ``max_iter`` L-BFGS iterations; returns the loss the closure gave at the start."""
        validate(len(self.param_groups) == 1,
                 f"Expected exactly one param_group, but got {len(self.param_groups)}", AssertionError)
        closure = torch.enable_grad()(closure)
        if not self._params:  # nothing to optimize (an empty group): torch >= 2.14 only evaluates the closure
            return closure()
        group = self.param_groups[0]
        lr = _to_scalar(group["lr"])  # a tensor lr stays a tensor: torch stores t (= lr) in the state
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        line_search, history_size = group["line_search_fn"], group["history_size"]
        sign = -1.0 if self._maximize() else 1.0  # L-BFGS minimizes sign·f

        state = self.state[self._params[0]]  # global state, registered on the first parameter like torch
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = sign * float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if flat_grad.abs().max() <= tol_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        dirs, stps, rho = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag, prev_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            if state["n_iter"] == 1:  # steepest descent to start
                d = flat_grad.neg()
                dirs, stps, rho, h_diag = [], [], [], 1
            else:
                y = flat_grad.sub(prev_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:  # curvature condition: keep the pair
                    if len(dirs) == history_size:
                        dirs.pop(0)
                        stps.pop(0)
                        rho.pop(0)
                    dirs.append(y)
                    stps.append(s)
                    rho.append(1.0 / ys)
                    h_diag = ys / y.dot(y)
                if "al" not in state:
                    state["al"] = [None] * history_size
                d = two_loop_direction(flat_grad, dirs, stps, rho, h_diag, state["al"])

            if prev_grad is None:
                prev_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_grad.copy_(flat_grad)
            prev_loss = loss

            t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tol_change:  # not a descent direction (any more)
                break

            ls_evals = 0
            if line_search is not None:
                validate(line_search == "strong_wolfe", "only 'strong_wolfe' is supported", RuntimeError)
                x0 = [p.clone(memory_format=torch.contiguous_format) for p in self._params]
                loss, flat_grad, t, ls_evals = strong_wolfe(
                    lambda step_len: self._evaluate_at(closure, x0, step_len, d),  # noqa: B023
                    t, d, loss, flat_grad, gtd, max_ls=max_eval - evals)
                self._move(t, d)
                opt_cond = flat_grad.abs().max() <= tol_grad
            else:
                self._move(t, d)
                if n_iter != max_iter:  # the last iteration's loss is not needed (stochastic setting)
                    with torch.enable_grad():
                        out = closure()
                    loss = sign * float(out)  # outside grad mode, like torch (no requires-grad warning)
                    flat_grad = self._flat_grad()
                    opt_cond = flat_grad.abs().max() <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_eval or opt_cond:
                break
            if d.mul(t).abs().max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break

        state.update(d=d, t=t, old_dirs=dirs, old_stps=stps, ro=rho, H_diag=h_diag, prev_flat_grad=prev_grad,
                     prev_loss=prev_loss)
        return orig_loss
