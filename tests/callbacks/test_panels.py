"""Panels: the arrays they are built from against numpy/scikit-learn references, and the rendered figures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from lightning_genmetrics.callbacks.panels import (
    AGREE,
    DISAGREE,
    NOT_A_CLASS,
    class_colors,
    classifier_figures,
    confusion_figure,
    disagreement_map,
    reconstruction_errors,
    reconstruction_panel,
    roc_curves_to_auroc,
    roc_figure,
    row_normalized,
    segmentation_grid,
    segmentation_panel,
)
from lightning_genmetrics.metrics import AUROC, SegmentationMetrics

PAD = 2  # the white padding between grid cells


def _cell(grid: np.ndarray, row: int, column: int, height: int, width: int) -> np.ndarray:
    """Cell (row, column) of a ``[3, H', W']`` grid, as ``[3, height, width]``."""
    top, left = PAD + row * (height + PAD), PAD + column * (width + PAD)
    return grid[..., top : top + height, left : left + width]


def _render(figure: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def _colors_in(pixels: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in color) for color in np.unique(pixels.reshape(-1, 3), axis=0)}


def _segmentation_inputs(
    rng: np.random.Generator, n: int, height: int, width: int, used_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    masks = rng.integers(0, used_classes, (n, height, width))
    masks[rng.random(masks.shape) < 0.1] = 255  # ignored pixels
    predicted = np.where(rng.random(masks.shape) < 0.3, rng.integers(0, used_classes, masks.shape), masks % 256)
    predicted = np.where(masks == 255, rng.integers(0, used_classes, masks.shape), predicted)
    samples = rng.uniform(-1, 1, (n, 3, height, width)).astype(np.float32)
    return torch.from_numpy(masks), torch.from_numpy(samples), torch.from_numpy(predicted)


def test_class_colors_are_distinct_fixed_and_never_grey() -> None:
    colors = class_colors(256).numpy()
    assert len({tuple(c) for c in colors}) == 256
    assert not np.any((colors[:, 0] == colors[:, 1]) & (colors[:, 1] == colors[:, 2]))
    # Class k keeps its colour whatever the number of classes.
    np.testing.assert_array_equal(class_colors(7).numpy(), colors[:7])
    # Neighbouring classes are far apart (sum of channel differences), so adjacent regions can be told apart.
    assert np.abs(colors[1:].astype(int) - colors[:-1].astype(int)).sum(axis=1).min() > 60


def test_segmentation_grid_cells_match_independent_references(rng: np.random.Generator) -> None:
    n, height, width, num_classes = 5, 6, 9, 4
    masks, samples, predicted = _segmentation_inputs(rng, n, height, width, num_classes)
    grid = segmentation_grid(masks, samples, predicted, num_classes=num_classes, input_range=(-1, 1), max_rows=3)
    assert grid.dtype == torch.uint8
    assert tuple(grid.shape) == (3, PAD + 3 * (height + PAD), PAD + 4 * (width + PAD))
    grid_np, palette = grid.numpy(), class_colors(num_classes).numpy()

    def colored(labels: np.ndarray) -> np.ndarray:
        out = np.full((*labels.shape, 3), NOT_A_CLASS, dtype=np.uint8)
        valid = (labels >= 0) & (labels < num_classes)
        out[valid] = palette[labels[valid]]
        return out.transpose(2, 0, 1)

    for i in range(3):
        mask, pred = masks[i].numpy(), predicted[i].numpy()
        np.testing.assert_array_equal(_cell(grid_np, i, 0, height, width), colored(mask))
        expected_sample = np.clip(np.round((samples[i].numpy().astype(np.float64) + 1) / 2 * 255), 0, 255)
        np.testing.assert_array_equal(_cell(grid_np, i, 1, height, width), expected_sample)
        np.testing.assert_array_equal(_cell(grid_np, i, 2, height, width), colored(pred))
        disagreement = _cell(grid_np, i, 3, height, width)
        assert (disagreement == disagreement[:1]).all()  # grey levels: three equal channels
        ignored, differ = mask == 255, (mask != pred) & (mask != 255)
        assert differ.any()
        assert ignored.any()
        assert (~differ & ~ignored).any()
        np.testing.assert_array_equal(disagreement[0] == DISAGREE, differ)
        np.testing.assert_array_equal(disagreement[0] == NOT_A_CLASS, ignored)
        np.testing.assert_array_equal(disagreement[0] == AGREE, ~differ & ~ignored)


def test_disagreement_map_is_dark_exactly_where_the_labels_differ() -> None:
    masks = torch.tensor([[[0, 1, 2], [255, 1, -1]]])
    predicted = torch.tensor([[[0, 2, 2], [0, 0, 1]]])
    assert disagreement_map(masks, predicted, 3).tolist() == [
        [[AGREE, DISAGREE, AGREE], [NOT_A_CLASS, DISAGREE, NOT_A_CLASS]]
    ]


def test_segmentation_panel_shows_the_grid_the_iou_bars_and_only_the_classes_present(
    rng: np.random.Generator,
) -> None:
    n, height, width, num_classes, used = 3, 12, 12, 6, 4
    masks, samples, predicted = _segmentation_inputs(rng, n, height, width, used)
    scores = SegmentationMetrics(num_classes, ignore_index=255)
    scores.update(predicted, masks)
    iou = scores.compute()["iou"]
    assert torch.isnan(iou[used:]).all()
    assert not torch.isnan(iou[:used]).any()
    figure = segmentation_panel(
        masks, samples, predicted, num_classes=num_classes, per_class_iou=iou, input_range=(-1, 1), title="epoch 2"
    )
    grid_ax, bars_ax = figure.axes
    grid = segmentation_grid(masks, samples, predicted, num_classes=num_classes, input_range=(-1, 1))
    np.testing.assert_array_equal(np.asarray(grid_ax.images[0].get_array()), grid.permute(1, 2, 0).numpy())
    assert [t.get_text() for t in grid_ax.get_xticklabels()] == ["mask", "sample", "predicted", "disagreement"]
    np.testing.assert_allclose([bar.get_height() for bar in bars_ax.patches], iou.nan_to_num(0.0).numpy())
    assert [text.get_position()[0] for text in bars_ax.texts if text.get_text() == "n/a"] == [4, 5]
    assert f"mean {iou[:used].mean().item():.3f}" in bars_ax.get_title()

    pixels = _render(figure)
    shown = _colors_in(pixels)
    palette = [tuple(int(v) for v in c) for c in class_colors(num_classes).numpy()]
    # Masks, predictions and bars draw the classes present in their exact colours; absent classes appear nowhere.
    assert set(palette[:used]) <= shown
    assert not set(palette[used:]) & shown
    assert {(DISAGREE,) * 3, (NOT_A_CLASS,) * 3, (AGREE,) * 3} <= shown


def _class_state(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int, **binning: Any
) -> tuple[AUROC, SegmentationMetrics]:
    """A classifier judge's metrics, as ``ClassFidelity`` holds them, fed in two batches."""
    auroc = AUROC("multiclass", num_classes=num_classes, input="logits", **binning)
    confusion = SegmentationMetrics(num_classes)
    for part in (slice(0, 70), slice(70, None)):
        auroc.update(logits[part], labels[part])
        confusion.update(logits[part], labels[part])
    return auroc, confusion


def test_classifier_figures_match_scikit_learn(rng: np.random.Generator) -> None:
    n, num_classes = 200, 4
    labels_np = rng.integers(0, num_classes, n)
    logits_np = rng.normal(size=(n, num_classes))
    logits_np[np.arange(n), labels_np] += 1.0
    logits, labels = torch.from_numpy(logits_np), torch.from_numpy(labels_np)
    probabilities = torch.softmax(logits, dim=1).numpy()
    auroc, confusion = _class_state(logits, labels, num_classes, thresholds=None)
    figures = classifier_figures(auroc.roc(), confusion.confmat, title="epoch 1")

    expected_auc = [roc_auc_score(labels_np == k, probabilities[:, k]) for k in range(num_classes)]
    np.testing.assert_allclose(roc_curves_to_auroc(auroc.roc()).numpy(), expected_auc, rtol=0, atol=1e-12)
    roc_ax = figures["roc"].axes[0]
    legend = [text.get_text() for text in roc_ax.get_legend().get_texts()]
    assert legend == [f"class {k}: AUC {auc:.3f}" for k, auc in enumerate(expected_auc)]
    assert f"mean AUC {np.mean(expected_auc):.3f}" in roc_ax.get_title()
    for k in range(num_classes):
        fpr, tpr, _ = roc_curve(labels_np == k, probabilities[:, k], drop_intermediate=False)
        np.testing.assert_allclose(roc_ax.lines[1 + k].get_xydata(), np.stack([fpr, tpr], axis=1), atol=1e-12)

    expected_counts = confusion_matrix(labels_np, logits_np.argmax(axis=1), labels=range(num_classes))
    confusion_ax = figures["confusion"].axes[0]
    shown = np.array([int(text.get_text()) for text in confusion_ax.texts]).reshape(num_classes, num_classes)
    np.testing.assert_array_equal(shown, expected_counts)
    np.testing.assert_allclose(
        np.asarray(confusion_ax.images[0].get_array()), expected_counts / expected_counts.sum(axis=1, keepdims=True)
    )
    accuracy = np.trace(expected_counts) / n
    assert confusion_ax.get_title() == f"epoch 1: confusion (accuracy {accuracy:.3f})"
    for figure in figures.values():
        assert _render(figure).std() > 0


def test_classifier_figures_from_binned_state_and_a_missing_class(rng: np.random.Generator) -> None:
    n, num_classes = 150, 3
    labels_np = rng.integers(0, 2, n)  # class 2 is never a conditioning label: no positives, no ROC curve
    logits = torch.from_numpy(rng.normal(size=(n, num_classes)))
    auroc, confusion = _class_state(logits, torch.from_numpy(labels_np), num_classes, num_bins=4001, average="none")
    areas = roc_curves_to_auroc(auroc.roc())
    probabilities = torch.softmax(logits, dim=1).numpy()
    with pytest.warns(UserWarning, match="undefined"):
        bounds = auroc.error_bound()
    for k in range(2):
        assert abs(areas[k].item() - roc_auc_score(labels_np == k, probabilities[:, k])) <= bounds[k].item() + 1e-12
    assert torch.isnan(areas[2])
    figures = classifier_figures(auroc.roc(), confusion.confmat)
    legend = [text.get_text() for text in figures["roc"].axes[0].get_legend().get_texts()]
    assert legend[2] == "class 2: AUC n/a"
    image = np.asarray(figures["confusion"].axes[0].images[0].get_array())
    np.testing.assert_array_equal(image[2], 0.0)  # a label without samples: an empty row, not NaN
    assert _render(figures["roc"]).std() > 0


def test_roc_and_confusion_figures_draw_what_classifier_figures_draws(rng: np.random.Generator) -> None:
    logits, labels = torch.from_numpy(rng.normal(size=(60, 3))), torch.from_numpy(rng.integers(0, 3, 60))
    auroc, confusion = _class_state(logits, labels, 3, thresholds=None)
    pair = classifier_figures(auroc.roc(), confusion.confmat, title="epoch 2")
    alone = {
        "roc": roc_figure(auroc.roc(), title="epoch 2"),
        "confusion": confusion_figure(confusion.confmat, title="epoch 2"),
    }
    for name, figure in alone.items():
        np.testing.assert_array_equal(_render(figure), _render(pair[name]), err_msg=name)
    with pytest.raises(ValueError, match=r"shape \[C, C\], got shape \(2, 3\)"):
        confusion_figure(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative"):
        confusion_figure(torch.tensor([[1, -1], [0, 2]]))
    with pytest.raises(ValueError, match="one curve per class"):
        roc_figure((torch.zeros(3), torch.zeros(3), None))


def test_row_normalized_against_numpy(rng: np.random.Generator) -> None:
    counts = rng.integers(0, 20, (5, 5))
    counts[3] = 0
    expected = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    np.testing.assert_allclose(row_normalized(torch.from_numpy(counts)).numpy(), expected, rtol=0, atol=1e-15)


def test_reconstruction_errors_and_panel_against_numpy(rng: np.random.Generator) -> None:
    n, channels, height, width = 5, 3, 7, 8
    inputs_np = rng.uniform(-1, 1, (n, channels, height, width)).astype(np.float32)
    recons_np = (inputs_np + rng.normal(0, 0.3, inputs_np.shape)).astype(np.float32)  # some outside [-1, 1]
    inputs, recons = torch.from_numpy(inputs_np), torch.from_numpy(recons_np)
    expected = np.abs(inputs_np.astype(np.float64) - np.clip(recons_np, -1, 1)).mean(axis=1) / 2
    errors = reconstruction_errors(inputs, recons, input_range=(-1, 1))
    np.testing.assert_allclose(errors.numpy(), expected, rtol=1e-6, atol=1e-7)

    figure = reconstruction_panel(inputs, recons, input_range=(-1, 1), max_rows=3, title="epoch 5")
    pairs_ax, errors_ax = figure.axes[:2]
    error_grid = np.asarray(errors_ax.images[0].get_array().filled(np.nan))
    for i in range(3):
        np.testing.assert_allclose(_cell(error_grid, i, 0, height, width), expected[i], rtol=1e-6, atol=1e-7)
    assert np.isnan(error_grid[:PAD]).all()  # the padding is drawn as the colour map's "bad" white
    assert errors_ax.images[0].get_clim() == (0.0, pytest.approx(expected[:3].max()))
    pairs = np.asarray(pairs_ax.images[0].get_array()).transpose(2, 0, 1)

    def to_uint8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.round((np.clip(x.astype(np.float64), -1, 1) + 1) / 2 * 255), 0, 255)

    for i in range(3):
        np.testing.assert_array_equal(_cell(pairs, i, 0, height, width), to_uint8(inputs_np[i]))
        np.testing.assert_array_equal(_cell(pairs, i, 1, height, width), to_uint8(recons_np[i]))
    assert _render(figure).std() > 0
    fixed = reconstruction_panel(inputs, recons, input_range=(-1, 1), error_scale=0.25)
    assert fixed.axes[1].images[0].get_clim() == (0.0, 0.25)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"masks": torch.zeros(2, 4, 4)}, TypeError, "masks"),
        ({"predicted": torch.zeros(2, 4, 5, dtype=torch.long)}, ValueError, "predicted"),
        ({"samples": torch.zeros(2, 3, 4, 5)}, ValueError, "samples"),
        ({"samples": torch.full((2, 3, 4, 4), 2.0)}, ValueError, "range"),
        ({"per_class_iou": torch.zeros(2)}, ValueError, "per_class_iou"),
        ({"per_class_iou": torch.tensor([0.5, 1.5, 0.0])}, ValueError, "per_class_iou"),
        ({"max_rows": 0}, ValueError, "max_rows"),
    ],
)
def test_segmentation_panel_rejects_bad_inputs(change: dict[str, Any], error: type[Exception], match: str) -> None:
    arguments: dict[str, Any] = {
        "masks": torch.zeros(2, 4, 4, dtype=torch.long),
        "samples": torch.zeros(2, 3, 4, 4),
        "predicted": torch.zeros(2, 4, 4, dtype=torch.long),
        "num_classes": 3,
        "per_class_iou": torch.zeros(3),
        "input_range": (0, 1),
        **change,
    }
    masks, samples, predicted = (arguments.pop(name) for name in ("masks", "samples", "predicted"))
    with pytest.raises(error, match=match):
        segmentation_panel(masks, samples, predicted, **arguments)


def test_classifier_figures_and_reconstruction_panel_reject_bad_inputs() -> None:
    curves = ([torch.tensor([0.0, 1.0])] * 2, [torch.tensor([0.0, 1.0])] * 2, None)
    with pytest.raises(ValueError, match=r"shape \[2, 2\]"):
        classifier_figures(curves, torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        classifier_figures(curves, torch.zeros(2, 2))
    with pytest.raises(TypeError, match="roc"):
        classifier_figures(torch.zeros(2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="one curve per class"):
        classifier_figures((torch.zeros(3), torch.zeros(3), None), torch.zeros(1, 1, dtype=torch.long))
    images = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        reconstruction_panel(images, images[:, :, :3], input_range=(0, 1))
    with pytest.raises(ValueError, match="error_scale"):
        reconstruction_panel(images, images, input_range=(0, 1), error_scale=0.0)
    with pytest.raises(ValueError, match="input_range"):
        reconstruction_errors(images, images, input_range=(0, 255))
    with pytest.raises(TypeError, match="floating point"):
        reconstruction_errors(images, images.to(torch.uint8), input_range=(0, 1))
