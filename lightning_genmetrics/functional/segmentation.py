r"""Segmentation scores: per image (torchmetrics' ``mean_iou``) and from a dataset's confusion matrix.

**Per image** (:func:`mean_iou`, the ``MeanIoU`` metric, torchmetrics' definitions). For image ``n``
and class ``c``, ``IoU[n, c] = |P ∩ T| / |P ∪ T|`` over that image's pixels; a class absent from
both the image's prediction and its truth (empty union) has no IoU there. :func:`mean_iou` returns
the per-image values: ``[N, C]`` with -1 for such classes (``per_class=True``), or ``[N]``, each
image's mean over its present classes. The ``MeanIoU`` metric keeps per class the sum of the IoUs
of the images where the class is present and the number of those images; its ``per_class`` value
is their ratio (-1 for a class never present), its scalar the sum of all those IoUs over the sum of
the counts, i.e. the mean over every present (image, class) pair. That is torchmetrics' number, and
it is neither the dataset-level mIoU nor the mean of the per-image mIoUs (which weights an image's
classes by ``1 / (its number of present classes)``).

**Dataset level** (:func:`segmentation_scores`, ``SegmentationMetrics``). The matrix ``M`` is
``[C, C]`` int64 with ``M[i, j]`` the number of pixels of true class ``i`` predicted as ``j`` (rows
are the ground truth, as in scikit-learn's ``confusion_matrix``). With ``tp = diag M``,
``fp = colsum - tp`` and ``fn = rowsum - tp``, per class

.. math:: \mathrm{IoU} = \frac{tp}{tp + fp + fn}, \quad \mathrm{Dice} = \frac{2\,tp}{2\,tp + fp + fn},
          \quad \mathrm{precision} = \frac{tp}{tp + fp}, \quad \mathrm{recall} = \frac{tp}{tp + fn};

pixel accuracy is ``tr M / ΣM`` and mean class accuracy the mean recall. The matrix is a plain
sum over pixels, so it merges exactly between batches and ranks; ``miou`` and ``mdice`` are
means over the classes of the summed matrix (torchmetrics' ``MulticlassJaccardIndex`` and
``MulticlassF1Score`` with ``average="macro"``), ``iou_micro``/``dice_micro`` pool the counts of
all classes (``average="micro"``) and ``iou_weighted``/``dice_weighted`` weight each class by its
number of true pixels (``average="weighted"``). :func:`per_image_mean_iou` is the mean over images
of each image's mIoU (the mean of :func:`mean_iou`'s ``[N]`` values on label maps).

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
from typing import Literal

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_positive_int, check_tensor

InputFormat = Literal["one-hot", "index", "mixed"]
INPUT_FORMATS = ("one-hot", "index", "mixed")


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
        ``iou``, ``dice``, ``precision``, ``recall`` (per class, ``[C]``); ``miou``, ``mdice`` (means
        over classes), ``iou_micro``, ``dice_micro`` (pooled counts), ``iou_weighted``,
        ``dice_weighted`` (weighted by true pixels), ``pixel_accuracy`` and ``mean_class_accuracy``
        (scalars).

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
    # Pooled (micro) and support-weighted scores: an absent class has no pixel, so it adds nothing to either.
    pooled_tp, pooled_errors = tp[keep].sum(), (truth + predicted - 2 * tp)[keep].sum()
    weights = truth[keep] / truth[keep].sum()
    return {
        "iou": iou,
        "miou": iou[in_means].mean(),
        "iou_micro": pooled_tp / (pooled_tp + pooled_errors),
        "iou_weighted": (weights * iou[keep].nan_to_num(nan=0.0)).sum(),
        "dice": dice,
        "mdice": dice[in_means].mean(),
        "dice_micro": 2 * pooled_tp / (2 * pooled_tp + pooled_errors),
        "dice_weighted": (weights * dice[keep].nan_to_num(nan=0.0)).sum(),
        "pixel_accuracy": tp.sum() / m.sum(),
        "mean_class_accuracy": recall[keep & (truth > 0)].mean(),
        "precision": _divide(tp, predicted),
        "recall": recall,
    }


def labels_to_image_overlaps(pred_labels: Tensor, target_labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per image and class, the int64 ``(intersection, union)`` pixel counts ``[N, C]`` of validated label maps.

    Pixels with target label ``C`` (ignored) count in neither. Memory O(pixels + N·C): three
    ``bincount`` s (intersection, true and predicted area), no ``N × C × pixels`` one-hot tensor.

    Example:
        >>> import torch
        >>> intersection, union = labels_to_image_overlaps(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 0, 1]]), 3)
        >>> intersection.tolist(), union.tolist()
        ([[1, 1, 0]], [[2, 2, 0]])
    """
    n = target_labels.shape[0]
    rows = num_classes + 1
    offsets = (torch.arange(n, device=target_labels.device) * rows).view(n, *([1] * (target_labels.ndim - 1)))
    ignored = target_labels == num_classes
    pred_rows = torch.where(ignored, num_classes, pred_labels)

    def per_image(labels: Tensor) -> Tensor:
        counts = torch.bincount((labels + offsets).reshape(-1), minlength=n * rows)
        return counts.view(n, rows)[:, :num_classes].to(torch.int64)

    intersection = per_image(torch.where(pred_rows == target_labels, target_labels, num_classes))
    return intersection, per_image(target_labels) + per_image(pred_rows) - intersection


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
    Memory as :func:`labels_to_image_overlaps`.

    Example:
        >>> import torch
        >>> pred = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
        >>> true = torch.tensor([[0, 0, 1, 0], [1, 1, 1, 1]])
        >>> labels_to_image_iou_sums(pred, true, 2)
        (tensor(1.5833, dtype=torch.float64), tensor(2))
    """
    n = target_labels.shape[0]
    intersection, union = labels_to_image_overlaps(pred_labels, target_labels, num_classes)
    iou = _divide(intersection.to(torch.float64), union)
    keep = _mean_mask(num_classes, ignore_index, target_labels.device).expand(n, num_classes)
    if absent_score is None:
        in_means = keep & (union > 0)
    else:
        iou, in_means = iou.nan_to_num(nan=absent_score), keep
    counted = (target_labels != num_classes).reshape(n, -1).any(dim=1)
    per_image_miou = torch.where(in_means, iou, 0.0).sum(dim=1) / in_means.sum(dim=1).clamp(min=1)
    return per_image_miou[counted].sum(), counted.sum().to(torch.int64)


def check_mean_iou_arguments(
    num_classes: object, include_background: object, per_class: object, input_format: object
) -> None:
    """Check torchmetrics' ``MeanIoU`` arguments; raise naming the argument and the value received."""
    if num_classes is not None:
        check_positive_int(num_classes, "num_classes")
    check_bool(include_background, "include_background")
    check_bool(per_class, "per_class")
    if input_format not in INPUT_FORMATS:
        raise ValueError(
            f"Expected `input_format` to be one of {', '.join(map(repr, INPUT_FORMATS))}, got {input_format!r}."
        )
    if input_format == "index" and num_classes is None:
        raise ValueError(
            "Expected `num_classes` to be an int when `input_format` is 'index', got None: label maps do not say how "
            "many classes there are."
        )


def _as_image_batch(x: Tensor) -> Tensor:
    """torchmetrics reads an index-format tensor of one or two dimensions as one image: ``[1, 1, L]``, ``[1, H, W]``."""
    return x.reshape(1, 1, -1) if x.ndim == 1 else (x.unsqueeze(0) if x.ndim == 2 else x)


def _one_hot_side(x: Tensor, name: str, num_classes: int | None) -> tuple[Tensor, bool]:
    """``(labels [N, ...], False)`` from scores (argmax over dim 1) or ``(bool masks [N, C, ...], True)``."""
    if x.ndim < 3:
        raise ValueError(
            f"Expected one-hot `{name}` of shape [N, C, ...] with at least one spatial dimension, got shape "
            f"{list(x.shape)}; for label maps pass input_format='index'."
        )
    if x.shape[1] == 0 or (num_classes is not None and x.shape[1] != num_classes):
        expected = f"`num_classes` ({num_classes})" if num_classes is not None else "at least one"
        raise ValueError(
            f"Expected one-hot `{name}` to have {expected} classes in dim 1, got shape {list(x.shape)}; for label "
            "maps [N, ...] pass input_format='index' (or 'mixed' with one-hot predictions and label-map targets)."
        )
    if x.is_floating_point():
        nan = torch.isnan(x)
        if bool(nan.any()):
            raise ValueError(f"Expected `{name}` scores without NaN, got {int(nan.sum())} NaN value(s).")
        return x.argmax(dim=1), False
    if x.dtype == torch.bool:
        return x, True
    if not _is_integer(x):
        raise TypeError(f"Expected one-hot `{name}` to be a bool, integer or floating tensor, got dtype {x.dtype}.")
    if x.numel() and not bool(((x == 0) | (x == 1)).all()):
        low, high = (int(v) for v in torch.aminmax(x))
        raise ValueError(
            f"Expected one-hot `{name}` to hold only 0 and 1, got values in [{low}, {high}]; for label maps pass "
            "input_format='index'."
        )
    return x.bool(), True


def _index_side(x: Tensor, name: str, num_classes: int) -> Tensor:
    """Validated int64 label maps."""
    if not _is_integer(x):
        raise TypeError(f"Expected index `{name}` to be an integer tensor of class labels, got dtype {x.dtype}.")
    labels = x.to(torch.int64)
    if labels.numel():
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or high >= num_classes:
            raise _range_error(name, num_classes, low, high, None)
    return labels


def _shape_error(preds: Tensor, target: Tensor, input_format: str, expected: str) -> ValueError:
    return ValueError(
        f"Expected `preds` and `target` {expected} for input_format={input_format!r}, got shapes "
        f"{list(preds.shape)} and {list(target.shape)}."
    )


def segmentation_inputs_to_image_overlaps(
    preds: Tensor,
    target: Tensor,
    num_classes: int | None = None,
    include_background: bool = True,
    input_format: InputFormat = "one-hot",
) -> tuple[Tensor, Tensor]:
    """Per image and scored class, the int64 ``(intersection, union)`` pixel counts ``[N, C']`` of a batch.

    The inputs are read as torchmetrics' ``MeanIoU`` reads them: ``"one-hot"``: both ``[N, C, ...]``
    (bool or 0/1 integer masks, which may overlap; floating scores become their argmax);
    ``"index"``: both label maps ``[N, ...]`` (one or two dimensions: a single image);
    ``"mixed"``: one of each. ``include_background=False`` drops class 0 (when ``C > 1``), so
    ``C' = C - 1``. Label maps on both sides are counted with ``bincount`` (no one-hot tensor).

    Raises:
        TypeError: non-tensor input or an unsupported dtype.
        ValueError: shapes that do not fit the format, labels out of range, masks other than 0/1,
            NaN scores, ``num_classes`` missing for ``"index"``.

    Example:
        >>> import torch
        >>> preds = torch.tensor([[[1, 1, 0]], [[0, 0, 1]]]).bool().unsqueeze(0)  # [N=1, C=2, 1, 3]
        >>> target = torch.tensor([[[1, 0, 0]], [[0, 1, 1]]]).bool().unsqueeze(0)
        >>> segmentation_inputs_to_image_overlaps(preds, target)
        (tensor([[1, 1]]), tensor([[2, 2]]))
    """
    check_tensor(preds, "preds")
    check_tensor(target, "target")
    if preds.ndim == 0 or target.ndim == 0:
        raise _shape_error(preds, target, input_format, "with at least one dimension")
    if input_format != "one-hot":
        preds, target = _as_image_batch(preds), _as_image_batch(target)
    if input_format == "one-hot":
        if preds.shape != target.shape:
            raise _shape_error(preds, target, input_format, "of the same shape [N, C, ...]")
        (p, p_is_mask), (t, t_is_mask) = (
            _one_hot_side(preds, "preds", num_classes),
            _one_hot_side(target, "target", num_classes),
        )
        c = preds.shape[1]
    elif input_format == "index":
        if num_classes is None:
            raise ValueError("Expected `num_classes` to be an int when `input_format` is 'index', got None.")
        if preds.shape != target.shape:
            raise _shape_error(preds, target, input_format, "label maps of the same shape [N, ...]")
        c, p_is_mask, t_is_mask = num_classes, False, False
        p, t = _index_side(preds, "preds", c), _index_side(target, "target", c)
    else:
        expected = "one one-hot [N, C, ...] and one label map [N, ...] of the same N and spatial shape"
        if preds.ndim == target.ndim + 1 and preds.shape[:1] + preds.shape[2:] == target.shape:
            p, p_is_mask = _one_hot_side(preds, "preds", num_classes)
            c, t_is_mask = preds.shape[1], False
            t = _index_side(target, "target", c)
        elif target.ndim == preds.ndim + 1 and target.shape[:1] + target.shape[2:] == preds.shape:
            t, t_is_mask = _one_hot_side(target, "target", num_classes)
            c, p_is_mask = target.shape[1], False
            p = _index_side(preds, "preds", c)
        else:
            raise _shape_error(preds, target, input_format, expected)
    if not (p_is_mask or t_is_mask):
        intersection, union = labels_to_image_overlaps(p, t, c)
    else:
        p, t = (x if is_mask else _labels_to_masks(x, c) for x, is_mask in ((p, p_is_mask), (t, t_is_mask)))
        intersection = (p & t).flatten(2).sum(dim=2)
        union = p.flatten(2).sum(dim=2) + t.flatten(2).sum(dim=2) - intersection
    if not include_background and c > 1:
        intersection, union = intersection[:, 1:], union[:, 1:]
    return intersection, union


def _labels_to_masks(labels: Tensor, num_classes: int) -> Tensor:
    classes = torch.arange(num_classes, device=labels.device).view(1, num_classes, *([1] * (labels.ndim - 1)))
    return labels.unsqueeze(1) == classes


def overlaps_to_image_iou(intersection: Tensor, union: Tensor) -> Tensor:
    """Per image and class IoU (float64), NaN where the class is absent from both (empty union)."""
    return _divide(intersection.to(torch.float64), union)


def overlaps_to_iou_sums(intersection: Tensor, union: Tensor) -> tuple[Tensor, Tensor]:
    """Per class, the float64 sum of the IoUs of the images where it is present and the int64 number of them.

    Example:
        >>> import torch
        >>> overlaps_to_iou_sums(torch.tensor([[1, 0], [2, 0]]), torch.tensor([[2, 0], [2, 1]]))
        (tensor([1.5000, 0.0000], dtype=torch.float64), tensor([2, 1]))
    """
    present = union > 0
    return overlaps_to_image_iou(intersection, union).nan_to_num(nan=0.0).sum(dim=0), present.sum(dim=0)


def iou_sums_to_mean_iou(iou_sum: Tensor, present: Tensor, per_class: bool = False) -> Tensor:
    """torchmetrics' ``MeanIoU`` value from :func:`overlaps_to_iou_sums` summed over batches (float64).

    Per class (``per_class``): ``iou_sum / present``, -1 for a class never present; else one scalar,
    ``Σ iou_sum / Σ present`` (the mean over present (image, class) pairs; NaN if there is none).

    Example:
        >>> import torch
        >>> iou_sums_to_mean_iou(torch.tensor([1.5, 0.0], dtype=torch.float64), torch.tensor([2, 0]), per_class=True)
        tensor([ 0.7500, -1.0000], dtype=torch.float64)
    """
    if per_class:
        return _divide(iou_sum, present).nan_to_num(nan=-1.0)
    return iou_sum.sum() / present.sum()


def mean_iou(
    preds: Tensor,
    target: Tensor,
    num_classes: int | None = None,
    include_background: bool = True,
    per_class: bool = False,
    input_format: InputFormat = "one-hot",
) -> Tensor:
    """torchmetrics' ``mean_iou``: the IoU of every image (float64), not reduced over the images.

    Args:
        preds: predictions in ``input_format`` (see :func:`segmentation_inputs_to_image_overlaps`).
        target: ground truth in ``input_format``.
        num_classes: the number of classes; required for ``"index"``, else read from dim 1 of the
            one-hot tensor(s).
        include_background: score class 0 too.
        per_class: return ``[N, C']`` (-1 for a class absent from an image's prediction and truth)
            instead of ``[N]``, each image's mean over its present classes (NaN if none).
        input_format: ``"one-hot"``, ``"index"`` or ``"mixed"``.

    Raises:
        TypeError, ValueError: bad arguments, or inputs as :func:`segmentation_inputs_to_image_overlaps`.

    Example:
        >>> import torch
        >>> preds = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
        >>> target = torch.tensor([[0, 0, 1, 0], [1, 1, 1, 1]])
        >>> mean_iou(preds.unsqueeze(1), target.unsqueeze(1), 3, input_format="index")
        tensor([0.5833, 1.0000], dtype=torch.float64)
        >>> mean_iou(preds.unsqueeze(1), target.unsqueeze(1), 3, per_class=True, input_format="index")
        tensor([[ 0.6667,  0.5000, -1.0000],
                [-1.0000,  1.0000, -1.0000]], dtype=torch.float64)
    """
    check_mean_iou_arguments(num_classes, include_background, per_class, input_format)
    intersection, union = segmentation_inputs_to_image_overlaps(
        preds, target, num_classes, include_background, input_format
    )
    iou = overlaps_to_image_iou(intersection, union)
    if per_class:
        return iou.nan_to_num(nan=-1.0)
    return iou.nansum(dim=-1) / (union > 0).sum(dim=-1)


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
