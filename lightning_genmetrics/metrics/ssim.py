"""SSIM and MS-SSIM as streaming metrics: a float64 sum of per-image values and an int64 image count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_data_range
from lightning_genmetrics.functional.ssim import (
    MS_SSIM_BETAS,
    SSIMBorder,
    check_betas,
    check_ssim_options,
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)
from lightning_genmetrics.metrics._base import SummedStateMetric


class _MeanSimilarity(SummedStateMetric):
    """The shared shell: window options checked once, state ``similarity_sum`` and ``num_images``."""

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        data_range: float,
        kernel_size: int,
        sigma: float,
        k1: float,
        k2: float,
        border: SSIMBorder,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_range = check_data_range(data_range)
        self.kernel_size, self.sigma, self.k1, self.k2 = check_ssim_options(kernel_size, sigma, k1, k2, border)
        self.border = border
        self.add_state("similarity_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def _per_image(self, preds: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of image pairs ``[N, C, H, W]`` (uint8 or float, any number of channels).

        Raises:
            TypeError: not tensors, or a dtype other than uint8 or floating point.
            ValueError: not 4-D, different shapes, images smaller than the metric's minimum size,
                NaN/Inf, or values spanning more than ``data_range``.
        """
        per_image = self._per_image(preds, target)
        self._accumulate_batch(per_image, similarity_sum=per_image.sum(), num_images=torch.tensor(per_image.shape[0]))

    def _count(self) -> int:
        return int(self.num_images)

    def compute(self) -> Tensor:
        """The mean over all images seen (float64 scalar).

        Raises:
            RuntimeError: no images yet.
        """
        self._check_not_empty()
        return self.similarity_sum / self.num_images


class StructuralSimilarityIndexMeasure(_MeanSimilarity):
    """SSIM, the mean over images of each image's mean SSIM map, streamed over batches of image pairs.

    Each image's value is scikit-image's ``structural_similarity(x, y, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=R, channel_axis=0)`` with the default
    ``border="valid"`` (see :mod:`lightning_genmetrics.functional.ssim` for the formula, the border
    policy and the float64 computation with two 1-D Gaussian passes).

    State: the float64 sum of per-image SSIMs and the int64 number of images; batches, objects
    (``merge_state``) and DDP ranks merge by addition. ``forward`` returns the batch's per-image
    SSIMs ``[N]``; nothing per-image is kept.

    Args:
        data_range: the width of the value range (1.0 for [0, 1], 2.0 for [-1, 1], 255 for uint8);
            required, never inferred from a batch.
        kernel_size: the Gaussian window's number of taps (odd).
        sigma: its standard deviation in pixels.
        k1: luminance constant, ``C1 = (k1·data_range)²``.
        k2: contrast constant, ``C2 = (k2·data_range)²``.
        border: ``"valid"`` (no padding; images need at least ``kernel_size`` pixels per side) or
            ``"symmetric"`` (mirrored edges, every pixel counted).
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: a non-numeric option.
        ValueError: an even or non-positive ``kernel_size``, non-positive ``data_range``, ``sigma``,
            ``k1`` or ``k2``, or an unknown ``border``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> metric = StructuralSimilarityIndexMeasure(data_range=1.0)
        >>> target = torch.rand(4, 3, 32, 32)
        >>> metric(target, target)
        tensor([1., 1., 1., 1.], dtype=torch.float64)
        >>> metric.update((target + 0.1 * torch.randn_like(target)).clamp(0, 1), target)
        >>> bool(0.5 < metric.compute() < 1.0)
        True
    """

    def __init__(
        self,
        data_range: float,
        kernel_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        *,
        border: SSIMBorder = "valid",
        **kwargs: Any,
    ) -> None:
        super().__init__(data_range, kernel_size, sigma, k1, k2, border, **kwargs)

    def _per_image(self, preds: Tensor, target: Tensor) -> Tensor:
        return structural_similarity_index_measure(
            preds,
            target,
            self.data_range,
            kernel_size=self.kernel_size,
            sigma=self.sigma,
            k1=self.k1,
            k2=self.k2,
            border=self.border,
            reduction="none",
        )


class MultiScaleStructuralSimilarityIndexMeasure(_MeanSimilarity):
    """MS-SSIM, the mean over images of each image's multi-scale SSIM, streamed over batches of image pairs.

    One scale per weight in ``betas`` (default: the five standard weights of Wang et al., 2003), 2×2
    averaging between scales; a negative contrast-structure or coarsest SSIM term counts as 0, and
    images must be at least ``kernel_size · 2^(len(betas) - 1)`` pixels per side (176 for the
    defaults) with ``border="valid"``: smaller ones raise an error naming that size. See
    :mod:`lightning_genmetrics.functional.ssim`.

    State: the float64 sum of per-image values and the int64 number of images. ``forward`` returns
    the batch's per-image values ``[N]``; nothing per-image is kept.

    Args:
        data_range: the width of the value range; required.
        kernel_size: the Gaussian window's number of taps (odd).
        sigma: its standard deviation in pixels.
        k1: luminance constant.
        k2: contrast constant.
        betas: the weight of each scale, finest first.
        border: ``"valid"`` or ``"symmetric"``, at every scale.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: a non-numeric option.
        ValueError: a bad window option, ``data_range``, ``border`` or ``betas``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> metric = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, betas=(0.5, 0.5))
        >>> target = torch.rand(2, 1, 24, 24)
        >>> metric.update(target, target)
        >>> metric.compute()
        tensor(1., dtype=torch.float64)
    """

    def __init__(
        self,
        data_range: float,
        kernel_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        *,
        betas: Sequence[float] = MS_SSIM_BETAS,
        border: SSIMBorder = "valid",
        **kwargs: Any,
    ) -> None:
        super().__init__(data_range, kernel_size, sigma, k1, k2, border, **kwargs)
        self.betas = check_betas(betas)

    def _per_image(self, preds: Tensor, target: Tensor) -> Tensor:
        return multiscale_structural_similarity_index_measure(
            preds,
            target,
            self.data_range,
            kernel_size=self.kernel_size,
            sigma=self.sigma,
            k1=self.k1,
            k2=self.k2,
            betas=self.betas,
            border=self.border,
            reduction="none",
        )


SSIM = StructuralSimilarityIndexMeasure
MS_SSIM = MultiScaleStructuralSimilarityIndexMeasure
