r"""Segmentation scores from a confusion matrix: IoU, Dice, pixel and class accuracy, precision, recall.

The matrix ``M`` is ``[C, C]`` int64 with ``M[i, j]`` the number of pixels of true class ``i``
predicted as ``j`` (rows are the ground truth, as in scikit-learn's ``confusion_matrix``). With
``tp = diag M``, ``fp = colsum - tp`` and ``fn = rowsum - tp``, per class

.. math:: \mathrm{IoU} = \frac{tp}{tp + fp + fn}, \quad \mathrm{Dice} = \frac{2\,tp}{2\,tp + fp + fn},
          \quad \mathrm{precision} = \frac{tp}{tp + fp}, \quad \mathrm{recall} = \frac{tp}{tp + fn};

pixel accuracy is ``tr M / ΣM`` and mean class accuracy the mean recall. The matrix is a plain
sum over pixels, so it merges exactly between batches and ranks; the means here are over the
classes of the summed matrix (dataset level), not over images or batches. The per-image mean IoU
(:func:`per_image_mean_iou`) is a different quantity: the mean over images of each image's mIoU.

**Absent classes.** A class that appears in neither the ground truth nor the prediction has
IoU and Dice ``0/0``. By default (``absent_score=None``) it is reported as NaN and left out of
``miou`` and ``mdice``, as torchmetrics' ``MulticlassJaccardIndex`` and scikit-learn's
``jaccard_score`` (whose default labels are those present) do; a number ``absent_score`` is used as
its IoU and Dice instead and the class counts in the means. Precision is NaN for a class never
predicted, recall for a class never in the ground truth (both undefined); the mean class accuracy
averages the recall of the classes present in the ground truth (scikit-learn's
``balanced_accuracy_score``). A class equal to ``ignore_index`` is left out of every mean.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_positive_int, check_tensor


def _is_integer(x: Tensor) -> bool:
    return not (x.dtype.is_floating_point or x.is_complex() or x.dtype == torch.bool)


def check_ignore_index(ignore_index: object) -> int | None:
    """Return ``ignore_index`` if it is ``None`` or an int, else raise ``TypeError``."""
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(
            f"Expected `ignore_index` to be an int or None, got {ignore_index!r} of type {type(ignore_index).__name__}."
        )
    return ignore_index


def check_absent_score(absent_score: object) -> float | None:
    """Return ``absent_score`` as a float if it is ``None`` or a number in [0, 1], else raise."""
    if absent_score is None:
        return None
    if isinstance(absent_score, bool) or not isinstance(absent_score, (int, float)):
        raise TypeError(
            f"Expected `absent_score` to be a float or None, got {absent_score!r} of type "
            f"{type(absent_score).__name__}."
        )
    if not (math.isfinite(absent_score) and 0.0 <= absent_score <= 1.0):
        raise ValueError(f"Expected `absent_score` to be None or a number in [0, 1], got {absent_score}.")
    return float(absent_score)


def _range_error(name: str, num_classes: int, low: int, high: int, ignore_index: int | None) -> ValueError:
    allowed = f"[0, {num_classes})" + (f" or `ignore_index` ({ignore_index})" if ignore_index is not None else "")
    return ValueError(f"Expected `{name}` class labels in {allowed}, got values in [{low}, {high}].")


def segmentation_inputs_to_labels(
    preds: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None
) -> tuple[Tensor, Tensor]:
    """Validate a batch; return int64 ``(pred_labels, target_labels)`` of ``target``'s shape.

    Ignored pixels get the target label ``num_classes`` (an extra confusion-matrix row that the
    counting functions drop). Nothing is copied beyond the int64 label maps.

    Args:
        preds: integer label maps of ``target``'s shape, or floating class scores ``[N, C, ...]``
            (argmax over dim 1; a tie goes to the lowest class).
        target: integer label maps ``[N, ...]`` with values in ``[0, C)`` or ``ignore_index``.
        num_classes: the number of classes ``C``.
        ignore_index: a target value whose pixels are not counted, or ``None``.

    Raises:
        TypeError: not tensors, ``target`` not of an integer dtype, ``preds`` neither integer nor floating.
        ValueError: shapes that do not match, NaN scores, or labels out of range.

    Example:
        >>> import torch
        >>> pred, true = segmentation_inputs_to_labels(torch.tensor([[0, 1]]), torch.tensor([[1, 255]]), 2, 255)
        >>> pred.tolist(), true.tolist()
        ([[0, 1]], [[1, 2]])
    """
    check_tensor(preds, "preds")
    check_tensor(target, "target")
    if not _is_integer(target):
        raise TypeError(f"Expected `target` to be an integer tensor of class labels, got dtype {target.dtype}.")
    if target.ndim < 1:
        raise ValueError(f"Expected `target` to have shape [N, ...], got shape {list(target.shape)}.")
    if preds.is_floating_point():
        expected = [target.shape[0], num_classes, *target.shape[1:]]
        if list(preds.shape) != expected:
            raise ValueError(
                f"Expected floating `preds` to be class scores of shape {expected} ([N, C, ...] for `target` of "
                f"shape {list(target.shape)}), got shape {list(preds.shape)}."
            )
        nan = torch.isnan(preds)
        if bool(nan.any()):
            raise ValueError(f"Expected `preds` scores without NaN, got {int(nan.sum())} NaN value(s).")
        pred_labels = preds.argmax(dim=1)
    elif _is_integer(preds):
        if preds.shape != target.shape:
            raise ValueError(
                f"Expected integer `preds` to be label maps of `target`'s shape {list(target.shape)}, got shape "
                f"{list(preds.shape)}."
            )
        pred_labels = preds.to(torch.int64)
        if pred_labels.numel():
            low, high = (int(v) for v in torch.aminmax(pred_labels))
            if low < 0 or high >= num_classes:
                raise _range_error("preds", num_classes, low, high, None)
    else:
        raise TypeError(f"Expected `preds` to be an integer or floating point tensor, got dtype {preds.dtype}.")

    original = target.to(torch.int64)
    target_labels = original
    if ignore_index is not None:
        target_labels = torch.where(original == ignore_index, num_classes, original)
    if target_labels.numel():
        low, high = (int(v) for v in torch.aminmax(target_labels))
        top = num_classes if ignore_index is not None else num_classes - 1
        # With an `ignore_index`, label C marks the ignored pixels: a genuine C in `target` is still an error.
        genuine_top = high == num_classes and ignore_index != num_classes and bool((original == num_classes).any())
        if low < 0 or high > top or genuine_top:
            original_low, original_high = (int(v) for v in torch.aminmax(original))
            raise _range_error("target", num_classes, original_low, original_high, ignore_index)
    return pred_labels, target_labels


def labels_to_confusion_matrix(pred_labels: Tensor, target_labels: Tensor, num_classes: int) -> Tensor:
    """The ``[C, C]`` int64 confusion matrix (rows: truth) of validated label maps.

    One ``bincount`` of ``target·C + pred``: memory O(pixels), the same counts on every run, and
    no ``pixels × C`` or ``N × C²`` intermediate. Target label ``C`` (ignored pixels) lands in an
    extra row that is dropped.

    Args:
        pred_labels: int64 labels in ``[0, C)``.
        target_labels: int64 labels in ``[0, C]`` of the same shape (``C``: ignored).
        num_classes: ``C``.

    Example:
        >>> import torch
        >>> labels_to_confusion_matrix(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 2]), 2)
        tensor([[1, 1],
                [0, 1]])
    """
    flat = torch.add(pred_labels.reshape(-1), target_labels.reshape(-1), alpha=num_classes)
    counts = torch.bincount(flat, minlength=(num_classes + 1) * num_classes)
    return counts[: num_classes * num_classes].reshape(num_classes, num_classes).to(torch.int64)


def _mean_mask(num_classes: int, ignore_index: int | None, device: torch.device) -> Tensor:
    keep = torch.ones(num_classes, dtype=torch.bool, device=device)
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        keep[ignore_index] = False
    return keep


def _divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with NaN where the denominator is 0 (an undefined score)."""
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), torch.nan)


def confusion_matrix_to_scores(
    confmat: Tensor, *, absent_score: float | None = None, ignore_index: int | None = None
) -> dict[str, Tensor]:
    """Every segmentation score from a ``[C, C]`` confusion matrix (rows: truth), in float64.

    Args:
        confmat: the int64 confusion matrix.
        absent_score: the IoU and Dice of a class absent from both truth and prediction; ``None``
            reports NaN and leaves the class out of the means (see the module notes).
        ignore_index: a class index left out of every mean (when it lies in ``[0, C)``).

    Returns:
        ``iou``, ``dice``, ``precision``, ``recall`` (per class, ``[C]``), ``miou``, ``mdice``,
        ``pixel_accuracy`` and ``mean_class_accuracy`` (scalars).

    Raises:
        RuntimeError: the matrix counts no pixel.

    Example:
        >>> import torch
        >>> scores = confusion_matrix_to_scores(torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]]))
        >>> scores["iou"].tolist(), scores["miou"].item(), scores["pixel_accuracy"].item()
        ([0.75, 0.6666666666666666, nan], 0.7083333333333333, 0.8333333333333334)
    """
    c = confmat.shape[0]
    m = confmat.to(torch.float64)
    if int(confmat.sum()) == 0:
        raise RuntimeError("The confusion matrix counts no pixel yet: update with at least one non-ignored pixel.")
    tp = m.diagonal()
    truth, predicted = m.sum(dim=1), m.sum(dim=0)
    union = truth + predicted - tp
    iou, dice = _divide(tp, union), _divide(2 * tp, truth + predicted)
    keep = _mean_mask(c, ignore_index, confmat.device)
    if absent_score is None:
        in_means = keep & (union > 0)
    else:
        iou, dice = iou.nan_to_num(nan=absent_score), dice.nan_to_num(nan=absent_score)
        in_means = keep
    recall = _divide(tp, truth)
    return {
        "iou": iou,
        "miou": iou[in_means].mean(),
        "dice": dice,
        "mdice": dice[in_means].mean(),
        "pixel_accuracy": tp.sum() / m.sum(),
        "mean_class_accuracy": recall[keep & (truth > 0)].mean(),
        "precision": _divide(tp, predicted),
        "recall": recall,
    }


def labels_to_image_iou_sums(
    pred_labels: Tensor,
    target_labels: Tensor,
    num_classes: int,
    *,
    absent_score: float | None = None,
    ignore_index: int | None = None,
) -> tuple[Tensor, Tensor]:
    """``(Σ per-image mIoU, number of images)`` of validated label maps ``[N, ...]`` (float64, int64).

    Each image's mIoU is the mean IoU over its classes present in its truth or prediction (with
    ``absent_score``: over all classes); images whose pixels are all ignored are not counted.
    Memory O(pixels + N·C): per image and class, three ``bincount`` s (intersection, true and
    predicted area), no ``N × C²`` tensor.

    Example:
        >>> import torch
        >>> pred = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
        >>> true = torch.tensor([[0, 0, 1, 0], [1, 1, 1, 1]])
        >>> labels_to_image_iou_sums(pred, true, 2)
        (tensor(1.5833, dtype=torch.float64), tensor(2))
    """
    n = target_labels.shape[0]
    rows = num_classes + 1
    offsets = (torch.arange(n, device=target_labels.device) * rows).view(n, *([1] * (target_labels.ndim - 1)))
    ignored = target_labels == num_classes
    pred_rows = torch.where(ignored, num_classes, pred_labels)

    def per_image(labels: Tensor) -> Tensor:
        counts = torch.bincount((labels + offsets).reshape(-1), minlength=n * rows)
        return counts.view(n, rows)[:, :num_classes].to(torch.float64)

    intersection = per_image(torch.where(pred_rows == target_labels, target_labels, num_classes))
    union = per_image(target_labels) + per_image(pred_rows) - intersection
    iou = _divide(intersection, union)
    keep = _mean_mask(num_classes, ignore_index, target_labels.device).expand(n, num_classes)
    if absent_score is None:
        in_means = keep & (union > 0)
    else:
        iou, in_means = iou.nan_to_num(nan=absent_score), keep
    counted = (~ignored).reshape(n, -1).any(dim=1)
    per_image_miou = torch.where(in_means, iou, 0.0).sum(dim=1) / in_means.sum(dim=1).clamp(min=1)
    return per_image_miou[counted].sum(), counted.sum().to(torch.int64)


def per_image_mean_iou(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    absent_score: float | None = None,
) -> Tensor:
    """The mean over images of each image's mean IoU (float64 scalar); not the dataset-level ``miou``.

    Raises:
        TypeError, ValueError: as :func:`segmentation_inputs_to_labels`.
        RuntimeError: no image with a non-ignored pixel.

    Example:
        >>> import torch
        >>> pred = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
        >>> true = torch.tensor([[0, 0, 1, 0], [1, 1, 1, 1]])
        >>> round(per_image_mean_iou(pred, true, 2).item(), 4)
        0.7917
    """
    check_positive_int(num_classes, "num_classes")
    ignore_index = check_ignore_index(ignore_index)
    absent_score = check_absent_score(absent_score)
    labels = segmentation_inputs_to_labels(preds, target, num_classes, ignore_index)
    total, count = labels_to_image_iou_sums(*labels, num_classes, absent_score=absent_score, ignore_index=ignore_index)
    if int(count) == 0:
        raise RuntimeError("No image has a non-ignored pixel: the per-image mean IoU is undefined.")
    return total / count


def segmentation_scores(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    absent_score: float | None = None,
) -> dict[str, Tensor]:
    """IoU, Dice, accuracies, precision and recall of one batch (see :func:`confusion_matrix_to_scores`).

    Args:
        preds: integer label maps ``[N, ...]`` or floating class scores ``[N, C, ...]``.
        target: integer label maps ``[N, ...]``.
        num_classes: the number of classes ``C``.
        ignore_index: a target value whose pixels are not counted.
        absent_score: the IoU and Dice of classes absent from truth and prediction (``None``:
            NaN, and left out of the means).

    Raises:
        TypeError, ValueError: as :func:`segmentation_inputs_to_labels`; bad arguments.
        RuntimeError: no pixel is counted.

    Example:
        >>> import torch
        >>> scores = segmentation_scores(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 2, 2]]), 3)
        >>> scores["iou"].tolist(), round(scores["miou"].item(), 4)
        ([1.0, 0.5, 0.5], 0.6667)
    """
    check_positive_int(num_classes, "num_classes")
    ignore_index = check_ignore_index(ignore_index)
    absent_score = check_absent_score(absent_score)
    labels = segmentation_inputs_to_labels(preds, target, num_classes, ignore_index)
    confmat = labels_to_confusion_matrix(*labels, num_classes)
    return confusion_matrix_to_scores(confmat, absent_score=absent_score, ignore_index=ignore_index)
