"""Peak signal-to-noise ratio, and the checks every paired-image metric (PSNR, SSIM, MS-SSIM) shares.

    PSNR = 10 · log10(R² / MSE)

with ``R`` the declared ``data_range`` (never inferred from a batch: a per-batch range would make the
value depend on batching). Two averages are defined:

- ``"image"``: the mean over images of each image's PSNR (MSE over its channels and pixels), the
  value papers usually report and scikit-image's ``peak_signal_noise_ratio`` per image;
- ``"pixel"``: one PSNR from the MSE over every value of every image (torchmetrics' default).

An image identical to its target has MSE 0 and PSNR ``inf``; the ``"image"`` average is then
``inf`` too. That is the exact value, kept rather than capped at an arbitrary number of decibels.
All arithmetic is float64.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_data_range, check_image_pair, check_option

PSNRAverage = Literal["image", "pixel"]
Reduction = Literal["mean", "none"]


def images_to_squared_error(preds: Tensor, target: Tensor) -> Tensor:
    """Per-image sum of squared differences ``[N]`` in float64 (inputs as from ``check_image_pair``).

    Example:
        >>> import torch
        >>> images_to_squared_error(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2))
        tensor([4., 4.], dtype=torch.float64)
    """
    difference = preds.to(torch.float64) - target.to(torch.float64)
    return difference.square().flatten(1).sum(1)


def mse_to_psnr(mse: Tensor, data_range: float) -> Tensor:
    """``10 · log10(R² / MSE)`` in float64; an MSE of 0 gives ``inf``.

    Example:
        >>> import torch
        >>> mse_to_psnr(torch.tensor([0.25, 0.0]), data_range=1.0)
        tensor([6.0206,    inf], dtype=torch.float64)
    """
    mse = mse.to(torch.float64)
    return 10.0 * torch.log10(data_range**2 / mse)


def peak_signal_noise_ratio(
    preds: Tensor,
    target: Tensor,
    data_range: float,
    *,
    average: PSNRAverage = "image",
    reduction: Reduction = "mean",
) -> Tensor:
    """PSNR between two batches of images ``[N, C, H, W]`` (float64, in dB).

    Args:
        preds: uint8 or floating images.
        target: images of the same shape.
        data_range: the width of the value range (1.0 for images in [0, 1], 2.0 for [-1, 1], 255 for uint8).
        average: ``"image"``: mean of the per-image PSNRs; ``"pixel"``: PSNR of the MSE over all values.
        reduction: ``"mean"``: a scalar; ``"none"``: the per-image PSNRs ``[N]`` (``average="image"`` only).

    Raises:
        TypeError: bad tensor types or dtypes, or ``data_range`` not a number.
        ValueError: bad shapes, NaN/Inf, values spanning more than ``data_range``, an unknown option,
            ``reduction="none"`` with ``average="pixel"``, or an empty batch with ``reduction="mean"``.

    Example:
        >>> import torch
        >>> target = torch.zeros(2, 1, 4, 4)
        >>> preds = target + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
        >>> peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none")
        tensor([20.0000, 40.0000], dtype=torch.float64)
        >>> peak_signal_noise_ratio(preds, target, data_range=1.0, average="pixel")
        tensor(22.9671, dtype=torch.float64)
    """
    data_range = check_data_range(data_range)
    check_option(average, "average", ("image", "pixel"))
    check_option(reduction, "reduction", ("mean", "none"))
    if reduction == "none" and average == "pixel":
        raise ValueError("Expected `reduction='none'` only with `average='image'`, got average='pixel'.")
    check_image_pair(preds, target, data_range)
    if reduction == "mean" and preds.shape[0] == 0:
        raise ValueError("Expected at least one image for `reduction='mean'`, got an empty batch.")
    squared_error = images_to_squared_error(preds, target)
    values_per_image = preds[0].numel() if preds.shape[0] else 0
    if average == "pixel":
        return mse_to_psnr(squared_error.sum() / (values_per_image * preds.shape[0]), data_range)
    per_image = mse_to_psnr(squared_error / values_per_image, data_range)
    return per_image if reduction == "none" else per_image.mean()
