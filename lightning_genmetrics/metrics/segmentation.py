"""Segmentation IoU, Dice and accuracies from one int64 confusion matrix (``SegmentationMetrics``, ``MeanIoU``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_positive_int
from lightning_genmetrics.functional.segmentation import (
    check_absent_score,
    check_ignore_index,
    confusion_matrix_to_scores,
    labels_to_confusion_matrix,
    labels_to_image_iou_sums,
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

    ``per_image=True`` also reports ``per_image_miou``, the mean over images of each image's mIoU
    (a different number, often confused with ``miou``): two more states, a float64 sum and an
    int64 image count.

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
        ``mdice``, ``pixel_accuracy``, ``mean_class_accuracy`` (and ``per_image_miou``) as scalars.

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


class MeanIoU(SegmentationMetrics):
    """The dataset-level mean IoU alone: :class:`SegmentationMetrics` whose ``compute`` returns ``miou``.

    Example:
        >>> import torch
        >>> metric = MeanIoU(num_classes=2)
        >>> metric.update(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
        >>> round(metric.compute().item(), 4)
        0.5833
    """

    def compute(self) -> Tensor:  # type: ignore[override]
        """The mean IoU over the classes of the summed confusion matrix (float64 scalar)."""
        return super().compute()["miou"]
