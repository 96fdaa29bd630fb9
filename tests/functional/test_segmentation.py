import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from lightning_genmetrics.functional.segmentation import (
    confusion_matrix_to_scores,
    labels_to_confusion_matrix,
    mean_iou,
    per_image_mean_iou,
    segmentation_inputs_to_labels,
    segmentation_scores,
)


def _sklearn_scores(target: np.ndarray, pred: np.ndarray, num_classes: int) -> dict[str, np.ndarray | float]:
    """scikit-learn's view of the same pixels: per-class over all C labels, means over the labels present."""
    y, p = target.ravel(), pred.ravel()
    everything = list(range(num_classes))
    absent = ~np.isin(everything, np.concatenate([y, p]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined per-class scores warn; they are compared as NaN below
        return {
            "confmat": confusion_matrix(y, p, labels=everything),
            "iou": np.where(absent, np.nan, jaccard_score(y, p, labels=everything, average=None, zero_division=0)),
            "dice": np.where(absent, np.nan, f1_score(y, p, labels=everything, average=None, zero_division=0)),
            "precision": precision_score(y, p, labels=everything, average=None, zero_division=np.nan),
            "recall": recall_score(y, p, labels=everything, average=None, zero_division=np.nan),
            "miou": jaccard_score(y, p, average="macro"),
            "mdice": f1_score(y, p, average="macro"),
            "iou_micro": jaccard_score(y, p, average="micro"),
            "iou_weighted": jaccard_score(y, p, average="weighted"),
            "dice_micro": f1_score(y, p, average="micro"),
            "dice_weighted": f1_score(y, p, average="weighted"),
            "pixel_accuracy": accuracy_score(y, p),
            "mean_class_accuracy": balanced_accuracy_score(y, p),
        }


def _compare(scores: dict, reference: dict) -> None:
    for name in ("iou", "dice", "precision", "recall"):
        np.testing.assert_allclose(scores[name].numpy(), reference[name], rtol=1e-12, atol=0, err_msg=name)
    for name in (
        "miou",
        "mdice",
        "iou_micro",
        "iou_weighted",
        "dice_micro",
        "dice_weighted",
        "pixel_accuracy",
        "mean_class_accuracy",
    ):
        assert scores[name].item() == pytest.approx(reference[name], rel=1e-12, abs=0), name


@pytest.mark.parametrize(("num_classes", "shape"), [(5, (3, 17, 13)), (21, (2, 40, 40)), (2, (4, 9))])
def test_label_maps_match_sklearn(rng, num_classes, shape):
    target = rng.integers(0, num_classes, shape)
    pred = np.where(rng.random(shape) < 0.6, target, rng.integers(0, num_classes, shape))
    pred[pred == num_classes - 1] = 0  # the last class is never predicted: its precision is undefined
    scores = segmentation_scores(torch.from_numpy(pred), torch.from_numpy(target), num_classes)
    reference = _sklearn_scores(target, pred, num_classes)
    confmat = labels_to_confusion_matrix(
        *segmentation_inputs_to_labels(torch.from_numpy(pred), torch.from_numpy(target), num_classes), num_classes
    )
    assert confmat.dtype == torch.int64
    np.testing.assert_array_equal(confmat.numpy(), reference["confmat"])
    assert all(value.dtype == torch.float64 for value in scores.values())
    _compare(scores, reference)


def test_score_maps_use_argmax_with_ties_to_the_lowest_class(rng):
    scores = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    scores[0, 2, 0, 0] = scores[0, 1, 0, 0] = 100.0  # a tie: class 1 wins
    target = rng.integers(0, 4, (2, 6, 5))
    by_scores = segmentation_scores(torch.from_numpy(scores), torch.from_numpy(target), 4)
    by_labels = segmentation_scores(torch.from_numpy(scores.argmax(1)), torch.from_numpy(target), 4)
    assert scores.argmax(1)[0, 0, 0] == 1
    for name, value in by_scores.items():
        torch.testing.assert_close(value, by_labels[name], equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("ignore_index", [255, -1, 2])
def test_ignore_index_drops_pixels(rng, ignore_index):
    target = rng.integers(0, 4, (3, 10, 10))
    pred = rng.integers(0, 4, (3, 10, 10))
    target[rng.random(target.shape) < 0.2] = ignore_index
    scores = segmentation_scores(torch.from_numpy(pred), torch.from_numpy(target), 4, ignore_index=ignore_index)
    keep = target != ignore_index
    reference = _sklearn_scores(target[keep], pred[keep], 4)
    if ignore_index == 2:  # an in-range ignored class is left out of the means (as torchmetrics)
        present = [c for c in (0, 1, 3) if reference["confmat"][c].sum() + reference["confmat"][:, c].sum() > 0]
        assert scores["miou"].item() == pytest.approx(np.mean(reference["iou"][present]), rel=1e-12)
        assert scores["iou"][2].item() == 0.0  # predicted but never a (kept) target pixel
    else:
        _compare(scores, reference)


def test_absent_classes_are_left_out_of_means_or_given_a_score():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    default = segmentation_scores(pred, target, 4)
    assert torch.isnan(default["iou"][2:]).all()
    assert default["miou"].item() == pytest.approx((0.5 + 2 / 3) / 2)
    zero = segmentation_scores(pred, target, 4, absent_score=0.0)
    assert zero["iou"][2:].tolist() == [0.0, 0.0]
    assert zero["miou"].item() == pytest.approx((0.5 + 2 / 3) / 4)
    # scikit-learn with all labels and zero_division=0 counts absent classes as 0.
    assert zero["miou"].item() == pytest.approx(
        jaccard_score([0, 0, 1, 1], [0, 1, 1, 1], labels=range(4), average="macro", zero_division=0)
    )
    one = segmentation_scores(pred, target, 4, absent_score=1.0)
    assert one["mdice"].item() == pytest.approx((2 / 3 + 0.8 + 2) / 4)


def _per_image_reference(target: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int | None) -> float:
    values = []
    for t, p in zip(target, pred, strict=True):
        keep = t != ignore_index if ignore_index is not None else np.ones_like(t, dtype=bool)
        if not keep.any():
            continue
        values.append(jaccard_score(t[keep], p[keep], average="macro"))
    return float(np.mean(values))


def test_per_image_mean_iou_is_the_mean_of_image_scores(rng):
    target = rng.integers(0, 6, (5, 12, 12))
    pred = np.where(rng.random(target.shape) < 0.5, target, rng.integers(0, 6, target.shape))
    target[1] = 255  # an image with no counted pixel does not count
    target[2, :6] = 255
    value = per_image_mean_iou(torch.from_numpy(pred), torch.from_numpy(target), 6, ignore_index=255)
    assert value.item() == pytest.approx(_per_image_reference(target, pred, 6, 255), rel=1e-12)
    dataset = segmentation_scores(torch.from_numpy(pred), torch.from_numpy(target), 6, ignore_index=255)["miou"]
    assert abs(value.item() - dataset.item()) > 1e-6  # two different numbers


def test_confusion_matrix_is_deterministic_and_needs_no_pixel_by_class_tensor(rng):
    target = torch.from_numpy(rng.integers(0, 150, (2, 64, 64)))
    pred = torch.from_numpy(rng.integers(0, 150, (2, 64, 64)))
    labels = segmentation_inputs_to_labels(pred, target, 150)
    first = labels_to_confusion_matrix(*labels, 150)
    assert all(torch.equal(first, labels_to_confusion_matrix(*labels, 150)) for _ in range(3))
    assert int(first.sum()) == target.numel()


@settings(max_examples=40, deadline=None)
@given(
    num_classes=st.integers(1, 6),
    pixels=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    agreement=st.floats(0.0, 1.0),
)
def test_property_matches_sklearn(num_classes, pixels, seed, agreement):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, num_classes, (1, pixels))
    pred = np.where(rng.random(target.shape) < agreement, target, rng.integers(0, num_classes, target.shape))
    scores = segmentation_scores(torch.from_numpy(pred), torch.from_numpy(target), num_classes)
    _compare(scores, _sklearn_scores(target, pred, num_classes))
    assert 0.0 <= scores["miou"].item() <= scores["mdice"].item() <= 1.0 + 1e-15  # Dice >= IoU per class


def test_scores_from_an_empty_matrix_raise():
    with pytest.raises(RuntimeError, match="no pixel"):
        confusion_matrix_to_scores(torch.zeros(3, 3, dtype=torch.int64))


@pytest.mark.parametrize(
    ("preds", "target", "error", "match"),
    [
        (torch.zeros(2, 4, dtype=torch.int64), torch.zeros(2, 4), TypeError, "`target` to be an integer tensor"),
        (
            torch.zeros(2, 4, dtype=torch.bool),
            torch.zeros(2, 4, dtype=torch.int64),
            TypeError,
            "`preds` to be an integer",
        ),
        ([[0, 1]], torch.zeros(1, 2, dtype=torch.int64), TypeError, "`preds` to be a torch.Tensor"),
        (
            torch.zeros(2, 5, dtype=torch.int64),
            torch.zeros(2, 4, dtype=torch.int64),
            ValueError,
            r"label maps of `target`'s shape \[2, 4\]",
        ),
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, dtype=torch.int64), ValueError, r"class scores of shape \[2, 3, 4\]"),
        (
            torch.full((1, 3, 2), float("nan")),
            torch.zeros(1, 2, dtype=torch.int64),
            ValueError,
            "without NaN, got 6 NaN",
        ),
        (
            torch.tensor([[0, 3]]),
            torch.tensor([[0, 1]]),
            ValueError,
            r"`preds` class labels in \[0, 3\), got values in \[0, 3\]",
        ),
        (torch.tensor([[0, 1]]), torch.tensor([[-1, 1]]), ValueError, r"`target` class labels in \[0, 3\)"),
        (torch.tensor([[0, 1]]), torch.tensor(0), ValueError, "shape"),
    ],
)
def test_bad_inputs(preds, target, error, match):
    with pytest.raises(error, match=match):
        segmentation_scores(preds, target, 3)


def test_a_genuine_label_num_classes_is_rejected_with_an_ignore_index():
    target = torch.tensor([[0, 255, 3]])
    with pytest.raises(ValueError, match=r"in \[0, 3\) or `ignore_index` \(255\), got values in \[0, 255\]"):
        segmentation_scores(torch.tensor([[0, 1, 2]]), target, 3, ignore_index=255)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"ignore_index": 2.0}, TypeError, "`ignore_index` to be an int or None, got 2.0"),
        ({"absent_score": 2.0}, ValueError, r"`absent_score` to be None or a number in \[0, 1\], got 2.0"),
        ({"absent_score": "zero"}, TypeError, "absent_score"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"num_classes": 3, **kwargs}
    with pytest.raises(error, match=match):
        segmentation_scores(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), **arguments)


# mean_iou: torchmetrics' per-image IoU -----------------------------------------------------------------------------


def _reference_image_iou(pred_masks: np.ndarray, target_masks: np.ndarray) -> np.ndarray:
    """``[N, C]`` IoU of bool masks ``[N, C, ...]`` by loops, NaN where a class is in neither."""
    n, c = pred_masks.shape[:2]
    iou = np.full((n, c), np.nan)
    for i in range(n):
        for k in range(c):
            union = np.sum(pred_masks[i, k] | target_masks[i, k])
            if union:
                iou[i, k] = np.sum(pred_masks[i, k] & target_masks[i, k]) / union
    return iou


def _masks(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.stack([labels == k for k in range(num_classes)], axis=1)


@pytest.mark.parametrize("spatial", [(6, 5), (3, 4, 5)], ids=["2d", "3d"])
@pytest.mark.parametrize("input_format", ["one-hot", "index", "mixed"])
@pytest.mark.parametrize("include_background", [True, False])
def test_mean_iou_matches_loops_over_images_and_classes(rng, spatial, input_format, include_background):
    num_classes, n = 4, 5
    target = rng.integers(0, num_classes, (n, *spatial))
    target[:2] = np.minimum(target[:2], 1)  # classes 2 and 3 absent from the first images' truth
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, num_classes, target.shape))
    pred_masks, target_masks = _masks(pred, num_classes), _masks(target, num_classes)
    if input_format == "one-hot":  # overlapping 0/1 masks: not one label per pixel
        pred_masks = rng.random(pred_masks.shape) < 0.4
        preds, targets = torch.from_numpy(pred_masks.astype(np.int64)), torch.from_numpy(target_masks)
    elif input_format == "index":
        preds, targets = torch.from_numpy(pred), torch.from_numpy(target)
    else:
        logits = rng.standard_normal(pred_masks.shape) + 3.0 * pred_masks
        pred_masks = _masks(logits.argmax(axis=1), num_classes)
        preds, targets = torch.from_numpy(logits), torch.from_numpy(target)
    expected = _reference_image_iou(pred_masks, target_masks)[:, 0 if include_background else 1 :]
    given = num_classes if input_format == "index" else None
    per_class = mean_iou(preds, targets, given, include_background, True, input_format)
    np.testing.assert_allclose(per_class.numpy(), np.nan_to_num(expected, nan=-1.0), rtol=1e-14)
    per_image = mean_iou(preds, targets, given, include_background, False, input_format)
    np.testing.assert_allclose(per_image.numpy(), np.nanmean(expected, axis=1), rtol=1e-14)
    assert per_class.dtype == per_image.dtype == torch.float64


@pytest.mark.parametrize(
    ("preds", "target", "arguments", "error", "match"),
    [
        (torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), {}, ValueError, r"same shape \[N, C, ...\].*\[2, 3, 4\]"),
        (torch.zeros(2, 3), torch.zeros(2, 3), {}, ValueError, "at least one spatial dimension"),
        (torch.full((1, 2, 2), 2), torch.ones(1, 2, 2), {}, ValueError, "only 0 and 1, got values in"),
        (
            torch.zeros(1, 2, 3, dtype=torch.bool),
            torch.zeros(1, 2, 3, dtype=torch.bool),
            {"num_classes": 3},
            ValueError,
            r"`num_classes` \(3\) classes in dim 1",
        ),
        (
            torch.tensor([[[0, 3]]]),
            torch.tensor([[[0, 1]]]),
            {"num_classes": 3, "input_format": "index"},
            ValueError,
            r"`preds` class labels in \[0, 3\)",
        ),
        (
            torch.tensor([[[0.0, 1.0]]]),
            torch.tensor([[[0, 1]]]),
            {"num_classes": 3, "input_format": "index"},
            TypeError,
            "integer tensor of class labels",
        ),
        (
            torch.rand(2, 3, 4, 4),
            torch.zeros(2, 4, 5, dtype=torch.int64),
            {"input_format": "mixed"},
            ValueError,
            "one one-hot",
        ),
        (
            torch.rand(2, 3, 4, 4),
            torch.full((2, 4, 4), 3),
            {"input_format": "mixed"},
            ValueError,
            r"`target` class labels in \[0, 3\)",
        ),
        (
            torch.full((1, 2, 3, 2), float("nan")),
            torch.zeros(1, 3, 2, dtype=torch.int64),
            {"input_format": "mixed"},
            ValueError,
            "NaN",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.zeros(1, 2, 3),
            {"input_format": "onehot"},
            ValueError,
            "`input_format` to be one of",
        ),
        (torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), {"per_class": 1}, TypeError, "`per_class` to be a bool"),
    ],
)
def test_mean_iou_bad_inputs(preds, target, arguments, error, match):
    with pytest.raises(error, match=match):
        mean_iou(preds, target, **arguments)
