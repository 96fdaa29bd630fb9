"""Configuration checks of the callback: each raises ``MisconfigurationException`` naming the argument and value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, RandomSampler


def misconfigured(name: str, value: Any, expected: str) -> MisconfigurationException:
    return MisconfigurationException(f"Expected `{name}` to be {expected}, got {value!r}.")


def check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise misconfigured(name, value, f"an int >= {minimum}")
    return value


def check_optional_int(value: Any, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise misconfigured(name, value, f"None or an int >= {minimum}")
    return value


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise misconfigured(name, value, "a bool")
    return value


def check_names(value: Any, name: str, allowed: Sequence[str], *, allow_empty: bool) -> tuple[str, ...]:
    """A sequence of distinct names among ``allowed`` (a bare string is refused: it is a sequence of letters)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise misconfigured(name, value, f"a sequence of names among {sorted(allowed)}")
    names = tuple(value)
    if (not names and not allow_empty) or any(n not in allowed for n in names) or len(set(names)) != len(names):
        raise misconfigured(name, value, f"distinct names among {sorted(allowed)}")
    return names


def check_fixed_order_loader(value: Any, name: str) -> DataLoader:
    """A DataLoader that iterates in a fixed order, as every rank reads its share of its batches by position."""
    if not isinstance(value, DataLoader):
        raise misconfigured(name, value, "a DataLoader")
    if isinstance(value.sampler, RandomSampler):
        raise MisconfigurationException(
            f"Expected `{name}` to iterate in a fixed order (every rank reads its share of the batches), "
            f"got a shuffling DataLoader ({value!r}); create it with shuffle=False."
        )
    return value


def check_guidance(guidance: Any) -> tuple[float, ...] | None:
    if guidance is None:
        return None
    values = tuple(guidance) if isinstance(guidance, Sequence) and not isinstance(guidance, str) else ()
    if (
        not values
        or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) for w in values)
        or any(w < -1 for w in values)
        or len(set(values)) != len(values)
    ):
        raise misconfigured("guidance", guidance, "None or a non-empty sequence of distinct numbers >= -1")
    return tuple(float(w) for w in values)
