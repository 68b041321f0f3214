"""The catalogue: every component optimlab provides, its torch twin, and the configurations that
exercise each constructor argument.

It is the single source read by the parity engine, the tests, the CLI (`python -m optimlab list`) and
the README table. Adding a component means adding one :class:`Component` to the ``COMPONENTS`` list of a file in
this package (one file per family or sub-family; every module here is collected).

Components are named by dotted strings and resolved lazily, so reading the catalogue imports
nothing heavy and the package never binds torch's implementations at import time.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

FAMILIES = ("losses", "optim", "sched")

# Namespaces in which a component of each family is looked up by name.
NAMESPACES: dict[str, tuple[str, str]] = {
    "losses": ("optimlab.nn", "torch.nn"),
    "optim": ("optimlab.optim", "torch.optim"),
    "sched": ("optimlab.optim.lr_scheduler", "torch.optim.lr_scheduler"),
}
FUNCTIONAL = ("optimlab.nn.functional", "torch.nn.functional")


def resolve(dotted: str) -> Any:
    """Import ``a.b.C`` and return ``C`` (or the module ``a.b`` itself)."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        mod, _, attr = dotted.rpartition(".")
        return getattr(importlib.import_module(mod), attr)


@dataclass(frozen=True)
class Case:
    """One configuration of a component.

    ``kwargs`` are the constructor arguments (also the functional form's keyword arguments for a loss).
    ``bitwise`` marks cases where optimlab must equal torch bit for bit (checked with ``==``);
    other cases use the tolerance table in :mod:`optimlab.parity.tolerances`.
    ``extra`` holds family-specific settings read by that family's engine (documented there):
    losses: ``inputs`` (callable ``(gen, dtype, device) -> tuple``), ``grad_args``, ``double_backward``,
    ``functional``; optim: ``groups``, ``closure``, ``model``, ``lr_tensor``, ``sparse``, ``complex``;
    sched: ``build`` (callable ``(namespace, optimizer) -> scheduler``), ``optimizer``, ``lrs``,
    ``metrics``.
    ``since`` names the torch release that added the API the case exercises (e.g. ``"2.14"`` for
    ``LBFGS(maximize=True)``): optimlab offers it on every torch, but there is nothing to compare against on
    an older torch, so the parity engine reports the case as skipped there, with the reason (:func:`unmet`).
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    bitwise: bool = False
    dtypes: tuple[torch.dtype, ...] = (torch.float64, torch.float32)
    extra: Mapping[str, Any] = field(default_factory=dict)
    since: str | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.extra.get(key, default)


def torch_has(release: str) -> bool:
    """Whether the installed torch is ``release`` (e.g. "2.14") or newer. Local and pre-release tags
    (2.14.1+cu130, 2.15.0a0) count as their release, so a nightly counts as the release it leads to."""
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])

    want = parts(release)
    return parts(torch.__version__)[: len(want)] >= want


def unmet(case: Case) -> str | None:
    """Why ``case`` cannot be compared on the installed torch (its ``since`` is newer), or None."""
    if case.since is None or torch_has(case.since):
        return None
    return f"needs torch>={case.since} (the API it exercises is new there); installed: torch {torch.__version__}"


#: Keyword arguments optimlab's classes offer that an older torch lacks: {"family:Name": {argument: release}}.
#: The drop-in signature test expects exactly these extra parameters where the installed torch predates them.
NEWER_API: dict[str, dict[str, str]] = {"optim:LBFGS": {"maximize": "2.14"}}


@dataclass(frozen=True)
class FuzzArg:
    """A valid range for one argument, turned into a hypothesis strategy by the fuzzer.

    kind: ``"float"`` (lo, hi), ``"logfloat"`` (lo, hi > 0, drawn log-uniformly), ``"int"`` (lo, hi),
    ``"bool"``, ``"choice"`` (options). Names starting with ``_`` are engine inputs, not constructor
    arguments (losses: ``_scale`` multiplies the floating inputs).
    """

    kind: str
    lo: float = 0.0
    hi: float = 1.0
    options: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Component:
    """A catalogued component: ``name`` is the same in optimlab's and torch's namespace."""

    family: str
    name: str
    cases: tuple[Case, ...]
    functional: str | None = None
    fuzz: Mapping[str, FuzzArg] = field(default_factory=dict)
    fuzz_base: Case | None = None  # the case whose kwargs/extra the fuzzer starts from
    note: str = ""
    namespace: tuple[str, str] | None = None  # (ours, torch's) when not the family's, e.g. swa_utils

    @property
    def namespaces(self) -> tuple[str, str]:
        return self.namespace or NAMESPACES[self.family]

    @property
    def ours_path(self) -> str:
        return f"{self.namespaces[0]}.{self.name}"

    @property
    def torch_path(self) -> str:
        return f"{self.namespaces[1]}.{self.name}"

    def ours(self) -> Any:
        return resolve(self.ours_path)

    def reference(self) -> Any:
        return resolve(self.torch_path)

    def case(self, name: str) -> Case:
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no case {name!r}")


def _load() -> dict[str, Component]:
    """Collect ``COMPONENTS`` from every module of this package (one file per family or sub-family)."""
    import pkgutil

    out: dict[str, Component] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for comp in getattr(mod, "COMPONENTS", ()):
            key = f"{comp.family}:{comp.name}"
            if key in out:
                raise ValueError(f"{key} is catalogued twice")
            out[key] = comp
    return out


_CATALOGUE: dict[str, Component] | None = None


def components(family: str | None = None, names: Callable[[str], bool] | None = None) -> list[Component]:
    """All catalogued components, optionally of one family and filtered by name."""
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = _load()
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    order = {f: i for i, f in enumerate(FAMILIES)}
    return [
        c
        for c in sorted(_CATALOGUE.values(), key=lambda c: (order[c.family], c.name))
        if (family is None or c.family == family) and (names is None or names(c.name))
    ]


def get(family: str, name: str) -> Component:
    for c in components(family):
        if c.name == name:
            return c
    raise KeyError(f"no {family} component named {name!r}")
