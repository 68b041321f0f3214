"""Muon: momentum whose update is orthogonalised by a Newton–Schulz iteration (torch's form)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fused, _lowp
from ._rule import fused_rule
from .optimizer import Optimizer, to_scalar, validate

__all__ = ["Muon", "lr_ratio", "muon_momentum_rule", "muon_rule", "muon_update_rule", "newton_schulz",
           "orthogonalise"]

# Keller Jordan's quintic Newton–Schulz coefficients, step count and norm floor (torch's defaults).
NS_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
EPS = 1e-7


def newton_schulz(g: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float) -> Tensor:
    """An approximate orthogonalisation U·S'·Vᵀ of the 2-D ``g`` (S' ≈ 1), in bfloat16 like torch:

    X ← g / max(‖g‖_F, ε) (transposed so that rows ≤ columns);  k times: A ← XXᵀ;  X ← aX + (bA + cA²)X.
    """
    validate(steps < 100, "Number of steps must be less than 100 for computational efficiency")
    validate(g.dim() == 2, "Input tensor gradient must be a 2D matrix")
    validate(len(coefficients) == 3, "Coefficients must be a tuple of exactly 3 values")
    a, b, c = coefficients
    tall = g.size(0) > g.size(1)
    x = g.bfloat16()
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # bA + cA²
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


def lr_ratio(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """γ'/γ for an A×B matrix: √max(1, A/B) ("original", the default), 0.2·√max(A, B) ("match_rms_adamw") or
    √(A/B) ("spectral_unclamped", torch 2.14's: "original" without the clamp at 1)."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    if adjust_lr_fn == "spectral_unclamped":
        return math.sqrt(rows / cols)
    return 1.0


@fused_rule(slots=2, eager_fma=True, own_lr_dtype=True, outputs=("out",))
def muon_momentum_rule(p: Tensor, g: Tensor, buf: Tensor, out: Tensor, *, lr: Any, weight_decay: float,
                       momentum: float, nesterov: bool) -> None:
    """θ ← θ(1-γλ);  B ← μB + (1-μ)g;  out ← lerp(g, B, μ) (Nesterov) or B, rounded to ``out``'s dtype
    (bfloat16: the Newton–Schulz input). The decoupled decay comes first here, where torch applies it
    after the orthogonalisation: nothing in between reads θ, so the results are the same, and the
    update kernel's one product-sum is then γ'·O + θ."""
    p.mul_(1 - lr * weight_decay)
    buf.lerp_(g, 1 - momentum)
    out.copy_(g.lerp(buf, momentum) if nesterov else buf)


def orthogonalise(update: Tensor, buf: Tensor | None, *, nesterov: bool,
                  ns_coefficients: tuple[float, float, float], ns_steps: int, eps: float) -> Tensor:
    """NS(update), from the bfloat16 ``update`` that :func:`muon_momentum_rule` wrote (normalised in
    place). A bfloat16 buffer without Nesterov is normalised too, as torch's: there its ``.bfloat16()``
    is the buffer itself (``buf`` None: a stored ``state_dtype=`` buffer, which keeps the rule's value)."""
    ortho = newton_schulz(update, ns_coefficients, ns_steps, eps)
    if not nesterov and buf is not None and buf.dtype == torch.bfloat16:
        buf.copy_(update)
    return ortho


@fused_rule(slots=2, shaped=True, eager_fma=True, own_lr_dtype=True)
def muon_update_rule(p: Tensor, ortho: Tensor, ratio: Any, *, lr: Any) -> None:
    """θ ← θ - γ'·O with γ' = γ·``ratio`` (:func:`lr_ratio`; a 0-d tensor on the fused path, so that one
    compiled kernel serves every shape)."""
    p.add_(ortho, alpha=-(lr * ratio))


def muon_rule(p: Tensor, g: Tensor, buf: Tensor, *, lr: Any, weight_decay: float, momentum: float, nesterov: bool,
              ns_coefficients: tuple[float, float, float], ns_steps: int, eps: float,
              adjust_lr_fn: str | None) -> None:
    """B ← μB + (1-μ)g;  U ← lerp(g, B, μ) (Nesterov) or B;  θ ← θ(1-γλ) - γ'·NS(U), γ' = adjusted γ.

    Three parts, which ``fused=True`` runs as two compiled kernels around the eager Newton–Schulz
    iteration: :func:`muon_momentum_rule`, :func:`orthogonalise`, :func:`muon_update_rule`.
    """
    validate(g.dim() == 2, "Param gradient must be a 2D matrix")
    update = torch.empty_like(g, dtype=torch.bfloat16)
    muon_momentum_rule(p, g, buf, update, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov)
    ortho = orthogonalise(update, buf, nesterov=nesterov, ns_coefficients=ns_coefficients, ns_steps=ns_steps,
                          eps=eps)
    muon_update_rule(p, ortho, lr_ratio(adjust_lr_fn, p.shape), lr=lr)


class Muon(Optimizer):
    r"""Muon (Jordan et al.) as :class:`torch.optim.Muon`, for 2-D parameters (hidden-layer matrices;
    optimise biases and embeddings with another optimizer).

    .. math::
        B_t = \mu B_{t-1} + (1-\mu) g_t,\quad
        \tilde B_t = \begin{cases} g_t + \mu(B_t - g_t) & \text{nesterov} \\ B_t \end{cases},\quad
        \theta_t = \theta_{t-1}(1-\gamma\lambda) - \gamma'\,\mathrm{NS}^{(a,b,c)}_k(\tilde B_t;\epsilon)

    with γ' = γ·√max(1, A/B) ("original") or γ·0.2·√max(A, B) ("match_rms_adamw") for an A×B parameter.

    Args:
        params: iterable of 2-D parameters or named parameters, or of dicts defining groups.
        lr (float | Tensor): learning rate γ (default: 1e-3).
        weight_decay (float): decoupled weight decay λ (default: 0.1).
        momentum (float): momentum μ (default: 0.95).
        nesterov (bool): Nesterov momentum (default: True).
        ns_coefficients (tuple[float, float, float]): Newton–Schulz coefficients (a, b, c)
            (default: (3.4445, -4.7750, 2.0315)).
        eps (float): floor of the Frobenius norm in Newton–Schulz (default: 1e-7).
        ns_steps (int): Newton–Schulz iterations, < 100 (default: 5).
        adjust_lr_fn (str, optional): "original", "match_rms_adamw" or "spectral_unclamped" (new in torch 2.14,
            offered on every torch) (default: None, i.e. "original").
        fused (bool, optional): compile the elementwise parts around the orthogonalisation (:mod:`._fused`;
            torch has no fused Muon; default: None, i.e. unfused): the decay, the momentum update and the
            bfloat16 Newton–Schulz input in one kernel, the update in another; the Newton–Schulz matmuls
            run eagerly in between, as on the unfused path (on CPU bit for bit with it). Not a
            GradScaler-aware step (no ``_step_supports_amp_scaling``, as torch's Muon): GradScaler
            unscales the gradients and skips inf/NaN steps on the host itself.
        state_dtype (optional): the momentum buffer stored in ``torch.bfloat16`` (stochastic rounding) or
            ``"int8"`` (blockwise codes), as the elementwise optimizers' option (:mod:`._lowp`; optimlab's
            extension, default: None, i.e. the parameter's dtype). The buffer then keeps the rule's value
            for bfloat16 parameters too (torch normalises it in place there without Nesterov).

    State per parameter: ``momentum_buffer``. Non-2-D parameters raise ``ValueError`` at construction.
    """

    _lowp_state = {"momentum_buffer": True}

    def __init__(self, params: Any, lr: float | Tensor = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = EPS, ns_steps: int = NS_STEPS, adjust_lr_fn: str | None = None, *,
                 fused: bool | None = None, state_dtype: Any = None) -> None:
        validate(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
        validate(0.0 <= lr, f"Learning rate should be >= 0 but is: {lr}")
        validate(0.0 <= momentum, f"momentum should be >= 0 but is: {momentum}")
        validate(0.0 <= weight_decay, f"weight decay should be >= 0 but is: {weight_decay}")
        validate(adjust_lr_fn in (None, "original", "match_rms_adamw", "spectral_unclamped"),
                 f"Adjust learning rate function {adjust_lr_fn} is not supported")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
        if fused is not None:  # optimlab's extension (torch has no fused variant): kept out of torch's defaults
            defaults["fused"] = fused
        defaults.update(_lowp.options(state_dtype, None, defaults))
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                validate(p.ndim == 2,
                         f"Muon only supports 2D parameters whereas we found a parameter with size: {p.size()}")
        _fused.check_init(self, fused, None, False, amp=False)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Muon step over every group; returns the closure's loss when a closure is given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            params, bufs = [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                validate(not torch.is_complex(p), "Muon does not support complex parameters", RuntimeError)
                validate(not p.grad.is_sparse, "Muon does not support sparse gradients", RuntimeError)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    if group.get("fused"):
                        self._check_fused(p)
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                    self._compact(p, group)
                params.append(p)
                bufs.append(state["momentum_buffer"])
            lr = to_scalar(group["lr"])  # a tensor lr stays a tensor: torch's rounding
            if params and (_fused.active(group, params) or _lowp.enabled(group)):
                self._parts_step(group, params, bufs, lr)
                continue
            for p, buf in zip(params, bufs, strict=True):
                muon_rule(p, p.grad, buf, lr=lr, weight_decay=group["weight_decay"], momentum=group["momentum"],
                          nesterov=group["nesterov"], ns_coefficients=group["ns_coefficients"],
                          ns_steps=group["ns_steps"], eps=group["eps"], adjust_lr_fn=group["adjust_lr_fn"])
        return loss

    def _parts_step(self, group: dict[str, Any], params: list[Tensor], bufs: list[Tensor], lr: Any) -> None:
        """``fused=True`` or ``state_dtype=``: :func:`muon_momentum_rule` over all parameters first (compiled,
        and/or loading and storing the stored buffer, through :meth:`Optimizer._apply`), Newton–Schulz eager,
        then :func:`muon_update_rule` (compiled: one kernel for all shapes, γ'/γ a 0-d tensor per parameter).
        The bfloat16 Newton–Schulz inputs are scratch tensors of this step, not state."""
        grads = [p.grad for p in params]
        for g in grads:
            validate(g.dim() == 2, "Param gradient must be a 2D matrix")
        updates = [torch.empty_like(g, dtype=torch.bfloat16) for g in grads]
        self._apply(muon_momentum_rule, group, [params, grads, bufs, updates], lr=lr,
                    weight_decay=group["weight_decay"], momentum=group["momentum"], nesterov=group["nesterov"])
        ns = {"nesterov": group["nesterov"], "ns_coefficients": group["ns_coefficients"], "ns_steps": group["ns_steps"],
              "eps": group["eps"]}
        stored = _lowp.enabled(group)
        orthos = [orthogonalise(u, None if stored else b, **ns) for u, b in zip(updates, bufs, strict=True)]
        if not _fused.active(group, params):  # the first kernel could not be compiled (warned once)
            for p, o in zip(params, orthos, strict=True):
                muon_update_rule(p, o, lr_ratio(group["adjust_lr_fn"], p.shape), lr=lr)
            return
        # γ·ratio in the dtype eager computes it in: a tensor lr's (tensor arithmetic), else double
        dtype = lr.dtype if isinstance(lr, Tensor) else torch.float64
        ratios = [_ratio(group["adjust_lr_fn"], p, dtype) for p in params]
        _fused.apply(self, muon_update_rule, group, [params, orthos, ratios], {"lr": lr})


#: γ'/γ as 0-d tensors by (value, dtype, device): the fused update's per-parameter input (no copy per step)
_RATIOS: dict[tuple[float, torch.dtype, torch.device], Tensor] = {}


def _ratio(adjust_lr_fn: str | None, p: Tensor, dtype: torch.dtype) -> Tensor:
    value = lr_ratio(adjust_lr_fn, p.shape)
    key = (value, dtype, p.device)
    if key not in _RATIOS:
        _RATIOS[key] = torch.tensor(value, dtype=dtype, device=p.device)
    return _RATIOS[key]
