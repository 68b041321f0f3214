"""``python -m optimlab``: ``list`` the catalogue, run the ``parity`` report, ``fuzz`` against torch,
``plot-schedule`` a scheduler."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

import torch

from . import catalog, parity
from .parity.results import CaseResult


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # logs and CI: wide enough that dotted names are never cut
        console = Console(width=220)
    return console


def markdown_table(family: str | None = None) -> str:
    """The catalogue as the README's Markdown table."""
    lines = ["| family | optimlab | torch counterpart | functional | configs |", "|---|---|---|---|---|"]
    for comp in catalog.components(family):
        fn = f"`{comp.functional}`" if comp.functional else ""
        lines.append(f"| {comp.family} | `{comp.ours_path}` | `{comp.torch_path}` | {fn} | {len(comp.cases)} |")
    return "\n".join(lines) + "\n"


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    if args.markdown:
        print(markdown_table(args.family), end="")
        return 0

    table = Table(title="optimlab catalogue")
    for col in ("family", "optimlab", "torch counterpart", "functional", "configs"):
        table.add_column(col)
    for comp in catalog.components(args.family):
        table.add_row(comp.family, comp.ours_path, comp.torch_path,
                      f"{catalog.FUNCTIONAL[0].rsplit('.', 1)[0]}.functional.{comp.functional}" if comp.functional
                      else "", str(len(comp.cases)))
    _console().print(table)
    return 0


def _summarise(results: list[CaseResult]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for r in results:
        by[(r.family, r.component)].append(r)
    rows = []
    for (family, comp), rs in by.items():
        failed = [r for r in rs if not r.passed]
        skipped = sum(r.skipped for r in rs)
        rows.append({
            "family": family, "component": comp, "configs": len(rs), "passed": len(rs) - len(failed) - skipped,
            "skipped": skipped, "worst_rel": max((r.max_rel for r in rs), default=0.0),
            "status": "PASS" if not failed else "FAIL", "failures": failed,
        })
    return rows


def _names(pattern: str | None) -> Any:
    if not pattern:
        return None
    wanted = {p.strip() for p in pattern.split(",")}
    return lambda name: name in wanted


def _device_or_exit(device: str) -> bool:
    if device == "cuda" and not torch.cuda.is_available():
        print("No CUDA device is present (torch.cuda.is_available() is False): the parity report needs a GPU "
              "for --device cuda. Run it on a machine with a CUDA GPU and a CUDA build of torch, or use "
              "--device cpu.", file=sys.stderr)
        return False
    return True


def cmd_parity(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    if not _device_or_exit(args.device):
        return 2
    dtypes = [parity.DTYPES[d] for d in args.dtype.split(",")] if args.dtype else None
    todo = parity.plan(args.family, dtypes, _names(args.only), args.compile)
    console = _console()
    results: list[CaseResult] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task("parity", total=len(todo))
        for comp, case, dt in todo:
            progress.update(task, description=f"{comp.name} [{case.name}]")
            steps = None if comp.family == "losses" else args.steps
            results.append(parity.run_case(comp, case, dt, args.device, steps, compile=args.compile))
            progress.advance(task)
    rows = _summarise(results)
    mode = " (optimlab under torch.compile vs torch eager)" if args.compile else ""
    table = Table(title=f"optimlab parity vs torch {torch.__version__} on {args.device}{mode}")
    any_skipped = any(r.skipped for r in results)
    cols = [("family", "left"), ("component", "left"), ("configs", "right"), ("passed", "right")]
    cols += [("skipped", "right")] if any_skipped else []  # the column only where the installed torch needs it
    for col, just in (*cols, ("worst rel err", "right"), ("status", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in rows:
        status = "[green]PASS[/]" if row["status"] == "PASS" else "[red]FAIL[/]"
        counts = [str(row["configs"]), str(row["passed"])] + ([str(row["skipped"])] if any_skipped else [])
        table.add_row(row["family"], row["component"], *counts, f"{row['worst_rel']:.2e}", status)
    console.print(table)
    failed = [r for r in results if not r.passed]
    skipped = [r for r in results if r.skipped]
    exact = sum(1 for r in results if r.bitwise and not r.skipped)
    console.print(f"tolerances: optimlab.parity.tolerances (bit-for-bit for {exact} of {len(results)} configs)")
    # escape(): a case name in brackets ("[maximize]") would otherwise be read as a markup tag and vanish
    for r in skipped:
        console.print(f"[yellow]SKIP[/] {escape(f'{r.component}[{r.case}] {r.dtype}: {r.message}')}",
                      markup=True, highlight=False)
    for r in failed:
        console.print(f"[red]FAIL[/] {escape(f'{r.component}[{r.case}] {r.dtype} {r.device}: {r.message}')}",
                      markup=True, highlight=False)
    total = len(results)
    tail = f", {len(skipped)} skipped" if skipped else ""
    console.print(f"{total - len(failed) - len(skipped)} passed, {len(failed)} failed{tail} ({len(rows)} components)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "device": args.device,
                       "results": [r.as_dict() for r in results]}, fh, indent=1)
    return 1 if failed else 0


def cmd_fuzz(args: argparse.Namespace) -> int:
    from .parity.fuzz import fuzz

    if not _device_or_exit(args.device):
        return 2
    console = _console()
    bad = 0
    for comp in catalog.components(args.family, _names(args.only)):
        if not comp.fuzz:
            continue
        rep = fuzz(comp, examples=args.examples, dtype=parity.DTYPES[args.dtype], device=args.device,
                   steps=args.steps)
        if rep.passed:
            console.print(f"[green]PASS[/] {comp.name}: {rep.examples} random configurations")
        else:
            bad += 1
            console.print(f"[red]FAIL[/] {comp.name}: minimal reproducer: {rep.reproducer()}", highlight=False)
    return 1 if bad else 0


def cmd_plot(argv: list[str]) -> int:
    from . import plot

    return int(plot.main(argv))


def _optim_suite() -> Any:
    """``benchmarks/optim_suite.py`` of this checkout (the suite is not part of the installed package)."""
    return _bench_module("optim_suite")


def _bench_module(name: str) -> Any:
    """``benchmarks/<name>.py`` of this checkout, loaded once per process."""
    import importlib.util
    from pathlib import Path

    key = f"optimlab_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    if not path.exists():
        raise SystemExit(f"the benchmark suite needs a source checkout ({path} is missing)")
    spec = importlib.util.spec_from_file_location(key, path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = mod  # type: ignore[union-attr]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def cmd_bench(args: argparse.Namespace) -> int:
    """Time every optimizer's step on every path (interleaved) and write benchmarks/RESULTS.md + chart."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    if args.device == "cuda" and not torch.cuda.is_available():
        print("No CUDA device is present (torch.cuda.is_available() is False).", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.state:
        return cmd_bench_state(args)
    suite = _optim_suite()
    args.rounds = 15 if args.rounds is None else args.rounds
    algos = [a.strip() for a in args.only.split(",")] if args.only else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console()) as progress:
        rows = suite.run(args.device, rounds=args.rounds, algos=algos, progress=progress)
    table = Table(title=f"optimizer step, GPT-2-mini set, {suite.machine(args.device)}, torch {torch.__version__}")
    for col in suite.HEADER:
        table.add_column(col, justify="left" if col == "optimizer" else "right")
    for cells in suite.table_rows(rows):
        table.add_row(*cells)
    _console().print(table)
    if not args.no_write:
        results = suite.HERE / "RESULTS.md"
        kept = _bench_module("bench_state").kept_section(results.read_text()) if results.exists() else None
        suite.write_results(rows, args.device, rounds=args.rounds)
        if kept:  # the `bench --state` section survives the rewrite
            results.write_text(results.read_text().rstrip("\n") + "\n\n" + kept)
        print(f"wrote {results} and {suite.HERE / 'optim_ratios.png'}")
    return 0


def cmd_bench_state(args: argparse.Namespace) -> int:
    """``bench --state``: state bytes per parameter and step time per state precision, optimlab against
    torch fp32 and the peers (benchmarks/bench_state.py); writes its section of RESULTS.md and the chart."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    bs = _bench_module("bench_state")
    rounds = 30 if args.rounds is None else args.rounds
    algos = [a.strip() for a in args.only.split(",")] if args.only else None
    peers = () if args.no_peers else tuple(bs.PEERS)
    console = _console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=not console.is_terminal) as progress:
        results, skipped = bs.run(args.device, rounds=rounds, algos=algos, peers=peers, gpt2=not args.no_gpt2,
                                  log=progress.console.print, progress=progress)
    table = Table(title=f"optimizer state precision, {bs.suite.machine(args.device)}, torch {torch.__version__}")
    for col in bs.HEADER:
        table.add_column(col, justify="left" if col in ("optimizer", "library", "state") else "right")
    for cells in bs.table_rows(results):
        table.add_row(*cells)
    console.print(table)
    for line in bs.summary_lines(results) + bs.pending_lines(results, skipped):
        console.print(line, markup=False, highlight=False)
    if not args.no_write:
        bs.write_results(results, skipped, args.device, rounds, gpt2=not args.no_gpt2)
        print(f"wrote {bs.RESULTS} (its state section) and {bs.CHART}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m optimlab", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="the catalogue with torch counterparts")
    ls.add_argument("--family", choices=catalog.FAMILIES)
    ls.add_argument("--markdown", action="store_true", help="print the README's Markdown table")
    ls.set_defaults(fn=cmd_list)
    pa = sub.add_parser("parity", help="run the parity report against torch")
    pa.add_argument("--family", choices=catalog.FAMILIES)
    pa.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    pa.add_argument("--dtype", help=f"comma-separated subset of {','.join(parity.DTYPES)} (default: each case's)")
    pa.add_argument("--steps", type=int, help="optimizer/scheduler steps (default: 50 / 1000)")
    pa.add_argument("--only", help="comma-separated component names")
    pa.add_argument("--json", help="also write every result to this JSON file")
    pa.add_argument("--compile", action="store_true",
                    help="run optimlab's side under torch.compile against torch's eager run (optimizers: 6 steps; "
                         "tolerance: optimlab.parity.tolerances, compiled rule)")
    pa.set_defaults(fn=cmd_parity)
    fz = sub.add_parser("fuzz", help="random hyperparameters (hypothesis) against torch")
    fz.add_argument("--family", choices=catalog.FAMILIES)
    fz.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    fz.add_argument("--dtype", default="float64", choices=tuple(parity.DTYPES))
    fz.add_argument("--examples", type=int, default=25)
    fz.add_argument("--steps", type=int, default=10)
    fz.add_argument("--only", help="comma-separated component names")
    fz.set_defaults(fn=cmd_fuzz)
    sub.add_parser("plot-schedule", help="plot a scheduler's lr (and momentum) against step", add_help=False)
    be = sub.add_parser("bench", help="optimizer step benchmark: torch's paths, optimlab's, the memory floor")
    be.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    be.add_argument("--rounds", type=int, help="timed rounds (default: 15; --state: 30)")
    be.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    be.add_argument("--only", help="comma-separated optimizer names")
    be.add_argument("--no-write", action="store_true", help="print the table only")
    be.add_argument("--state", action="store_true",
                    help="state precision instead (issue 27): state bytes/param and step time of optimlab's fp32, "
                         "bf16 and int8 state against torch fp32, bitsandbytes and torchao "
                         "(benchmarks/bench_state.py; writes its section of RESULTS.md and state_tradeoff.png)")
    be.add_argument("--no-peers", action="store_true", help="--state: leave bitsandbytes and torchao out")
    be.add_argument("--no-gpt2", action="store_true",
                    help="--state: skip the state bytes on the GPT-2-mini set (Adam, AdamW)")
    be.set_defaults(fn=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "plot-schedule":
        return cmd_plot(argv[1:])
    args = parser().parse_args(argv)
    return int(args.fn(args))
