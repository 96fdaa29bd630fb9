"""Argument checks shared by the metrics: each raises with the argument's name and the value received."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is a ``bool``, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be a bool, got {value!r} of type {type(value).__name__}.")
    return value


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` of at least ``minimum``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Expected `{name}` to be an int, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"Expected `{name}` to be an int >= {minimum}, got {value}.")
    return value


def check_tensor(value: Any, name: str) -> Tensor:
    """Return ``value`` if it is a ``Tensor``, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, got {type(value).__name__}.")
    return value


def check_finite(value: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``value`` holds NaN or Inf, saying how many and where the first one is."""
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        raise ValueError(
            f"Expected `{name}` to be finite, got {int(bad.shape[0])} NaN/Inf value(s) "
            f"(first at index {tuple(int(i) for i in bad[0])}: {value[tuple(bad[0])].item()})."
        )


def check_features(value: Any, name: str, num_features: int | None = None) -> Tensor:
    """Validate a ``[N, D]`` floating feature matrix and return it as float64.

    Args:
        value: the features.
        name: the argument name used in error messages.
        num_features: the required ``D``, or ``None`` to accept any.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: not two-dimensional, wrong ``D``, or NaN/Inf present.
    """
    check_tensor(value, name)
    if not value.is_floating_point():
        raise TypeError(f"Expected `{name}` to be a floating point tensor, got dtype {value.dtype}.")
    if value.ndim != 2:
        raise ValueError(f"Expected `{name}` to have shape [N, D], got shape {tuple(value.shape)}.")
    if num_features is not None and value.shape[1] != num_features:
        raise ValueError(f"Expected `{name}` to have {num_features} features per row, got shape {tuple(value.shape)}.")
    check_finite(value, name)
    return value.to(torch.float64)
