"""Run a function in real ``torch.distributed`` processes (gloo, CPU) and collect what each rank returns.

A hang fails the test: the processes are killed once ``timeout`` seconds have passed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, fn: Callable, world_size: int, port: int, out_dir: str, kwargs: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=60),
    )
    try:
        result = fn(rank, world_size, **kwargs)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    except BaseException:
        # Keep every rank's traceback: the first failure often shows up elsewhere as "connection closed".
        Path(out_dir, f"rank{rank}.error").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


def run_distributed(fn: Callable, world_size: int = 2, timeout: float = 180.0, **kwargs: Any) -> list[Any]:
    """Call ``fn(rank, world_size, **kwargs)`` in ``world_size`` spawned gloo processes; return their results.

    ``fn`` must be importable (a module-level function). Raises the first child error, or
    ``TimeoutError`` (after killing the children) when they run past ``timeout`` seconds.
    """
    with tempfile.TemporaryDirectory() as out_dir:
        context = mp.start_processes(
            _worker,
            args=(fn, world_size, _free_port(), out_dir, kwargs),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=max(0.1, deadline - time.monotonic())):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"distributed test did not finish within {timeout} s (a hang?)")
        except mp.ProcessRaisedException as error:
            reports = sorted(Path(out_dir).glob("rank*.error"))
            details = "\n".join(f"--- {path.stem} ---\n{path.read_text()}" for path in reports)
            raise RuntimeError(f"a rank failed:\n{details}") from error
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
        return [torch.load(Path(out_dir) / f"rank{rank}.pt", weights_only=False) for rank in range(world_size)]


@contextlib.contextmanager
def count_all_gathers() -> Iterator[list[int]]:
    """Count ``torch.distributed.all_gather`` calls inside the block (sum states must issue none)."""
    calls: list[int] = []
    original = dist.all_gather

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    dist.all_gather = counting
    try:
        yield calls
    finally:
        dist.all_gather = original


@contextlib.contextmanager
def record_all_reduces() -> Iterator[list[int]]:
    """The element count of each ``torch.distributed.all_reduce`` inside the block, in order."""
    sizes: list[int] = []
    original = dist.all_reduce

    def recording(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(tensor.numel())
        return original(tensor, *args, **kwargs)

    dist.all_reduce = recording
    try:
        yield sizes
    finally:
        dist.all_reduce = original
