"""``MeanIoU`` and ``mean_iou`` against torchmetrics 1.9: its own test cases, live comparisons, two gloo processes.

torchmetrics' cases (tests/unittests/segmentation/test_mean_iou.py) are ported with their inputs (one-hot,
index and mixed batches of 5 classes, 4 batches of 32 images), their reference (MONAI's ``compute_iou``:
per-image, per-class IoU with absent classes set to 0, then the mean) written here in NumPy, and their
tolerance (``atol=1e-4``). Two gloo processes with uneven and empty shards: tests/ddp/test_ddp_confusion.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex
from torchmetrics.functional.segmentation import mean_iou as tm_mean_iou
from torchmetrics.segmentation import MeanIoU as TMMeanIoU

from lightning_genmetrics.functional.segmentation import mean_iou, per_image_mean_iou
from lightning_genmetrics.metrics.segmentation import MeanIoU, SegmentationMetrics

NUM_CLASSES, NUM_BATCHES, BATCH_SIZE = 5, 4, 32
ATOL = 1e-4  # torchmetrics' TestMeanIoU.atol


def _to_one_hot(labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, NUM_CLASSES).movedim(-1, 2)


def _torchmetrics_inputs() -> dict[str, tuple[torch.Tensor, torch.Tensor, str]]:
    """torchmetrics' segmentation inputs: ``[NUM_BATCHES, BATCH_SIZE, ...]`` from seed 42."""
    generator = torch.Generator().manual_seed(42)

    def labels(*size: int) -> torch.Tensor:
        return torch.randint(0, NUM_CLASSES, (NUM_BATCHES, BATCH_SIZE, *size), generator=generator)

    return {
        "one_hot_1": (_to_one_hot(labels(16, 16)), _to_one_hot(labels(16, 16)), "one-hot"),
        "one_hot_2": (_to_one_hot(labels(32, 32)), _to_one_hot(labels(32, 32)), "one-hot"),
        "index_1": (labels(32, 32), labels(32, 32), "index"),
        "mixed_1": (_to_one_hot(labels(32, 32)), labels(32, 32), "mixed"),
        "mixed_2": (labels(32, 32), _to_one_hot(labels(32, 32)), "mixed"),
        "mixed_logits": (
            torch.rand((NUM_BATCHES, BATCH_SIZE, NUM_CLASSES, 32, 32), generator=generator) * 12 - 6,
            labels(32, 32),
            "mixed",
        ),
    }


INPUTS = _torchmetrics_inputs()


def _as_masks(x: np.ndarray, is_one_hot: bool) -> np.ndarray:
    """``[N, C, ...]`` bool masks of one side, as torchmetrics' reference builds them."""
    if not is_one_hot:
        return x[:, None] == np.arange(NUM_CLASSES).reshape(1, -1, *([1] * (x.ndim - 1)))
    if np.issubdtype(x.dtype, np.floating):
        return _as_masks(x.argmax(axis=1), False)
    return x.astype(bool)


def _reference_image_iou(preds: torch.Tensor, target: torch.Tensor, input_format: str, include_background: bool):
    """MONAI's ``compute_iou`` in NumPy: ``[N, C']`` IoU per image and class, NaN for an empty union."""
    p, t = preds.numpy(), target.numpy()
    p_one_hot = input_format == "one-hot" or (input_format == "mixed" and p.ndim == t.ndim + 1)
    t_one_hot = input_format == "one-hot" or (input_format == "mixed" and t.ndim == p.ndim + 1)
    p, t = _as_masks(p, p_one_hot), _as_masks(t, t_one_hot)
    if not include_background:
        p, t = p[:, 1:], t[:, 1:]
    axes = tuple(range(2, p.ndim))
    intersection = (p & t).sum(axis=axes)
    union = (p | t).sum(axis=axes)
    with np.errstate(invalid="ignore"):
        return intersection / union


def _reduce(image_iou: np.ndarray, per_class: bool) -> np.ndarray:
    """torchmetrics' test reduction: the mean over images (and classes) of the IoUs with absent ones set to 0."""
    return image_iou.mean(axis=0) if per_class else image_iou.mean()


def _case_params():
    cases = [
        ("one_hot_1", NUM_CLASSES),
        ("one_hot_2", NUM_CLASSES),
        ("one_hot_1", None),
        ("one_hot_2", None),
        ("index_1", NUM_CLASSES),
        ("mixed_1", NUM_CLASSES),
        ("mixed_2", NUM_CLASSES),
        ("mixed_logits", NUM_CLASSES),
    ]
    return [pytest.param(name, num_classes, id=f"{name}-{num_classes}") for name, num_classes in cases]


@pytest.mark.parametrize(("name", "num_classes"), _case_params())
@pytest.mark.parametrize("include_background", [True, False])
def test_port_of_torchmetrics_cases(name, num_classes, include_background):
    """TestMeanIoU: the class with and without ``per_class`` (forward batch by batch, then all batches) and the
    functional form (``per_class=True``, per image) against the reference."""
    preds, target, input_format = INPUTS[name]
    metrics = {
        per_class: MeanIoU(
            num_classes=num_classes,
            include_background=include_background,
            per_class=per_class,
            input_format=input_format,
        )
        for per_class in (True, False)
    }
    images = []
    for batch in range(NUM_BATCHES):
        image_iou = np.nan_to_num(
            _reference_image_iou(preds[batch], target[batch], input_format, include_background), nan=0.0
        )
        images.append(image_iou)
        functional = mean_iou(preds[batch], target[batch], num_classes, include_background, True, input_format)
        np.testing.assert_allclose(functional.numpy(), image_iou, atol=ATOL)
        for per_class, metric in metrics.items():
            value = metric(preds[batch], target[batch])
            np.testing.assert_allclose(value.numpy(), _reduce(image_iou, per_class), atol=ATOL)
    for per_class, metric in metrics.items():
        np.testing.assert_allclose(metric.compute().numpy(), _reduce(np.concatenate(images), per_class), atol=ATOL)


def test_port_index_needs_num_classes():
    with pytest.raises(ValueError, match=r"`num_classes` to be an int when `input_format` is 'index'"):
        MeanIoU(num_classes=None, input_format="index")
    with pytest.raises(ValueError, match=r"`num_classes` to be an int when `input_format` is 'index'"):
        mean_iou(*INPUTS["index_1"][:2], num_classes=None, input_format="index")


def test_port_absent_class_is_minus_one_and_left_out_of_the_mean():
    target = torch.tensor([[0, 1], [1, 0]])
    preds = torch.tensor([[0, 1], [1, 0]])
    metric = MeanIoU(num_classes=3, per_class=True, input_format="index")
    metric.update(preds, target)
    functional = mean_iou(preds, target, num_classes=3, per_class=True, input_format="index").mean(dim=0)
    assert metric.compute().tolist() == functional.tolist() == [1.0, 1.0, -1.0]
    metric = MeanIoU(num_classes=3, per_class=False, input_format="index")
    metric.update(preds, target)
    functional = mean_iou(preds, target, num_classes=3, per_class=False, input_format="index").mean(dim=0)
    assert metric.compute().item() == functional.item() == 1.0


def test_port_perfect_prediction():
    target = preds = torch.tensor([[0, 1], [1, 0], [2, 2]])
    metric = MeanIoU(num_classes=3, per_class=True, input_format="index")
    metric.update(preds, target)
    functional = mean_iou(preds, target, num_classes=3, per_class=True, input_format="index").mean(dim=0)
    assert metric.compute().tolist() == functional.tolist() == [1.0, 1.0, 1.0]


# Live comparison with torchmetrics on fresh random inputs ---------------------------------------------------------


def _random_case(
    rng: np.random.Generator, input_format: str, spatial: tuple[int, ...], num_classes: int, logits_first: bool = True
):
    """A batch in ``input_format``, with some classes absent from some images (few classes per image); "mixed" is
    logits and label maps (``logits_first``) or label maps and one-hot targets."""
    n = 6
    target = rng.integers(0, num_classes, (n, *spatial))
    target[: n // 2] = np.minimum(target[: n // 2], 1)  # half the images hold classes 0 and 1 only
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, num_classes, target.shape))
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)
    if input_format == "index":
        return pred_t, target_t
    one_hot = torch.nn.functional.one_hot(target_t, num_classes).movedim(-1, 1)
    if input_format == "one-hot":
        multilabel = torch.from_numpy(rng.random((n, num_classes, *spatial)) < 0.3)  # overlapping masks
        return multilabel, one_hot
    logits = torch.from_numpy(rng.standard_normal((n, num_classes, *spatial))).float()
    logits += 3.0 * torch.nn.functional.one_hot(pred_t, num_classes).movedim(-1, 1)
    return (logits, target_t) if logits_first else (pred_t, one_hot)


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("input_format", ["one-hot", "index", "mixed"])
@pytest.mark.parametrize("spatial", [(9, 7), (4, 5, 3)], ids=["2d", "3d"])
@pytest.mark.parametrize(("include_background", "per_class"), [(True, False), (False, True), (True, True)])
def test_class_and_forward_match_torchmetrics(rng, input_format, spatial, include_background, per_class):
    num_classes = 4
    preds, target = _random_case(rng, input_format, spatial, num_classes, logits_first=rng.random() < 0.5)
    given = None if input_format != "index" and rng.random() < 0.5 else num_classes
    arguments = (given, include_background, per_class, input_format)
    ours, theirs = MeanIoU(*arguments), TMMeanIoU(*arguments)
    keyword = MeanIoU(
        num_classes=given, include_background=include_background, per_class=per_class, input_format=input_format
    )
    for p, t in zip(preds.split([1, 3, 2]), target.split([1, 3, 2]), strict=True):
        _close(ours(p, t), theirs(p, t))
        keyword.update(p, t)
    _close(ours.compute(), theirs.compute())
    torch.testing.assert_close(keyword.compute(), ours.compute(), rtol=1e-14, atol=0)
    _close(
        mean_iou(preds, target, given, include_background, per_class, input_format),
        tm_mean_iou(preds, target, given, include_background, per_class, input_format),
    )


def test_one_and_two_dimensional_label_maps_are_one_image_as_in_torchmetrics(rng):
    for shape in [(7,), (5, 6)]:
        preds, target = (torch.from_numpy(rng.integers(0, 3, shape)) for _ in range(2))
        for per_class in (False, True):
            _close(
                mean_iou(preds, target, 3, per_class=per_class, input_format="index"),
                tm_mean_iou(preds, target, 3, per_class=per_class, input_format="index"),
            )
            ours, theirs = MeanIoU(3, True, per_class, "index"), TMMeanIoU(3, True, per_class, "index")
            _close(ours(preds, target), theirs(preds, target))


def test_no_class_present_gives_nan_or_minus_one_as_torchmetrics():
    background = torch.zeros(2, 4, 4, dtype=torch.int64)
    for per_class in (False, True):
        ours, theirs = MeanIoU(3, False, per_class, "index"), TMMeanIoU(3, False, per_class, "index")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _close(ours(background, background), theirs(background, background))
        _close(ours.compute(), theirs.compute())


def test_per_image_miou_is_the_mean_of_torchmetrics_per_image_values(rng):
    preds, target = _random_case(rng, "index", (8, 8), 5)
    expected = tm_mean_iou(preds, target, 5, input_format="index").double().mean()
    torch.testing.assert_close(per_image_mean_iou(preds, target, 5), expected, rtol=0, atol=1e-6)
    metric = SegmentationMetrics(5, per_image=True)
    metric.update(preds, target)
    torch.testing.assert_close(metric.compute()["per_image_miou"], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("ignore_index", [None, 255, 2])
def test_segmentation_metrics_averages_match_torchmetrics(rng, ignore_index):
    preds, target = _random_case(rng, "index", (10, 10), 6)
    if ignore_index is not None:
        target[torch.from_numpy(rng.random(target.shape) < 0.1)] = ignore_index
    ours = SegmentationMetrics(6, ignore_index)
    batch_values = [ours(p, t) for p, t in zip(preds.split(4), target.split(4), strict=True)]
    scores = ours.compute()
    for average, name in [("macro", "miou"), ("micro", "iou_micro"), ("weighted", "iou_weighted")]:
        theirs = MulticlassJaccardIndex(6, average=average, ignore_index=ignore_index)
        for p, t, batch in zip(preds.split(4), target.split(4), batch_values, strict=True):
            _close(batch[name], theirs(p, t))
        _close(scores[name], theirs.compute())
    # A class equal to `ignore_index` is left out of the Dice means, as of the IoU ones; torchmetrics' F1 counts it.
    if ignore_index is None or ignore_index >= 6:
        for average, name in [("macro", "mdice"), ("micro", "dice_micro"), ("weighted", "dice_weighted")]:
            _close(scores[name], MulticlassF1Score(6, average=average, ignore_index=ignore_index)(preds, target))


# Refusals name the replacement -------------------------------------------------------------------------------------


@pytest.mark.parametrize("former", ["ignore_index", "absent_score", "per_image"])
def test_former_dataset_level_options_name_segmentation_metrics(former):
    with pytest.raises(TypeError, match=r"takes no `.*`: for the dataset-level mIoU .* use SegmentationMetrics"):
        MeanIoU(4, **{former: 255 if former == "ignore_index" else 0.0})


def test_label_maps_under_the_one_hot_default_name_input_format_index():
    with pytest.raises(ValueError, match=r"only 0 and 1, got values in \[0, 3\]; for label maps pass input_format="):
        MeanIoU().update(torch.tensor([[[0, 3], [2, 1]]]), torch.tensor([[[0, 3], [2, 1]]]))
    metric = MeanIoU(num_classes=4)
    with pytest.raises(ValueError, match=r"`num_classes` \(4\) classes in dim 1.* pass input_format='index'"):
        metric.update(torch.zeros(2, 3, 5, dtype=torch.int64), torch.zeros(2, 3, 5, dtype=torch.int64))
    assert metric.update_count == 0


def test_nothing_left_to_score_names_include_background():
    with pytest.raises(ValueError, match="pass include_background=True"):
        MeanIoU(1, include_background=False)
    metric = MeanIoU(include_background=False)
    with pytest.raises(ValueError, match="pass include_background=True"):
        metric.update(torch.ones(2, 1, 3, dtype=torch.int64), torch.ones(2, 1, 3, dtype=torch.int64))
