"""PSNR as a streaming metric, and the shell shared by the paired-image metrics (PSNR, SSIM, MS-SSIM, LPIPS).

Their state is a handful of sums (float64 values, int64 counts), so merging two states is an addition
and DDP synchronisation is one all-reduce per dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_data_range, check_image_pair, check_option
from lightning_genmetrics.functional.psnr import PSNRAverage, images_to_squared_error, mse_to_psnr
from lightning_genmetrics.metrics._base import SummedStateMetric


class PeakSignalNoiseRatio(SummedStateMetric):
    """PSNR ``10·log10(R² / MSE)`` in dB, streamed over batches of paired images.

    State (float64 sums and int64 counts, constant size): the sum of per-image PSNRs and the number
    of images, and the sum of squared errors and the number of values. ``average`` picks which
    ``compute`` reports (see :mod:`lightning_genmetrics.functional.psnr`):

    - ``"image"`` (default): the mean over images of each image's PSNR;
    - ``"pixel"``: the PSNR of the MSE over every value seen.

    An image identical to its target has PSNR ``inf``, so the ``"image"`` mean is then ``inf``
    (exact, not capped). ``forward`` returns the batch's per-image PSNRs; nothing per-image is kept.

    Args:
        data_range: the width of the value range (1.0 for [0, 1], 2.0 for [-1, 1], 255 for uint8);
            required, never inferred from a batch.
        average: ``"image"`` or ``"pixel"``.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: ``data_range`` not a number.
        ValueError: ``data_range`` not positive and finite, or an unknown ``average``.

    Example:
        >>> import torch
        >>> metric = PeakSignalNoiseRatio(data_range=1.0)
        >>> target = torch.zeros(2, 3, 4, 4)
        >>> metric(target + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1), target)
        tensor([20.0000, 40.0000], dtype=torch.float64)
        >>> metric.compute()
        tensor(30.0000, dtype=torch.float64)
    """

    higher_is_better = True
    plot_lower_bound = 0.0

    def __init__(self, data_range: float, *, average: PSNRAverage = "image", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_range = check_data_range(data_range)
        self.average = check_option(average, "average", ("image", "pixel"))
        self.add_state("psnr_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("squared_error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_values", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of image pairs ``[N, C, H, W]`` (uint8 or float).

        Raises:
            TypeError: not tensors, or a dtype other than uint8 or floating point.
            ValueError: not 4-D, different shapes, NaN/Inf, or values spanning more than ``data_range``.
        """
        check_image_pair(preds, target, self.data_range)
        squared_error = images_to_squared_error(preds, target)
        values_per_image = preds[0].numel() if preds.shape[0] else 0
        per_image = mse_to_psnr(squared_error / max(values_per_image, 1), self.data_range)
        self._accumulate_batch(
            per_image,
            psnr_sum=per_image.sum(),
            num_images=torch.tensor(preds.shape[0]),
            squared_error_sum=squared_error.sum(),
            num_values=torch.tensor(values_per_image * preds.shape[0]),
        )

    def _count(self) -> int:
        return int(self.num_images)

    def compute(self) -> Tensor:
        """The PSNR in dB (float64 scalar), by ``average``.

        Raises:
            RuntimeError: no images yet.
        """
        self._check_not_empty()
        if self.average == "pixel":
            return mse_to_psnr(self.squared_error_sum / self.num_values, self.data_range)
        return self.psnr_sum / self.num_images


PSNR = PeakSignalNoiseRatio
