"""Collectives used to synchronise metric states: sums are all-reduced, never gathered; configurations agreed."""

from __future__ import annotations

import hashlib
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


def configuration_digest(configuration: dict[str, Any]) -> int:
    """A 62-bit digest of ``configuration`` that every process computes alike (``hash`` is salted per process).

    62 bits, so that its negation also fits an int64 (see ``agree_configuration``).

    Example:
        >>> configuration_digest({"splits": 10}) == configuration_digest({"splits": 10})
        True
        >>> configuration_digest({"splits": 10}) == configuration_digest({"splits": 5})
        False
    """
    text = repr(sorted(configuration.items()))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 2


def agree_configuration(configuration: dict[str, Any], device: torch.device, group: Any = None, *, owner: str) -> None:
    """Raise the same ``ValueError`` on every rank of ``group`` when the ranks' ``configuration`` differ.

    Ranks whose states were built from different arguments would issue collectives of different
    sizes or numbers, which abort the process inside the backend or hang until its timeout. When
    the configurations agree this costs one all-reduce of two int64 (the largest digest and the
    largest negated digest, i.e. the smallest); only on a mismatch are the configurations
    gathered, so that every rank can name the differing entries and raise the same error.
    """
    digest = configuration_digest(configuration)
    bounds = torch.tensor([digest, -digest], dtype=torch.int64, device=device)
    dist.all_reduce(bounds, op=dist.ReduceOp.MAX, group=group)
    largest, negated_smallest = bounds.tolist()
    if largest == -negated_smallest:
        return
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, (dist.get_rank(), configuration), group=group)
    raise ValueError(configuration_mismatch(owner, gathered))


def configuration_mismatch(owner: str, configurations: list[tuple[int, dict[str, Any]]]) -> str:
    """The error message naming each entry on which the ranks' ``(rank, configuration)`` differ, with every value.

    Example:
        >>> configuration_mismatch("InceptionScore", [(0, {"splits": 10}), (1, {"splits": 5})]).split(". ")[0]
        'InceptionScore: ranks disagree on `splits`: 10 on rank 0, 5 on rank 1'
    """
    names = sorted({name for _, configuration in configurations for name in configuration})

    def shown(configuration: dict[str, Any], name: str) -> str:
        return repr(configuration[name]) if name in configuration else "absent"

    differences = [
        f"`{name}`: "
        + ", ".join(f"{shown(configuration, name)} on rank {rank}" for rank, configuration in configurations)
        for name in names
        if len({shown(configuration, name) for _, configuration in configurations}) > 1
    ]
    return (
        f"{owner}: ranks disagree on {'; '.join(differences)}. "
        "Construct the metric with the same arguments on every rank."
    )
