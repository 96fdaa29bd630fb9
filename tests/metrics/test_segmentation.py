import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from lightning_genmetrics.functional.segmentation import per_image_mean_iou, segmentation_scores
from lightning_genmetrics.metrics.segmentation import MeanIoU, SegmentationMetrics


def _state(metric):
    return {name: value.clone() for name, value in metric.metric_state.items()}


def _assert_same_state(metric, before):
    after = metric.metric_state
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert torch.equal(value, after[name]), name


def _maps(rng, n, num_classes, size=(12, 10), ignore_index=None, agreement=0.6):
    target = rng.integers(0, num_classes, (n, *size))
    pred = np.where(rng.random(target.shape) < agreement, target, rng.integers(0, num_classes, target.shape))
    if ignore_index is not None:
        target[rng.random(target.shape) < 0.1] = ignore_index
    return torch.from_numpy(pred), torch.from_numpy(target)


def _feed(metric, pred, target, rng):
    cuts = np.sort(rng.choice(np.arange(1, len(pred)), size=min(3, len(pred) - 1), replace=False))
    for p, t in zip(np.split(pred.numpy(), cuts), np.split(target.numpy(), cuts), strict=True):
        metric.update(torch.from_numpy(p), torch.from_numpy(t))


def _assert_scores_equal(a, b):
    """Equal bit for bit (integer counts), except the per-image mean: a float64 sum, exact to rounding."""
    assert a.keys() == b.keys()
    for name, value in a.items():
        rtol = 1e-13 if name == "per_image_miou" else 0.0
        torch.testing.assert_close(value, b[name], rtol=rtol, atol=0, equal_nan=True, msg=name)


@pytest.mark.parametrize("ignore_index", [None, 255])
def test_batches_give_the_one_batch_scores_and_match_torchmetrics(rng, ignore_index):
    pred, target = _maps(rng, 9, 7, ignore_index=ignore_index)
    metric = SegmentationMetrics(7, ignore_index=ignore_index, per_image=True)
    _feed(metric, pred, target, rng)
    scores = metric.compute()
    _assert_scores_equal(
        {k: v for k, v in scores.items() if k != "per_image_miou"},
        segmentation_scores(pred, target, 7, ignore_index=ignore_index),
    )
    assert scores["per_image_miou"].item() == pytest.approx(
        per_image_mean_iou(pred, target, 7, ignore_index=ignore_index).item(), rel=1e-12
    )
    reference = MulticlassJaccardIndex(7, ignore_index=ignore_index)
    reference.update(pred, target)
    assert scores["miou"].item() == pytest.approx(reference.compute().item(), abs=1e-6)
    per_class = MulticlassJaccardIndex(7, ignore_index=ignore_index, average="none")
    per_class.update(pred, target)
    torch.testing.assert_close(scores["iou"], per_class.compute().double(), rtol=1e-6, atol=1e-7)


def test_score_maps_are_accepted(rng):
    scores = torch.from_numpy(rng.standard_normal((3, 5, 8, 8)))
    target = torch.from_numpy(rng.integers(0, 5, (3, 8, 8)))
    metric = SegmentationMetrics(5)
    metric.update(scores, target)
    _assert_scores_equal(metric.compute(), segmentation_scores(scores.argmax(1), target, 5))


def test_merge_state_equals_one_stream(rng):
    pred, target = _maps(rng, 6, 4, ignore_index=255)
    whole, left, right = (SegmentationMetrics(4, 255, per_image=True) for _ in range(3))
    whole.update(pred, target)
    left.update(pred[:2], target[:2])
    right.update(pred[2:], target[2:])
    left.merge_state(right)
    _assert_scores_equal(left.compute(), whole.compute())
    with pytest.raises(ValueError, match=r"Cannot merge a confusion matrix of shape \[3, 3\]"):
        left.merge_state(SegmentationMetrics(3, per_image=True))


def test_state_is_one_int64_matrix_whatever_the_data(rng):
    metric = SegmentationMetrics(21)
    for _ in range(3):
        metric.update(*_maps(rng, 2, 21, size=(32, 32)))
    assert {name: (v.dtype, tuple(v.shape)) for name, v in metric.metric_state.items()} == {
        "confmat": (torch.int64, (21, 21))
    }
    assert int(metric.confmat.sum()) == 3 * 2 * 32 * 32


def test_mean_iou_alias_and_absent_score(rng):
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    alias = MeanIoU(4)
    alias.update(pred, target)
    assert alias.compute().item() == pytest.approx((0.5 + 2 / 3) / 2)
    counted = SegmentationMetrics(4, absent_score=0.0)
    counted.update(pred, target)
    assert counted.compute()["miou"].item() == pytest.approx((0.5 + 2 / 3) / 4)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_forward_accumulates_and_reset_clears(rng):
    metric = SegmentationMetrics(3, per_image=True)
    pred, target = _maps(rng, 2, 3)
    assert metric(pred, target) is None
    assert int(metric.confmat.sum()) == target.numel()
    assert int(metric.image_count) == 2
    metric.reset()
    assert int(metric.confmat.sum()) == 0
    with pytest.raises(RuntimeError, match="no pixels yet"):
        metric.compute()


@pytest.mark.parametrize(
    ("preds", "target", "error", "match"),
    [
        (
            torch.tensor([[0, 7]]),
            torch.tensor([[0, 1]]),
            ValueError,
            r"`preds` class labels in \[0, 3\), got values in \[0, 7\]",
        ),
        (
            torch.tensor([[0, 1]]),
            torch.tensor([[0, 9]]),
            ValueError,
            r"in \[0, 3\) or `ignore_index` \(255\), got values in \[0, 9\]",
        ),
        (torch.tensor([[0, 1]]), torch.tensor([[0, 1, 2]]), ValueError, "shape"),
        (torch.full((1, 3, 2), float("nan")), torch.tensor([[0, 1]]), ValueError, "NaN"),
        (torch.rand(1, 4, 2), torch.tensor([[0, 1]]), ValueError, r"class scores of shape \[1, 3, 2\]"),
        (torch.tensor([[0, 1]]), torch.tensor([[0.0, 1.0]]), TypeError, "integer tensor"),
        ("labels", torch.tensor([[0, 1]]), TypeError, "`preds` to be a torch.Tensor"),
    ],
)
def test_bad_update_leaves_state_untouched(rng, preds, target, error, match):
    metric = SegmentationMetrics(3, ignore_index=255, per_image=True)
    metric.update(*_maps(rng, 2, 3))
    before, count = _state(metric), metric.update_count
    with pytest.raises(error, match=match):
        metric.update(preds, target)
    _assert_same_state(metric, before)
    assert metric.update_count == count


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 0}, ValueError, "`num_classes` to be an int >= 1, got 0"),
        ({"num_classes": 2.0}, TypeError, "`num_classes` to be an int"),
        ({"ignore_index": "255"}, TypeError, "ignore_index"),
        ({"absent_score": -1.0}, ValueError, "absent_score"),
        ({"per_image": 1}, TypeError, "`per_image` to be a bool"),
    ],
)
def test_bad_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        SegmentationMetrics(**{"num_classes": 3, **kwargs})
