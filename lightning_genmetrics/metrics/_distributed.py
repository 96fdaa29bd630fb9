"""Collectives used to synchronise metric states: sums are all-reduced, never gathered."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def all_reduce_sum(tensor: Tensor, group: Any = None) -> Tensor:
    """Return the element-wise sum of ``tensor`` over the ranks of ``group`` (input untouched)."""
    out = tensor.detach().clone().contiguous()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
    return out


def all_reduce_max_int(value: int, device: torch.device, group: Any = None) -> int:
    """Return the largest of the ranks' ``value``."""
    out = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(out, op=dist.ReduceOp.MAX, group=group)
    return int(out.item())


def agree_dimension(local: int | None, device: torch.device, group: Any = None, *, what: str) -> int:
    """The size every rank must use for a lazily sized state (0 while no rank has seen data).

    Ranks that have not seen data yet adopt it; a rank that saw another size raises.
    """
    size = all_reduce_max_int(local or 0, device, group)
    if local is not None and local != size:
        raise RuntimeError(f"Ranks disagree on the {what}: {local} here, {size} on another rank.")
    return size
