"""Run a function on a real 2-process torch.distributed group (gloo, CPU, 127.0.0.1) and collect what
each rank returns.

The parent hosts the rendezvous ``TCPStore`` on a port the OS picks (port 0, so no race for a free
port); each child joins it, runs ``fn(rank, world_size, *args)`` and always destroys its process group
(also when ``fn`` raises). A child's exception comes back as its formatted traceback and fails the test;
a hung child is killed after ``timeout`` seconds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

WORLD = 2
COLLECTIVE_S = 60  # seconds a collective waits for the other ranks


def _child(fn: Callable[..., Any], rank: int, world: int, port: int, args: tuple, out: Any) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep gloo's own sockets on the loopback device
    torch.set_num_threads(1)
    try:
        store = dist.TCPStore("127.0.0.1", port, world, is_master=False, timeout=_timedelta(120))
        # a collective that one rank never joins (it failed) times out instead of hanging
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=_timedelta(COLLECTIVE_S))
        try:
            out.put((rank, "ok", fn(rank, world, *args)))
        finally:
            dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
        out.put((rank, "error", traceback.format_exc()))


def _timedelta(seconds: float) -> Any:
    import datetime

    return datetime.timedelta(seconds=seconds)


def run(fn: Callable[..., Any], *args: Any, world: int = WORLD, timeout: float = 300.0) -> list[Any]:
    """``[fn(0, world, *args), fn(1, world, *args), ...]``, each computed in its own process.

    ``fn`` must be a module-level function (the children are spawned and import it by name); what it
    returns must pickle (return plain tensors / floats / dicts)."""
    store = dist.TCPStore("127.0.0.1", 0, world + 1, is_master=True, wait_for_workers=False,
                          timeout=_timedelta(120))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(fn, r, world, store.port, args, out), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while len(results) + len(errors) < world:
            try:
                rank, status, value = out.get(timeout=1.0)
            except queue.Empty:
                crashed = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
                if crashed or time.monotonic() > deadline:  # died without reporting (a crash), or hung
                    raise AssertionError(f"ranks did not report (rank, exit code; negative: signal): "
                                         f"{[(r, p.exitcode) for r, p in enumerate(procs)]}") from None
                continue
            if status == "ok":
                results[rank] = value
            else:
                errors.append(f"rank {rank}:\n{value}")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        del store
    if errors:
        raise AssertionError("\n".join(errors))
    return [results[r] for r in range(world)]
