"""Segmentation metrics: dataset-level scores from a confusion matrix (``SegmentationMetrics``) and torchmetrics'
per-image ``MeanIoU``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_positive_int
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.functional.segmentation import (
    InputFormat,
    check_absent_score,
    check_ignore_index,
    check_mean_iou_arguments,
    confusion_matrix_to_scores,
    iou_sums_to_mean_iou,
    labels_to_confusion_matrix,
    labels_to_image_iou_sums,
    overlaps_to_iou_sums,
    segmentation_inputs_to_image_overlaps,
    segmentation_inputs_to_labels,
)
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum

_PER_IMAGE_STATES = ("image_iou_sum", "image_count")


class SegmentationMetrics(SufficientStatisticMetric):
    """IoU, Dice, pixel accuracy, mean class accuracy, precision and recall of label maps.

    State: one int64 ``[C, C]`` confusion matrix ``confmat`` (rows: truth, columns: prediction),
    so memory is ``8·C²`` bytes whatever the number of images and DDP sync is one all-reduce. An
    update is one ``bincount`` of ``target·C + pred``: O(pixels) memory, no ``N × C²`` tensor, and
    the same integer counts on every run. Every score comes from the summed matrix in float64
    (:func:`~lightning_genmetrics.functional.segmentation.confusion_matrix_to_scores`), so ``miou``
    is the dataset-level mean IoU (per class over all pixels, then the mean over classes).

    Besides the means over classes (``miou``, ``mdice``: torchmetrics' ``MulticlassJaccardIndex`` and
    ``MulticlassF1Score`` with ``average="macro"``), ``compute`` gives the pooled ``iou_micro`` and
    ``dice_micro`` (``average="micro"``) and the ``iou_weighted`` and ``dice_weighted`` weighted by each
    class's true pixels (``average="weighted"``), all from the same matrix.

    ``per_image=True`` also reports ``per_image_miou``, the mean over images of each image's mIoU
    (a different number, often confused with ``miou``, and not torchmetrics' ``MeanIoU`` either: see
    :class:`MeanIoU`): two more states, a float64 sum and an int64 image count.

    ``forward`` returns the dict of the batch's own scores (and accumulates the batch); log its
    entries, e.g. ``self.log_dict({f"val/{k}": v for k, v in scores.items() if v.ndim == 0})``.

    Classes absent from both truth and prediction get NaN IoU and Dice and are left out of the
    means by default (``absent_score`` sets a value for them instead, and then they count); see
    :mod:`lightning_genmetrics.functional.segmentation` for the exact conventions.

    Args:
        num_classes: the number of classes ``C``.
        ignore_index: a target value whose pixels are not counted (e.g. 255); if it lies in
            ``[0, C)`` that class is also left out of the means.
        absent_score: the IoU and Dice given to a class absent from truth and prediction.
        per_image: also keep the per-image mean IoU.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: ``num_classes`` < 1, ``absent_score`` outside [0, 1].

    Example:
        >>> import torch
        >>> metric = SegmentationMetrics(num_classes=3, ignore_index=255)
        >>> target = torch.tensor([[[0, 0, 1], [2, 2, 255]]])
        >>> preds = torch.tensor([[[0, 1, 1], [2, 0, 0]]])
        >>> metric.update(preds, target)
        >>> scores = metric.compute()
        >>> scores["iou"].tolist(), scores["pixel_accuracy"].item()
        ([0.3333333333333333, 0.5, 0.5], 0.6)
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        *,
        absent_score: float | None = None,
        per_image: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.ignore_index = check_ignore_index(ignore_index)
        self.absent_score = check_absent_score(absent_score)
        self.per_image = check_bool(per_image, "per_image")
        self.add_state("confmat", torch.zeros(num_classes, num_classes, dtype=torch.int64), dist_reduce_fx="sum")
        if per_image:
            self.add_state("image_iou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("image_count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of predicted and true label maps.

        Args:
            preds: integer label maps ``[N, ...]`` of ``target``'s shape, or floating class scores
                ``[N, C, ...]`` (argmax over dim 1).
            target: integer label maps ``[N, ...]`` in ``[0, C)`` or ``ignore_index``.

        Raises:
            TypeError: non-tensor input, non-integer ``target``, ``preds`` neither integer nor floating.
            ValueError: shapes that do not match, NaN scores, labels out of range.
        """
        pred_labels, target_labels = segmentation_inputs_to_labels(preds, target, self.num_classes, self.ignore_index)
        confmat = labels_to_confusion_matrix(pred_labels, target_labels, self.num_classes)
        if self.per_image:
            iou_sum, count = labels_to_image_iou_sums(
                pred_labels,
                target_labels,
                self.num_classes,
                absent_score=self.absent_score,
                ignore_index=self.ignore_index,
            )
            self.image_iou_sum = self.image_iou_sum + iou_sum.to(self.image_iou_sum.device)
            self.image_count = self.image_count + count.to(self.image_count.device)
        self.confmat = self.confmat + confmat.to(self.confmat.device)

    def compute(self) -> dict[str, Tensor]:
        """The scores (float64): ``iou``, ``dice``, ``precision``, ``recall`` per class ``[C]``; ``miou``,
        ``mdice``, ``iou_micro``, ``dice_micro``, ``iou_weighted``, ``dice_weighted``, ``pixel_accuracy``,
        ``mean_class_accuracy`` (and ``per_image_miou``) as scalars.

        Raises:
            RuntimeError: no pixel counted yet.
        """
        if int(self.confmat.sum()) == 0:
            raise RuntimeError(f"{type(self).__name__} has no pixels yet: call `update` before `compute`.")
        scores = confusion_matrix_to_scores(
            self.confmat, absent_score=self.absent_score, ignore_index=self.ignore_index
        )
        if self.per_image:
            scores["per_image_miou"] = self.image_iou_sum / self.image_count
        return scores

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Draw the scalar scores of ``compute()`` (when ``val`` is None) or ``val`` (a dict, a tensor such as
        the per-class ``iou``, or a list of them over time) with matplotlib.

        Returns:
            ``(figure, axes)``.

        Example:
            >>> import matplotlib
            >>> matplotlib.use("Agg")
            >>> metric = SegmentationMetrics(num_classes=3)
            >>> metric.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 1, 1, 2]]))
            >>> figure, axes = metric.plot()
        """
        if val is None:
            # The per-class vectors would be drawn as a series over steps next to the scalars: keep the scalars.
            val = {name: value for name, value in self.compute().items() if value.ndim == 0}
        return super().plot(val, ax)

    def _state_names(self) -> tuple[str, ...]:
        return ("confmat", *_PER_IMAGE_STATES) if self.per_image else ("confmat",)

    def _merge_state(self, other: dict[str, Any]) -> None:
        if other["confmat"].shape != self.confmat.shape:
            raise ValueError(
                f"Cannot merge a confusion matrix of shape {list(other['confmat'].shape)} into one of shape "
                f"{list(self.confmat.shape)}."
            )
        for name in self._state_names():
            setattr(self, name, getattr(self, name) + other[name].to(getattr(self, name).device))

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        for name in self._state_names():
            setattr(self, name, all_reduce_sum(getattr(self, name), group))


class MeanIoU(SufficientStatisticMetric):
    """torchmetrics' ``MeanIoU``: the IoU of each image, averaged over the images where a class is present.

    Same arguments, in the same order, read the same way, and the same number as
    ``torchmetrics.segmentation.MeanIoU`` (to float rounding: the sums here are float64). For every
    image and class, ``IoU = |P ∩ T| / |P ∪ T|`` over that image's pixels; a class absent from both the
    image's prediction and truth is skipped for that image. The state is, per scored class, the float64
    sum of those IoUs and the int64 number of images where the class was present: ``16·C`` bytes
    whatever the number of images, merged and all-reduced as sums.

    ``compute`` returns, per class (``per_class=True``), the mean over the images where the class was
    present (-1 for a class never present), else one scalar: the sum of all those IoUs over the sum of
    the counts (the mean over present (image, class) pairs; NaN when no class was ever present).

    This is not the dataset-level mIoU (IoU per class of all pixels pooled, then the mean over
    classes), which is ``SegmentationMetrics(num_classes).compute()["miou"]`` (torchmetrics'
    ``MulticlassJaccardIndex``), nor the mean of the per-image mIoUs (``SegmentationMetrics(...,
    per_image=True)``'s ``per_image_miou``).

    Args:
        num_classes: the number of classes; required for ``input_format="index"``, else read from dim
            1 of the one-hot input at the first update when ``None``.
        include_background: score class 0 too (``False``: classes ``1..C-1``).
        per_class: return the ``[C']`` per-class values instead of one scalar.
        input_format: ``"one-hot"`` (both ``[N, C, ...]``: bool or 0/1 masks, or floating scores read
            by their argmax), ``"index"`` (both label maps ``[N, ...]``) or ``"mixed"`` (one of each,
            e.g. logits ``[N, C, H, W]`` and masks ``[N, H, W]``).
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: an argument of the wrong type, or this library's former ``ignore_index``,
            ``absent_score`` or ``per_image`` (the dataset-level scores are ``SegmentationMetrics``').
        ValueError: ``num_classes`` < 1, missing for ``"index"``, or 1 with ``include_background=False``
            (no class left to score); an unknown ``input_format``.

    Example:
        >>> import torch
        >>> preds = torch.tensor([[[0, 0, 1, 1]], [[1, 1, 1, 1]]])
        >>> target = torch.tensor([[[0, 0, 1, 0]], [[1, 1, 1, 1]]])
        >>> metric = MeanIoU(2, input_format="index")
        >>> metric(preds, target)  # the batch's value; also accumulated
        tensor(0.7222, dtype=torch.float64)
        >>> MeanIoU(2, per_class=True, input_format="index")(preds, target)
        tensor([0.6667, 0.7500], dtype=torch.float64)
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0
    _size_name = "number of scored classes"

    def __init__(
        self,
        num_classes: int | None = None,
        include_background: bool = True,
        per_class: bool = False,
        input_format: InputFormat = "one-hot",
        **kwargs: Any,
    ) -> None:
        former = sorted(set(kwargs) & {"ignore_index", "absent_score", "per_image"})
        if former:
            raise TypeError(
                f"MeanIoU follows torchmetrics and takes no {', '.join(f'`{name}`' for name in former)}: for the "
                "dataset-level mIoU with those options use SegmentationMetrics(num_classes, ignore_index, "
                "absent_score=..., per_image=...).compute()['miou']."
            )
        super().__init__(**kwargs)
        check_mean_iou_arguments(num_classes, include_background, per_class, input_format)
        if num_classes == 1 and not include_background:
            raise ValueError(
                "Expected `num_classes` > 1 with include_background=False, got 1: no class is left to score; "
                "pass include_background=True."
            )
        self.num_classes = num_classes
        self.include_background = include_background
        self.per_class = per_class
        self.input_format = input_format
        scored = 0 if num_classes is None else (num_classes if include_background else num_classes - 1)
        self.add_state("iou_sum", torch.zeros(scored, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("present", torch.zeros(scored, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("image_count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def _lazy_size(self) -> int | None:
        return self.iou_sum.shape[0] or None

    def _allocate(self, size: int) -> None:
        for name, dtype in (("iou_sum", torch.float64), ("present", torch.int64)):
            zeros = torch.zeros(size, dtype=dtype, device=self.image_count.device)
            tm_compat.set_state_default(self, name, zeros)
            setattr(self, name, zeros)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch, in ``input_format`` (see the class notes).

        Raises:
            TypeError: non-tensor input or an unsupported dtype.
            ValueError: shapes that do not fit ``input_format``, labels out of range, masks other than
                0/1, NaN scores, another number of classes than before.
        """
        intersection, union = segmentation_inputs_to_image_overlaps(
            preds, target, self.num_classes, self.include_background, self.input_format
        )
        scored = intersection.shape[1]
        if self._lazy_size is not None and scored != self._lazy_size:
            raise ValueError(
                f"Expected inputs with {self._lazy_size} scored classes as before, got {scored} (shape "
                f"{list(preds.shape)} and {list(target.shape)})."
            )
        if scored == 0 or (scored == 1 and not self.include_background):
            raise ValueError(
                f"Expected more than one class with include_background=False, got shapes {list(preds.shape)} and "
                f"{list(target.shape)}: no class is left to score; pass include_background=True."
            )
        iou_sum, present = overlaps_to_iou_sums(intersection, union)
        if self._lazy_size is None:
            self._allocate(scored)
        device = self.iou_sum.device
        self.iou_sum = self.iou_sum + iou_sum.to(device)
        self.present = self.present + present.to(device)
        self.image_count = self.image_count + intersection.shape[0]

    def compute(self) -> Tensor:
        """The per-class values ``[C']`` (``per_class``) or the scalar, float64 (see the class notes).

        Raises:
            RuntimeError: no image yet.
        """
        if int(self.image_count) == 0:
            raise RuntimeError("MeanIoU has no images yet: call `update` before `compute`.")
        return iou_sums_to_mean_iou(self.iou_sum, self.present, self.per_class)

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._adopt_size(other["iou_sum"].shape[0])
        self.image_count = self.image_count + other["image_count"].to(self.image_count.device)
        if other["iou_sum"].shape[0] == 0:
            return
        for name in ("iou_sum", "present"):
            setattr(self, name, getattr(self, name) + other[name].to(getattr(self, name).device))

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        self._agree_size(group)
        for name in ("iou_sum", "present", "image_count"):
            setattr(self, name, all_reduce_sum(getattr(self, name), group))
