"""Argument checks shared by the metrics: each raises with the argument's name and the value received."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

# Float arithmetic such as (x + 1) / 2 can overshoot a bound by a few ulps; more than this is an error.
RANGE_TOLERANCE = 1e-6


def values_outside(values: Tensor, low: float, high: float) -> tuple[float, float] | None:
    """``(smallest, largest)`` of ``values`` when they leave ``[low, high]`` by more than ``RANGE_TOLERANCE`` of
    its width, else ``None`` (also for an empty tensor); callers word the error for their argument.

    Example:
        >>> values_outside(torch.tensor([0.0, 1.0 + 1e-9]), 0.0, 1.0) is None
        True
        >>> values_outside(torch.tensor([-0.5, 0.25]), 0.0, 1.0)
        (-0.5, 0.25)
    """
    if values.numel() == 0:
        return None
    slack = RANGE_TOLERANCE * (high - low)
    smallest, largest = (float(value) for value in torch.aminmax(values))
    if smallest < low - slack or largest > high + slack:
        return smallest, largest
    return None


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


def check_positive_number(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number > 0, else raise naming ``name``.

    Raises:
        TypeError: not an int or float (bools are refused).
        ValueError: not finite, or not > 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected `{name}` to be a positive number, got {value!r} of type {type(value).__name__}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Expected `{name}` to be a positive finite number, got {value}.")
    return float(value)


def check_data_range(value: Any) -> float:
    """Return ``data_range`` as a float: the width ``max - min`` of the values the images can take.

    Raises:
        TypeError: not an int or float.
        ValueError: not finite, or not > 0.
    """
    return check_positive_number(value, "data_range")


# torchmetrics' `reduction` values for its image metrics (LPIPS says "mean" instead of "elementwise_mean").
REDUCTIONS: tuple[str | None, ...] = ("elementwise_mean", "sum", "none", None)


def check_reduction(reduction: Any, options: tuple[str | None, ...] = REDUCTIONS) -> str:
    """Return ``reduction`` with ``None`` spelled ``"none"``, or raise ``ValueError`` listing ``options``."""
    if reduction is not None and not (isinstance(reduction, str) and reduction in options):
        raise ValueError(f"Expected `reduction` to be one of {options}, got {reduction!r}.")
    return "none" if reduction is None else reduction


def check_option(value: Any, name: str, options: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``options``, else raise ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"Expected `{name}` to be one of {options}, got {value!r}.")
    return value


def check_image_pair(preds: Any, target: Any, data_range: float) -> tuple[Tensor, Tensor]:
    """Check two batches of images ``[N, C, H, W]`` for a paired metric and return them unchanged.

    Images are uint8 or floating point, of the same shape, finite, and their values span at most
    ``data_range`` (``max - min``, with a relative slack of 1e-6): a wider span means the declared
    range is not the range of the data (the usual mistake: 0..255 images with ``data_range=1``).

    Raises:
        TypeError: not tensors, or a dtype other than uint8 or floating point.
        ValueError: not 4-D (or C, H or W is 0), different shapes, NaN/Inf, or values spanning more than ``data_range``.
    """
    for name, images in (("preds", preds), ("target", target)):
        check_tensor(images, name)
        if not (images.is_floating_point() or images.dtype == torch.uint8):
            raise TypeError(f"Expected `{name}` to be uint8 or floating point, got dtype {images.dtype}.")
        if images.ndim != 4 or 0 in images.shape[1:]:
            raise ValueError(
                f"Expected `{name}` to have shape [N, C, H, W] with C, H, W > 0, got shape {tuple(images.shape)}."
            )
    if preds.shape != target.shape:
        raise ValueError(
            f"Expected `preds` and `target` to have the same shape, got {tuple(preds.shape)} and {tuple(target.shape)}."
        )
    if preds.numel() == 0:
        return preds, target
    for name, images in (("preds", preds), ("target", target)):
        smallest, largest = (value.item() for value in torch.aminmax(images))
        if not (math.isfinite(smallest) and math.isfinite(largest)):
            check_finite(images, name)
        if largest - smallest > data_range * (1 + RANGE_TOLERANCE):
            raise ValueError(
                f"Expected the values of `{name}` to span at most data_range={data_range:g}, got values in "
                f"[{smallest:.6g}, {largest:.6g}]. Pass the range the images really have, or clamp them to it."
            )
    return preds, target
