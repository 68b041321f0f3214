"""What the compiled ``fused=True`` path needs to know of an update rule, stated on the rule itself.

An algorithm file declares it with :func:`fused_rule` above its ``<name>_rule``; :mod:`._fused` reads it with
:func:`spec_of`. Nothing here imports the compiler, so declaring costs nothing at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["RuleSpec", "fused_rule", "spec_of"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RuleSpec:
    """How :mod:`._fused` compiles and calls one rule.

    Attributes:
        slots: parameters per compiled call (None: :data:`._fused.SLOTS`); fewer for rules whose slot
            compiles slowly (cold compile time grows with the graph).
        shaped: the rule reduces over a parameter's dimensions, so its tensors keep their shapes.
        overrides: keyword values the fused call passes instead of the optimizer's (e.g. the rule's
            on-device formulas).
        none_args: per-parameter scalar arguments the fused call passes as None (the capturable branch).
        once: keyword values of calls that happen once per parameter in an optimizer's life (SGD's
            first momentum step): those run the chunk body eagerly instead of compiling a graph.
        promote: 0-d state tensors are computed on in float64 and stored rounded (ASGD's η, μ).
        eager_fma: product-sums round as ATen's single FMAs (bit-for-bit with the eager rule).
        own_lr_dtype: a tensor lr is used in its own dtype, as eager tensor arithmetic does.
        inductor: Inductor settings of this rule's kernels (those this torch does not know are left out).
        wide_tiles: CPU loops that move 16-bit values take 16-element vector tiles even where one of their
            statements is float32 only (:func:`._compat.wide_lowp_tiles`).
        outputs: positional arguments that are the step's scratch outputs, not state (Muon's bfloat16
            Newton–Schulz input): ``state_dtype=`` does not store them.
    """

    slots: int | None = None
    shaped: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)
    none_args: tuple[str, ...] = ()
    once: Mapping[str, Any] | None = None
    promote: bool = False
    eager_fma: bool = False
    own_lr_dtype: bool = False
    inductor: Mapping[str, Any] = field(default_factory=dict)
    wide_tiles: bool = False
    outputs: tuple[str, ...] = ()


_DEFAULT = RuleSpec()


def fused_rule(**spec: Any) -> Callable[[F], F]:
    """Decorator: attach a :class:`RuleSpec` to an update rule (returned unchanged otherwise)."""

    def mark(rule: F) -> F:
        rule.fused_spec = RuleSpec(**spec)  # type: ignore[attr-defined]
        return rule

    return mark


def spec_of(rule: Callable[..., Any]) -> RuleSpec:
    """The rule's :class:`RuleSpec` (defaults when it declares none)."""
    return getattr(rule, "fused_spec", _DEFAULT)
