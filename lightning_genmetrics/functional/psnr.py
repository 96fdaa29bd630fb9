"""Peak signal-to-noise ratio, with torchmetrics' arguments and numbers.

    PSNR = 10 · log_base(R² / MSE)

``R`` is the declared ``data_range``: a width, or a ``(min, max)`` pair that also clamps both inputs into
``[min, max]`` (torchmetrics' meaning). It is never inferred from a batch: a per-batch range would make the
value depend on batching, so ``data_range=None`` is refused with the values to pass instead.

``dim`` says which dimensions one MSE is taken over:

- ``None`` (the default, as in torchmetrics): one MSE over every value of every image, one PSNR;
- a dimension or a tuple of them: one PSNR per slice over those dimensions, then ``reduction`` over the
  slices: ``"elementwise_mean"``, ``"sum"``, or ``"none"``/``None`` for every slice's value. For images
  ``[N, C, H, W]``, ``dim=(1, 2, 3)`` gives each image's PSNR, the value papers average (scikit-image's
  ``peak_signal_noise_ratio`` image by image).

A slice identical to its target has MSE 0 and PSNR ``inf``; a mean or sum over it is ``inf`` too, the exact
value rather than one capped at an arbitrary number of decibels. Arithmetic is float64, and the value is
differentiable with respect to both inputs (no ``no_grad``, no ``detach``): it serves as a loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics.utilities import rank_zero_warn

from lightning_genmetrics._checks import (
    check_data_range,
    check_finite,
    check_positive_number,
    check_reduction,
    check_tensor,
)

Reduction = Literal["elementwise_mean", "sum", "none"]
DataRange = float | tuple[float, float]
Dim = int | tuple[int, ...] | None


def check_psnr_data_range(data_range: Any) -> tuple[float, tuple[float, float] | None]:
    """The width ``R`` of ``data_range`` and, for a ``(min, max)`` pair, the bounds the inputs are clamped to.

    Raises:
        ValueError: ``None`` (the message says what to pass), a pair that is not ``min < max``, or a width
            that is not positive and finite.
        TypeError: neither a number nor a pair of numbers.

    Example:
        >>> check_psnr_data_range(255)
        (255.0, None)
        >>> check_psnr_data_range((-1, 1))
        (2.0, (-1.0, 1.0))
    """
    if data_range is None:
        raise ValueError(
            "Expected `data_range` to be given, got None: it is never inferred from a batch, since a per-batch "
            "range makes the value depend on batching. Pass data_range=1.0 for images in [0, 1], 255 for uint8, "
            "or data_range=(min, max) to clamp the images into that range."
        )
    if isinstance(data_range, Tensor) and data_range.numel() == 1:
        data_range = data_range.item()
    if isinstance(data_range, tuple):
        if len(data_range) != 2 or not all(
            isinstance(bound, (int, float)) and not isinstance(bound, bool) and math.isfinite(bound)
            for bound in data_range
        ):
            raise ValueError(f"Expected `data_range` to be (min, max) with finite numbers, got {data_range!r}.")
        low, high = float(data_range[0]), float(data_range[1])
        if not low < high:
            raise ValueError(f"Expected `data_range` = (min, max) with min < max, got {data_range!r}.")
        return high - low, (low, high)
    return check_data_range(data_range), None


def check_psnr_base(base: Any) -> float:
    """Return ``base`` as a float if it is a positive finite number other than 1, else raise naming ``base``."""
    value = check_positive_number(base, "base")
    if value == 1.0:
        raise ValueError("Expected `base` to be a positive number other than 1 (log base 1 is undefined), got 1.")
    return value


def check_psnr_dim(dim: Any) -> Dim:
    """Return ``dim`` as ``None``, an int or a tuple of ints (a list is accepted), else raise ``TypeError``."""
    if dim is None or (isinstance(dim, int) and not isinstance(dim, bool)):
        return dim
    if isinstance(dim, Sequence) and all(isinstance(d, int) and not isinstance(d, bool) for d in dim):
        return tuple(dim)
    raise TypeError(f"Expected `dim` to be None, an int or a tuple of ints, got {dim!r}.")


def resolve_dims(dim: int | tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """The non-negative dimensions ``dim`` names in a tensor of ``ndim`` dimensions (``()``: all of them).

    Raises:
        ValueError: a dimension out of range, or named twice.

    Example:
        >>> resolve_dims((1, -1), 4)
        (1, 3)
    """
    dims = (dim,) if isinstance(dim, int) else dim
    if not dims:
        return tuple(range(ndim))
    if any(not -max(ndim, 1) <= d < max(ndim, 1) for d in dims):
        raise ValueError(f"Expected `dim` to name dimensions of the {ndim}-dimensional inputs, got {dim!r}.")
    resolved = tuple(d % max(ndim, 1) for d in dims)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"Expected `dim` to name each dimension once, got {dim!r}.")
    return resolved


def check_psnr_pair(preds: Any, target: Any, data_range: float | None) -> None:
    """Check two tensors of any rank for PSNR: integer or floating dtypes, one shape, finite values.

    With a ``data_range`` width, ``target`` (the reference images) must span at most that width (relative
    slack 1e-6): a wider span means the declared range is not the data's (the usual mistake: 0..255 images
    with ``data_range=1``). ``preds`` may overshoot it: a model's raw output in a loss often does.

    Raises:
        TypeError: not tensors, or a complex or bool dtype.
        ValueError: different shapes, NaN/Inf, or ``target`` spanning more than ``data_range``.
    """
    for name, values in (("preds", preds), ("target", target)):
        check_tensor(values, name)
        if values.is_complex() or values.dtype == torch.bool:
            raise TypeError(f"Expected `{name}` to be of an integer or floating point dtype, got {values.dtype}.")
    if preds.shape != target.shape:
        raise ValueError(
            f"Expected `preds` and `target` to have the same shape, got {tuple(preds.shape)} and {tuple(target.shape)}."
        )
    if preds.numel() == 0:
        return
    for name, values in (("preds", preds), ("target", target)):
        if values.is_floating_point():
            check_finite(values, name)
    if data_range is not None:
        smallest, largest = (value.item() for value in torch.aminmax(target.detach()))
        if largest - smallest > data_range * (1 + 1e-6):
            raise ValueError(
                f"Expected the values of `target` to span at most data_range={data_range:g}, got values in "
                f"[{smallest:.6g}, {largest:.6g}]. Pass the range the images really have (1.0 for [0, 1], 255 "
                "for uint8), or data_range=(min, max) to clamp them into it."
            )


def images_to_squared_error_sums(preds: Tensor, target: Tensor, dim: Dim = None) -> tuple[Tensor, int]:
    """Sums of squared differences in float64 over ``dim`` (one per slice; a scalar over all values for ``None``),
    and the number of values in each sum.

    Example:
        >>> import torch
        >>> images_to_squared_error_sums(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2), dim=(1, 2, 3))
        (tensor([4., 4.], dtype=torch.float64), 4)
    """
    difference = preds.to(torch.float64) - target.to(torch.float64)
    if dim is None:
        return difference.square().sum(), difference.numel()
    dims = resolve_dims(dim, difference.ndim)
    if difference.ndim == 0:
        return difference.square(), 1
    return difference.square().sum(dim=dims), math.prod(difference.shape[d] for d in dims)


def mse_to_psnr(mse: Tensor, data_range: float, base: float = 10.0) -> Tensor:
    """``10 · log_base(R² / MSE)`` in float64; an MSE of 0 gives ``inf``.

    Example:
        >>> import torch
        >>> mse_to_psnr(torch.tensor([0.25, 0.0]), data_range=1.0)
        tensor([6.0206,    inf], dtype=torch.float64)
    """
    return torch.log(data_range**2 / mse.to(torch.float64)) * (10.0 / math.log(base))


def reduce_values(values: Tensor, reduction: str) -> Tensor:
    """``"elementwise_mean"``, ``"sum"`` or ``"none"`` (unchanged) over ``values``."""
    if reduction == "elementwise_mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def warn_reduction_without_dim(reduction: str, dim: Dim) -> None:
    """torchmetrics' warning: with ``dim=None`` there is one PSNR, so ``reduction`` changes nothing."""
    if dim is None and reduction != "elementwise_mean":
        rank_zero_warn(f"The `reduction={reduction}` will not have any effect when `dim` is None.", UserWarning)


def peak_signal_noise_ratio(
    preds: Tensor,
    target: Tensor,
    data_range: DataRange,
    base: float = 10.0,
    reduction: Reduction | None = "elementwise_mean",
    dim: Dim = None,
) -> Tensor:
    """PSNR between two tensors of any shape, in float64 (torchmetrics' arguments, order and value).

    Args:
        preds: estimated images (integer or floating dtype), of any shape.
        target: reference images of the same shape.
        data_range: the width of the value range (1.0 for images in [0, 1], 2.0 for [-1, 1], 255 for uint8),
            or ``(min, max)``: both inputs are clamped into it and ``R = max - min``. Never inferred.
        base: the base of the logarithm (10 gives decibels).
        reduction: over the slices of ``dim``: ``"elementwise_mean"``, ``"sum"``, or ``"none"``/``None``
            (every slice's PSNR). Without ``dim`` there is one PSNR, and any other value warns (torchmetrics).
        dim: the dimensions of one MSE (an int or a tuple); ``None``: all of them, one PSNR over everything.
            ``dim=(1, 2, 3)`` on ``[N, C, H, W]`` gives per-image PSNRs.

    Raises:
        TypeError: bad tensor types or dtypes, ``data_range``, ``base`` or ``dim`` of a wrong type.
        ValueError: ``data_range=None`` (the message says what to pass), a bad ``data_range``, ``base``,
            ``reduction`` or ``dim``, different shapes, NaN/Inf, ``target`` spanning more than ``data_range``,
            or no values to average.

    Example:
        >>> import torch
        >>> target = torch.zeros(2, 1, 4, 4)
        >>> preds = target + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
        >>> peak_signal_noise_ratio(preds, target, data_range=1.0)
        tensor(22.9671, dtype=torch.float64)
        >>> peak_signal_noise_ratio(preds, target, 1.0, reduction="none", dim=(1, 2, 3))
        tensor([20.0000, 40.0000], dtype=torch.float64)
    """
    width, bounds = check_psnr_data_range(data_range)
    base = check_psnr_base(base)
    reduction = check_reduction(reduction)
    dim = check_psnr_dim(dim)
    warn_reduction_without_dim(reduction, dim)
    check_psnr_pair(preds, target, None if bounds else width)
    if bounds is not None:
        preds, target = (values.to(torch.float64).clamp(*bounds) for values in (preds, target))
    squared_error, count = images_to_squared_error_sums(preds, target, dim)
    if count == 0 or (squared_error.numel() == 0 and reduction == "elementwise_mean"):
        raise ValueError(f"Expected values to compare, got inputs of shape {tuple(preds.shape)} (dim={dim!r}).")
    return reduce_values(mse_to_psnr(squared_error / count, width, base), reduction)
