"""SSIM and MS-SSIM as streaming metrics with torchmetrics 1.9's arguments: a float64 sum and an int64 image count."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_genmetrics._checks import check_bool, check_option, check_reduction
from lightning_genmetrics.functional.ssim import (
    MS_SSIM_BETAS,
    SSIM_BORDERS,
    DataRange,
    MSSSIMNormalize,
    SSIMBorder,
    SSIMReduction,
    check_betas,
    check_ssim_data_range,
    check_window_options,
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)
from lightning_genmetrics.metrics._base import SummedStateMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum

# Lists of per-image tensors, kept only when the user asks for per-image output (torchmetrics keeps them too).
_KEPT = ("similarity", "image_return")
# The most dimensions a kept tensor has: [N, C, D, H, W].
_MAX_DIMS = 5


def _gather_rows(parts: list[Tensor], device: torch.device, group: Any, gather: Callable) -> list[Tensor]:
    """Every rank's rows of ``parts`` (a list of tensors ``[n, ...]`` sharing their trailing shape), concatenated.

    A rank without rows does not know the trailing shape (an SSIM map's size); the ranks agree on it first
    with one all-reduce, so that every rank joins the gather with a tensor of the same dimensions.
    """
    local = torch.cat(parts) if parts else None
    described = torch.full((_MAX_DIMS + 1,), -1, dtype=torch.int64, device=device)
    if local is not None:
        described[0] = local.ndim
        described[1 : local.ndim] = torch.tensor(local.shape[1:], dtype=torch.int64)
    dist.all_reduce(described, op=dist.ReduceOp.MAX, group=group)
    ndim = int(described[0])
    if ndim < 0:
        return []
    trailing = tuple(int(size) for size in described[1:ndim])
    if local is not None and tuple(local.shape[1:]) != trailing:
        raise ValueError(
            f"Cannot gather per-image outputs of shape {tuple(local.shape[1:])} with those of shape {trailing} "
            "from another rank: the ranks' images differ in size."
        )
    if local is None:
        local = torch.zeros((0, *trailing), dtype=torch.float64, device=device)
    return [torch.cat(gather(local.to(device), group=group))]


def _map_sizes(parts: Tensor | list[Tensor]) -> set[tuple[int, ...]]:
    """The trailing shapes of kept per-image outputs ``[n, ...]`` (a list state, or one tensor once synced)."""
    return {tuple(part.shape[1:]) for part in (parts if isinstance(parts, list) else [parts])}


def _check_one_map_size(earlier: Tensor | list[Tensor], later: Tensor | list[Tensor]) -> None:
    """Refuse per-image outputs whose trailing shape differs from that of the earlier ones.

    Only SSIM maps can differ (a contrast-structure term is one number per image); ``compute`` concatenates
    them, so maps of two sizes would make every later ``compute`` fail.
    """
    before, new = _map_sizes(earlier), _map_sizes(later)
    if before and new and before != new:
        raise ValueError(
            f"Expected images of one size with `return_full_image=True` (maps of shape {min(before)} so far), "
            f"got maps of shape {min(new - before)}."
        )


class _Similarity(SummedStateMetric):
    """The shared shell: torchmetrics' options checked once, state ``similarity_sum`` and ``num_images``.

    With ``reduction="none"`` (and ``return_full_image`` / ``return_contrast_sensitivity``) the per-image
    values (maps) are also kept, in lists that grow with the data and are gathered across ranks.
    """

    higher_is_better = True
    is_differentiable = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        gaussian_kernel: bool,
        sigma: float | Sequence[float],
        kernel_size: int | Sequence[int],
        reduction: SSIMReduction,
        data_range: DataRange | None,
        k1: float,
        k2: float,
        border: SSIMBorder,
        return_image: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gaussian_kernel, sigmas, sizes, self.k1, self.k2 = check_window_options(
            gaussian_kernel, sigma, kernel_size, k1, k2
        )
        # Kept as given (a number, or a tuple per axis), which is what the functional form takes.
        self.sigma = sigmas if len(sigmas) > 1 else sigmas[0]
        self.kernel_size = sizes if len(sizes) > 1 else sizes[0]
        self.reduction = check_reduction(reduction)
        self.data_range = check_ssim_data_range(data_range)
        self.border = check_option(border, "border", SSIM_BORDERS)
        self.add_state("similarity_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        if self.reduction in ("none", None):
            self.add_state("similarity", [], dist_reduce_fx="cat")
        if return_image:
            self.add_state("image_return", [], dist_reduce_fx="cat")

    def _batch(self, preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per-image values ``[N]`` and the per-image output kept with them (or None)."""
        raise NotImplementedError

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of image pairs ``[N, C, H, W]`` or volumes ``[N, C, D, H, W]`` (uint8 or float).

        Raises:
            TypeError: not tensors, or a dtype other than uint8 or floating point.
            ValueError: a bad shape, images smaller than the metric's minimum size, NaN/Inf, values spanning
                more than ``data_range``, or (with ``return_full_image``) images of another size than before.
        """
        per_image, image = self._batch(preds, target)
        if image is not None:
            _check_one_map_size(self.image_return, [image])
        self._accumulate_batch(similarity_sum=per_image.sum(), num_images=torch.tensor(per_image.shape[0]))
        if hasattr(self, "similarity"):
            self.similarity.append(per_image)
        if image is not None:
            self.image_return.append(image)

    def _count(self) -> int:
        return int(self.num_images)

    def compute(self) -> Tensor | tuple[Tensor, Tensor]:
        """The mean over all images (``"elementwise_mean"``), their sum, or each image's value (float64).

        With ``return_full_image`` or ``return_contrast_sensitivity``: ``(value, per-image maps or cs terms)``.

        Raises:
            RuntimeError: no images yet.
        """
        self._check_not_empty()
        if self.reduction == "elementwise_mean":
            value = self.similarity_sum / self.num_images
        elif self.reduction == "sum":
            value = self.similarity_sum
        else:
            value = torch.cat(self.similarity)
        if hasattr(self, "image_return"):
            return value, torch.cat(self.image_return)
        return value

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Fold another metric's state (or a dict of states) into this one, as ``torchmetrics.Metric.merge_state``.

        Raises:
            ValueError: with ``return_full_image``, SSIM maps of another size than this metric's.
        """
        incoming = incoming_state.metric_state if isinstance(incoming_state, Metric) else incoming_state
        if hasattr(self, "image_return") and isinstance(incoming, dict) and "image_return" in incoming:
            theirs, ours = _map_sizes(incoming["image_return"]), _map_sizes(self.image_return)
            if theirs and ours and theirs != ours:
                raise ValueError(
                    f"Cannot merge SSIM maps of shape {min(theirs)} into a metric holding maps of shape "
                    f"{min(ours)}: `return_full_image=True` needs images of one size."
                )
        super().merge_state(incoming_state)

    def _merge_state(self, other: dict[str, Any]) -> None:
        if hasattr(self, "image_return"):
            # Checked before any state changes: `forward` merges its batch (`self`, seen alone by `update`) into
            # the earlier state (`other`) here, so this is where the batch's maps first meet the earlier ones.
            _check_one_map_size(other["image_return"], self.image_return)
        for name in ("similarity_sum", "num_images"):
            current = getattr(self, name)
            setattr(self, name, current + other[name].to(device=current.device, dtype=current.dtype))
        for name in _KEPT:
            if hasattr(self, name):
                incoming = other[name] if isinstance(other[name], list) else [other[name]]
                # The incoming (earlier) rows first, as torchmetrics' merge orders them; a kept row never
                # holds the graph of the forward call that produced it.
                rows = [*(t.to(self.device) for t in incoming), *getattr(self, name)]
                setattr(self, name, [row.detach() for row in rows])

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        summed = all_reduce_sum(torch.stack([self.similarity_sum, self.num_images.to(torch.float64)]), group)
        # Image counts are far below 2^53, so the float64 sum of counts is exact.
        self.similarity_sum, self.num_images = summed[0], summed[1].to(torch.int64)
        for name in _KEPT:
            if hasattr(self, name):
                setattr(
                    self,
                    name,
                    _gather_rows(getattr(self, name), self.device, group, dist_sync_fn or gather_all_tensors),
                )


class StructuralSimilarityIndexMeasure(_Similarity):
    """SSIM over batches of image pairs (or volumes), with torchmetrics 1.9's arguments, order and numbers.

    ``StructuralSimilarityIndexMeasure(data_range=1.0)`` gives torchmetrics' value; ``border="valid"``
    (keyword-only) gives scikit-image's and published numbers instead (Wang et al.'s valid-window protocol:
    torchmetrics also averages the map over the reflect-padded border). See
    :mod:`lightning_genmetrics.functional.ssim` for the formula, the window (its size comes from ``sigma``
    unless ``gaussian_kernel=False``), the borders and the float64 computation.

    State: the float64 sum of per-image SSIMs and the int64 number of images; batches, objects
    (``merge_state``) and DDP ranks (one all-reduce) merge by addition. ``reduction="none"`` also keeps every
    image's value, and ``return_full_image`` / ``return_contrast_sensitivity`` every image's SSIM map / cs
    term, as torchmetrics does: those lists grow with the data and are gathered across ranks.
    ``forward`` returns the batch's value (a scalar under the default reduction) and is differentiable
    when the inputs require grad; the accumulated state never holds a graph.

    Args:
        gaussian_kernel: a Gaussian window (its size ``2·⌊3.5σ + 0.5⌋ + 1`` from ``sigma``) if True, else a
            uniform ``kernel_size`` one. A number here is refused (an old positional ``data_range``).
        sigma: the Gaussian's standard deviation in pixels, one number or one per spatial axis.
        kernel_size: the uniform window's number of taps (odd), one number or one per spatial axis.
        reduction: over images: ``"elementwise_mean"``, ``"sum"``, or ``"none"``/``None`` (every image's value).
        data_range: the width of the value range (1.0 for [0, 1], 255 for uint8), or ``(low, high)`` to clamp
            the images to; required (torchmetrics' ``None``, a range inferred per batch, is refused).
        k1: luminance constant, ``C1 = (k1·data_range)²``.
        k2: contrast constant, ``C2 = (k2·data_range)²``.
        return_full_image: ``compute()`` also returns every image's SSIM map.
        return_contrast_sensitivity: ``compute()`` also returns every image's contrast-structure term.
        border: ``"reflect"`` (torchmetrics'), ``"valid"`` (scikit-image's) or ``"symmetric"``; keyword-only.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: a ``gaussian_kernel`` that is not a bool, or a non-numeric option.
        ValueError: ``data_range=None`` or a non-positive one, a bad window option, ``reduction`` or
            ``border``, or both ``return_`` options.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> metric = StructuralSimilarityIndexMeasure(data_range=1.0)
        >>> target = torch.rand(4, 3, 32, 32)
        >>> metric(target, target)
        tensor(1., dtype=torch.float64)
        >>> metric.update((target + 0.1 * torch.randn_like(target)).clamp(0, 1), target)
        >>> bool(0.5 < metric.compute() < 1.0)
        True
        >>> StructuralSimilarityIndexMeasure()
        Traceback (most recent call last):
            ...
        ValueError: Expected `data_range` to be given: ... pass data_range=1.0 for images in [0, 1], 255 for uint8 ...
    """

    def __init__(
        self,
        gaussian_kernel: bool = True,
        sigma: float | Sequence[float] = 1.5,
        kernel_size: int | Sequence[int] = 11,
        reduction: SSIMReduction = "elementwise_mean",
        data_range: DataRange | None = None,
        k1: float = 0.01,
        k2: float = 0.03,
        return_full_image: bool = False,
        return_contrast_sensitivity: bool = False,
        *,
        border: SSIMBorder = "reflect",
        **kwargs: Any,
    ) -> None:
        self.return_full_image = check_bool(return_full_image, "return_full_image")
        self.return_contrast_sensitivity = check_bool(return_contrast_sensitivity, "return_contrast_sensitivity")
        if return_full_image and return_contrast_sensitivity:
            raise ValueError(
                "Expected at most one of `return_full_image` and `return_contrast_sensitivity` to be True."
            )
        super().__init__(
            gaussian_kernel,
            sigma,
            kernel_size,
            reduction,
            data_range,
            k1,
            k2,
            border,
            return_image=return_full_image or return_contrast_sensitivity,
            **kwargs,
        )

    def _batch(self, preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        out = structural_similarity_index_measure(
            preds,
            target,
            self.gaussian_kernel,
            self.sigma,
            self.kernel_size,
            "none",
            self.data_range,
            self.k1,
            self.k2,
            self.return_full_image,
            self.return_contrast_sensitivity,
            border=self.border,  # type: ignore[arg-type]
        )
        return out if isinstance(out, tuple) else (out, None)


class MultiScaleStructuralSimilarityIndexMeasure(_Similarity):
    """MS-SSIM over batches of image pairs (or volumes), with torchmetrics 1.9's arguments, order and numbers.

    One scale per weight in ``betas`` (default: the five weights of Wang et al., 2003), 2×2 averaging between
    scales, negative terms counted as 0 (``normalize="relu"``). ``border="valid"`` (keyword-only) gives
    pytorch-msssim's value (for one channel) instead of torchmetrics'. Images must be large enough for the window at the
    coarsest scale: 96×96 for the defaults (176×176 with ``border="valid"``); smaller ones raise an error
    naming that size. See :mod:`lightning_genmetrics.functional.ssim`.

    State: as :class:`StructuralSimilarityIndexMeasure` (a float64 sum and an int64 count; per-image values
    kept only with ``reduction="none"``).

    Args:
        gaussian_kernel: a Gaussian window (its size from ``sigma``) if True, else a uniform ``kernel_size`` one.
        kernel_size: the uniform window's number of taps (odd), one number or one per spatial axis.
        sigma: the Gaussian's standard deviation in pixels, one number or one per spatial axis.
        reduction: over images: ``"elementwise_mean"``, ``"sum"``, or ``"none"``/``None``.
        data_range: the width of the value range, or ``(low, high)`` to clamp to; required.
        k1: luminance constant.
        k2: contrast constant.
        betas: the weight of each scale, finest first.
        normalize: ``"relu"`` (negative terms count as 0), ``"simple"`` (``(t + 1)/2``) or ``None``.
        border: ``"reflect"`` (torchmetrics'), ``"valid"`` (pytorch-msssim's) or ``"symmetric"``; keyword-only.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: a ``gaussian_kernel`` that is not a bool, or a non-numeric option.
        ValueError: ``data_range=None``, a bad window option, ``reduction``, ``normalize``, ``border`` or ``betas``.

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
        gaussian_kernel: bool = True,
        kernel_size: int | Sequence[int] = 11,
        sigma: float | Sequence[float] = 1.5,
        reduction: SSIMReduction = "elementwise_mean",
        data_range: DataRange | None = None,
        k1: float = 0.01,
        k2: float = 0.03,
        betas: Sequence[float] = MS_SSIM_BETAS,
        normalize: MSSSIMNormalize = "relu",
        *,
        border: SSIMBorder = "reflect",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            gaussian_kernel, sigma, kernel_size, reduction, data_range, k1, k2, border, return_image=False, **kwargs
        )
        self.betas = check_betas(betas)
        if normalize is not None:
            check_option(normalize, "normalize", ("relu", "simple"))
        self.normalize = normalize

    def _batch(self, preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        per_image = multiscale_structural_similarity_index_measure(
            preds,
            target,
            self.gaussian_kernel,
            self.sigma,
            self.kernel_size,
            "none",
            self.data_range,
            self.k1,
            self.k2,
            self.betas,
            self.normalize,
            border=self.border,  # type: ignore[arg-type]
        )
        return per_image, None


SSIM = StructuralSimilarityIndexMeasure
MS_SSIM = MultiScaleStructuralSimilarityIndexMeasure
