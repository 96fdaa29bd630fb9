import matplotlib
import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from lightning_genmetrics.functional.segmentation import per_image_mean_iou, segmentation_scores
from lightning_genmetrics.metrics.segmentation import MeanIoU, SegmentationMetrics
from tests.contract import MetricContract, unchanged_state

matplotlib.use("Agg")


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


_BAD = [
    (
        (torch.tensor([[0, 7]]), torch.tensor([[0, 1]])),
        ValueError,
        r"`preds` class labels in \[0, 3\), got values in \[0, 7\]",
    ),
    (
        (torch.tensor([[0, 1]]), torch.tensor([[0, 9]])),
        ValueError,
        r"in \[0, 3\) or `ignore_index` \(255\), got values in \[0, 9\]",
    ),
    ((torch.tensor([[0, 1]]), torch.tensor([[0, 1, 2]])), ValueError, "shape"),
    ((torch.full((1, 3, 2), float("nan")), torch.tensor([[0, 1]])), ValueError, "NaN"),
    ((torch.rand(1, 4, 2), torch.tensor([[0, 1]])), ValueError, r"class scores of shape \[1, 3, 2\]"),
    ((torch.tensor([[0, 1]]), torch.tensor([[0.0, 1.0]])), TypeError, "integer tensor"),
    (("labels", torch.tensor([[0, 1]])), TypeError, "`preds` to be a torch.Tensor"),
]


@pytest.mark.parametrize("per_image", [True, False])
def test_metric_contract(rng, per_image):
    pred, target = _maps(rng, 6, 3, ignore_index=255)
    contract = MetricContract(
        lambda: SegmentationMetrics(3, 255, per_image=per_image),
        [(pred[:2], target[:2]), (pred[2:3], target[2:3]), (pred[3:], target[3:])],
        rtol=1e-13,  # the counts are exact; the per-image mean is a float64 sum
    )
    contract.check_batch_split()
    merged = contract.check_merge()
    with pytest.raises(
        ValueError, match=r"Cannot merge a confusion matrix of shape \[2, 2\] into one of shape \[3, 3\]"
    ):
        merged[0].merge_state(SegmentationMetrics(2, per_image=per_image))
    contract.check_state_size()
    contract.check_rejected_updates(_BAD)


def test_state_is_one_int64_matrix_whatever_the_data(rng):
    metric = SegmentationMetrics(21)
    for _ in range(3):
        metric.update(*_maps(rng, 2, 21, size=(32, 32)))
    assert {name: (v.dtype, tuple(v.shape)) for name, v in metric.metric_state.items()} == {
        "confmat": (torch.int64, (21, 21))
    }
    assert int(metric.confmat.sum()) == 3 * 2 * 32 * 32


def test_absent_score_counts_absent_classes():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    default = SegmentationMetrics(4)
    default.update(pred, target)
    assert default.compute()["miou"].item() == pytest.approx((0.5 + 2 / 3) / 2)
    counted = SegmentationMetrics(4, absent_score=0.0)
    counted.update(pred, target)
    assert counted.compute()["miou"].item() == pytest.approx((0.5 + 2 / 3) / 4)


def test_forward_returns_the_batch_scores_and_accumulates(rng):
    metric = SegmentationMetrics(3, per_image=True)
    batches = [_maps(rng, 2, 3), _maps(rng, 3, 3)]
    for pred, target in batches:
        batch_scores = metric(pred, target)
        per_image = batch_scores.pop("per_image_miou")
        _assert_scores_equal(batch_scores, segmentation_scores(pred, target, 3))
        assert per_image.item() == pytest.approx(per_image_mean_iou(pred, target, 3).item(), rel=1e-12)
    assert int(metric.image_count) == 5
    whole = [torch.cat([batch[i] for batch in batches]) for i in (0, 1)]
    scores = metric.compute()
    assert scores.pop("per_image_miou").item() == pytest.approx(per_image_mean_iou(*whole, 3).item(), rel=1e-12)
    _assert_scores_equal(scores, segmentation_scores(*whole, 3))


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_reset_clears(rng):
    metric = SegmentationMetrics(3, per_image=True)
    metric.update(*_maps(rng, 2, 3))
    metric.reset()
    assert int(metric.confmat.sum()) == 0
    with pytest.raises(RuntimeError, match="no pixels yet"):
        metric.compute()


def test_plot_draws_the_scalar_scores_and_per_class_vectors():
    metric = SegmentationMetrics(3)
    metric.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 1, 1, 2]]))
    _, axes = metric.plot()
    labels = axes.get_legend_handles_labels()[1]
    assert "miou" in labels
    assert "iou" not in labels
    _, axes = metric.plot(metric.compute()["iou"])
    assert len(axes.lines) == 3


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


# MeanIoU: torchmetrics' per-image IoU, averaged over the images where a class is present ---------------------------


def _reference_mean_iou(pred: np.ndarray, target: np.ndarray, num_classes: int, first: int, per_class: bool):
    """Loops over images and classes ``first..C-1`` of label maps: per class the IoUs of the images where it is
    present and their mean (-1 if none), or the mean of all of them."""
    ious: list[list[float]] = [[] for _ in range(first, num_classes)]
    for p, t in zip(pred, target, strict=True):
        for k, c in enumerate(range(first, num_classes)):
            union = np.sum((p == c) | (t == c))
            if union:
                ious[k].append(np.sum((p == c) & (t == c)) / union)
    if per_class:
        return np.array([np.mean(values) if values else -1.0 for values in ious])
    pooled = [value for values in ious for value in values]
    return np.mean(pooled) if pooled else np.nan


@pytest.mark.parametrize(
    ("include_background", "per_class"), [(True, False), (False, False), (True, True), (False, True)]
)
def test_mean_iou_batches_match_the_per_image_reference(rng, include_background, per_class):
    pred, target = _maps(rng, 9, 6, size=(7, 5, 3), agreement=0.5)
    target[:4] = torch.clamp(target[:4], max=2)  # classes 3..5 absent from some images' truth
    metric = MeanIoU(6, include_background, per_class, "index")
    _feed(metric, pred, target, rng)
    value = metric.compute()
    expected = _reference_mean_iou(pred.numpy(), target.numpy(), 6, 0 if include_background else 1, per_class)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-13)
    assert value.dtype == torch.float64
    assert value.shape == ((6 if include_background else 5,) if per_class else ())
    assert {name: (v.dtype, tuple(v.shape)) for name, v in metric.metric_state.items()} == {
        "iou_sum": (torch.float64, (6 if include_background else 5,)),
        "present": (torch.int64, (6 if include_background else 5,)),
        "image_count": (torch.int64, ()),
    }


def test_mean_iou_forward_returns_the_batch_value(rng):
    metric = MeanIoU(4, per_class=True, input_format="index")
    batches = [_maps(rng, n, 4) for n in (2, 3)]
    for pred, target in batches:
        expected = _reference_mean_iou(pred.numpy(), target.numpy(), 4, 0, per_class=True)
        np.testing.assert_allclose(metric(pred, target).numpy(), expected, rtol=1e-13)
    whole = [torch.cat([batch[i] for batch in batches]).numpy() for i in (0, 1)]
    np.testing.assert_allclose(metric.compute().numpy(), _reference_mean_iou(*whole, 4, 0, True), rtol=1e-13)
    assert int(metric.image_count) == 5


@pytest.mark.parametrize("num_classes", [3, None])  # None: read from the first batch, and merged lazily
def test_mean_iou_metric_contract(rng, num_classes):
    pred, target = _maps(rng, 6, 3)
    logits = torch.nn.functional.one_hot(pred, 3).movedim(-1, 1).double() + torch.from_numpy(rng.random((6, 3, 12, 10)))
    contract = MetricContract(
        lambda: MeanIoU(num_classes, per_class=True, input_format="mixed"),
        [(logits[:2], target[:2]), (logits[2:], target[2:])],
        rtol=1e-14,
    )
    assert contract.make_metric().iou_sum.shape == ((3,) if num_classes else (0,))
    contract.check_batch_split()
    merged = contract.check_merge()
    with pytest.raises(ValueError, match="Cannot combine a state with number of scored classes 2 with one of 3"):
        merged[0].merge_state(MeanIoU(2))
    contract.check_state_size()
    contract.check_rejected_updates(
        [
            (
                (torch.rand(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.int64)),
                ValueError,
                "with 3 scored classes as before, got 4" if num_classes is None else r"`num_classes` \(3\) classes",
            )
        ]
    )


def test_mean_iou_bad_update_leaves_state_untouched(rng):
    metric = MeanIoU(3, input_format="index")
    metric.update(*_maps(rng, 2, 3))
    with unchanged_state(metric):
        for preds, target, error in [
            (torch.tensor([[[0, 7]]]), torch.tensor([[[0, 1]]]), ValueError),
            (torch.tensor([[[0, 1]]]), torch.tensor([[[0, 1, 2]]]), ValueError),
            (torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[0, 1]]]), TypeError),
        ]:
            with pytest.raises(error):
                metric.update(preds, target)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_mean_iou_compute_before_update_raises():
    with pytest.raises(RuntimeError, match="MeanIoU has no images yet"):
        MeanIoU(3).compute()


def test_mean_iou_plot_draws_per_class_values(rng):
    metric = MeanIoU(4, per_class=True, input_format="index")
    metric.update(*_maps(rng, 3, 4))
    _, axes = metric.plot()
    assert len(axes.lines) == 4
    values = [metric(*_maps(rng, 2, 4)) for _ in range(3)]
    _, axes = metric.plot(values)
    assert len(axes.lines) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 0}, ValueError, "`num_classes` to be an int >= 1, got 0"),
        ({"num_classes": 2.0}, TypeError, "`num_classes` to be an int"),
        ({"include_background": 255}, TypeError, "`include_background` to be a bool, got 255"),
        ({"per_class": "yes"}, TypeError, "`per_class` to be a bool"),
        ({"input_format": "onehot"}, ValueError, "`input_format` to be one of 'one-hot', 'index', 'mixed'"),
    ],
)
def test_mean_iou_bad_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        MeanIoU(**kwargs)
