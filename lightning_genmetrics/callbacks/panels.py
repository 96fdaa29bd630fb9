"""Pictures of what the conditional and reconstruction phases already hold: no network pass of their own.

- :func:`segmentation_panel`: rows of conditioning mask | generated sample | the segmenter's predicted mask |
  where they disagree, beside the per-class IoU bars (a ``Figure``); :func:`segmentation_grid` is its image
  part alone, a uint8 ``[3, H, W]`` grid that needs no matplotlib.
- :func:`classifier_figures`: a classifier judge's one-vs-rest ROC curves (from an
  :class:`~lightning_genmetrics.metrics.AUROC`'s ``roc()``) and its confusion matrix of conditioning labels vs
  predicted classes (from the ``[C, C]`` counts a ``SegmentationMetrics`` keeps), two ``Figure`` objects;
  :func:`roc_figure` and :func:`confusion_figure` draw one each.
- :func:`reconstruction_panel`: rows of input | reconstruction | error map (a ``Figure``);
  :func:`reconstruction_errors` gives the map.

Class colours come from :func:`class_colors`: a fixed palette (golden-ratio hues at two saturations and three
brightnesses), the same for every run, epoch and number of classes, with no grey among them. Mid grey is "not
a class" (an ignored mask pixel); in the disagreement column light grey is "agree" and black "disagree".

matplotlib is optional (the ``plots`` extra): it is imported only to draw, and the figures are plain
``matplotlib.figure.Figure`` objects without pyplot.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_finite, check_positive_int, check_tensor
from lightning_genmetrics.callbacks.figures import _require_matplotlib
from lightning_genmetrics.features.preprocess import InputRange, check_input_range, images_to_uint8
from lightning_genmetrics.functional.auroc import roc_to_auroc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NOT_A_CLASS = 128  # grey: a mask value outside [0, num_classes), e.g. an ignore_index
# Light grey, not white: the cells of the disagreement column stay visible against the white padding.
AGREE, DISAGREE = 230, 0
SEGMENTATION_COLUMNS = ("mask", "sample", "predicted", "disagreement")
# Above this many classes the ROC legend and the confusion matrix's numbers would be unreadable: left out.
MAX_ANNOTATED_CLASSES = 20
# The most rows the callback's panels show (the first samples of rank 0): more would make a figure too tall to read.
PANEL_ROWS = 8
_GOLDEN = (math.sqrt(5) - 1) / 2
_PADDING = 2
_CELL_INCHES = 1.2


def class_colors(num_classes: int) -> Tensor:
    """One RGB colour per class, uint8 ``[num_classes, 3]``: distinct, deterministic, never grey.

    Class ``k`` has hue ``k·0.618…`` (mod 1), saturation 0.85 or 0.6 and brightness 0.95, 0.75 or 0.55, so
    neighbouring classes differ in hue and brightness, and class ``k`` has the same colour whatever
    ``num_classes`` is.

    Example:
        >>> class_colors(3).tolist()
        [[242, 36, 36], [29, 76, 191], [91, 140, 21]]
    """
    num_classes = check_positive_int(num_classes, "num_classes")
    colors = []
    for k in range(num_classes):
        hue = (k * _GOLDEN) % 1.0
        saturation = (0.85, 0.6)[(k // 3) % 2]
        value = (0.95, 0.75, 0.55)[k % 3]
        colors.append([round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value)])
    return torch.tensor(colors, dtype=torch.uint8)


def labels_to_rgb(labels: Tensor, num_classes: int) -> Tensor:
    """Colour label maps ``[N, H, W]`` with :func:`class_colors`; uint8 ``[N, 3, H, W]``, grey outside the classes.

    Example:
        >>> labels_to_rgb(torch.tensor([[[0, 255]]]), 2)[0, :, 0].T.tolist()
        [[242, 36, 36], [128, 128, 128]]
    """
    labels = labels.cpu()
    valid = (labels >= 0) & (labels < num_classes)
    colors = class_colors(num_classes)[torch.where(valid, labels, 0).long()]
    colors[~valid] = NOT_A_CLASS
    return colors.permute(0, 3, 1, 2).contiguous()


def disagreement_map(masks: Tensor, predicted: Tensor, num_classes: int) -> Tensor:
    """Where the predicted label maps differ from the masks, uint8 ``[N, H, W]``: 0 (black) where they disagree,
    230 (light grey) where they agree, 128 (grey) where the mask holds no class (an ignored pixel, not scored).

    Example:
        >>> disagreement_map(torch.tensor([[[0, 1, 255]]]), torch.tensor([[[0, 0, 0]]]), 2).tolist()
        [[[230, 0, 128]]]
    """
    masks, predicted = masks.cpu(), predicted.cpu()
    scored = (masks >= 0) & (masks < num_classes)
    out = torch.full(masks.shape, AGREE, dtype=torch.uint8)
    out[scored & (predicted != masks)] = DISAGREE
    out[~scored] = NOT_A_CLASS
    return out


def _check_labels(value: Any, name: str) -> Tensor:
    check_tensor(value, name)
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"Expected `{name}` to be an integer tensor of labels, got dtype {value.dtype}.")
    if value.ndim != 3 or value.shape[0] == 0:
        raise ValueError(f"Expected `{name}` to have shape [N, H, W] with N >= 1, got shape {tuple(value.shape)}.")
    return value


def _check_max_rows(max_rows: Any) -> int:
    return check_positive_int(max_rows, "max_rows")


def segmentation_grid(
    masks: Tensor,
    samples: Tensor,
    predicted: Tensor,
    *,
    num_classes: int,
    input_range: InputRange | None = None,
    max_rows: int = 8,
) -> Tensor:
    """The image part of :func:`segmentation_panel`: uint8 ``[3, H', W']``, one row per sample (the first
    ``max_rows``) of mask | sample | predicted mask | disagreement, cells separated by 2 white pixels.

    It needs no matplotlib: log it with :func:`~lightning_genmetrics.callbacks.loggers.log_image` where no
    figure can be drawn.

    Args:
        masks: the conditioning label maps ``[N, H, W]`` (integer; values outside ``[0, num_classes)`` are
            ignored pixels).
        samples: the samples generated from them, ``[N, C, H, W]``, C = 1 or 3, uint8 or float in
            ``input_range``.
        predicted: the segmenter's label maps of the samples ``[N, H, W]`` (the argmax of its scores).
        num_classes: the number of classes.
        input_range: the range of float ``samples``, ``(0, 1)`` or ``(-1, 1)``; ``None`` for uint8.
        max_rows: the most samples shown.

    Raises:
        TypeError: non-integer label maps, float samples without ``input_range``, a non-int ``num_classes``.
        ValueError: shapes that do not match, samples outside ``input_range``.

    Example:
        >>> masks = torch.tensor([[[0, 1], [1, 1]]])
        >>> grid = segmentation_grid(masks, torch.zeros(1, 3, 2, 2), masks, num_classes=2, input_range=(0, 1))
        >>> grid.shape, grid.dtype
        (torch.Size([3, 6, 18]), torch.uint8)
    """
    from torchvision.utils import make_grid

    num_classes = check_positive_int(num_classes, "num_classes")
    max_rows = _check_max_rows(max_rows)
    masks, predicted = _check_labels(masks, "masks"), _check_labels(predicted, "predicted")
    if predicted.shape != masks.shape:
        raise ValueError(
            f"Expected `predicted` to have the shape of `masks` {tuple(masks.shape)}, got {tuple(predicted.shape)}."
        )
    check_tensor(samples, "samples")
    if samples.ndim != 4 or samples.shape[0] != masks.shape[0] or samples.shape[2:] != masks.shape[1:]:
        expected = f"[{masks.shape[0]}, C, {masks.shape[1]}, {masks.shape[2]}]"
        raise ValueError(f"Expected `samples` to have shape {expected} to match `masks`, got {tuple(samples.shape)}.")
    rows = min(masks.shape[0], max_rows)
    masks, predicted = masks[:rows], predicted[:rows]
    images = images_to_uint8(samples[:rows].detach().cpu(), check_input_range(input_range), name="samples")
    disagreement = disagreement_map(masks, predicted, num_classes).unsqueeze(1).expand(-1, 3, -1, -1)
    cells = torch.stack(
        [labels_to_rgb(masks, num_classes), images, labels_to_rgb(predicted, num_classes), disagreement], dim=1
    )
    return make_grid(cells.flatten(0, 1), nrow=len(SEGMENTATION_COLUMNS), padding=_PADDING, pad_value=255)


def _column_labels(ax: Any, names: Sequence[str], cell_width: int) -> None:
    ax.set_xticks([_PADDING + (cell_width + _PADDING) * (i + 0.5) - 0.5 for i in range(len(names))], names)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def segmentation_panel(
    masks: Tensor,
    samples: Tensor,
    predicted: Tensor,
    *,
    num_classes: int,
    per_class_iou: Tensor,
    input_range: InputRange | None = None,
    max_rows: int = 8,
    title: str | None = None,
) -> Figure:
    """Mask | sample | predicted mask | disagreement for the first ``max_rows`` samples, and per-class IoU bars.

    The left axes shows :func:`segmentation_grid` (class colours from :func:`class_colors`, disagreement black
    on light grey, ignored pixels mid grey). The right axes has one bar per class in its colour, the height its
    IoU over the whole evaluation (``per_class_iou``: e.g. ``SegmentationMetrics.compute()["iou"]``), and "n/a"
    for a class with NaN (absent from masks and predictions); the title gives the mean over the classes with an
    IoU.

    Args:
        masks: the conditioning label maps ``[N, H, W]``.
        samples: the generated samples ``[N, C, H, W]``, uint8 or float in ``input_range``.
        predicted: the segmenter's label maps of the samples ``[N, H, W]``.
        num_classes: the number of classes.
        per_class_iou: ``[num_classes]`` IoU per class in ``[0, 1]``, NaN for an absent class.
        input_range: the range of float ``samples``, ``(0, 1)`` or ``(-1, 1)``; ``None`` for uint8.
        max_rows: the most samples shown.
        title: the figure's title.

    Returns:
        A ``matplotlib.figure.Figure``: the grid axes first, then the bars axes.

    Raises:
        TypeError, ValueError: as :func:`segmentation_grid`; ``per_class_iou`` not a float ``[num_classes]``
            tensor in ``[0, 1]`` (or NaN).
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> masks, predicted = torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 0], [1, 1]]])
        >>> iou = torch.tensor([0.5, 2 / 3, float("nan")])  # class 2 is in neither
        >>> figure = segmentation_panel(
        ...     masks, torch.rand(1, 3, 2, 2), predicted, num_classes=3, per_class_iou=iou, input_range=(0, 1)
        ... )
        >>> [round(float(bar.get_height()), 3) for bar in figure.axes[1].patches], figure.axes[1].get_title()
        ([0.5, 0.667, 0.0], 'per-class IoU (mean 0.583)')
    """
    grid = segmentation_grid(
        masks, samples, predicted, num_classes=num_classes, input_range=input_range, max_rows=max_rows
    )
    check_tensor(per_class_iou, "per_class_iou")
    if not per_class_iou.is_floating_point() or tuple(per_class_iou.shape) != (num_classes,):
        raise ValueError(
            f"Expected `per_class_iou` to be a float tensor of shape [{num_classes}], got dtype "
            f"{per_class_iou.dtype} and shape {tuple(per_class_iou.shape)}."
        )
    iou = per_class_iou.detach().cpu().double()
    present = ~torch.isnan(iou)
    if bool(((iou[present] < 0) | (iou[present] > 1)).any()):
        raise ValueError(f"Expected `per_class_iou` in [0, 1] or NaN, got {iou.tolist()}.")
    _require_matplotlib()
    from matplotlib.figure import Figure

    rows = min(masks.shape[0], max_rows)
    height, width = masks.shape[1:]
    grid_inches = _CELL_INCHES * len(SEGMENTATION_COLUMNS), _CELL_INCHES * rows * height / width
    figure = Figure(figsize=(grid_inches[0] + 4.0, max(grid_inches[1], 2.5) + 0.8), layout="constrained")
    image_ax, bars_ax = figure.subplots(1, 2, width_ratios=(grid_inches[0], 4.0))
    image_ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    _column_labels(image_ax, SEGMENTATION_COLUMNS, width)

    colors = class_colors(num_classes).double() / 255
    bars_ax.bar(range(num_classes), iou.nan_to_num(0.0).tolist(), color=colors.tolist(), width=0.8)
    for k in torch.nonzero(~present).flatten().tolist():
        bars_ax.text(k, 0.02, "n/a", ha="center", va="bottom", rotation=90, fontsize="small")
    bars_ax.set_ylim(0, 1)
    bars_ax.set_xlabel("class")
    bars_ax.set_ylabel("IoU")
    if num_classes <= MAX_ANNOTATED_CLASSES:
        bars_ax.set_xticks(range(num_classes))
    mean = f"{iou[present].mean().item():.3f}" if bool(present.any()) else "n/a"
    bars_ax.set_title(f"per-class IoU (mean {mean})")
    if title is not None:
        figure.suptitle(title)
    return figure


def _curves(roc: Any) -> tuple[list[Tensor], list[Tensor]]:
    """Per-class ``fpr`` and ``tpr`` from ``AUROC.roc()`` of a multiclass task: lists (exact) or ``[C, K]``."""
    if not isinstance(roc, (tuple, list)) or len(roc) not in (2, 3):
        raise TypeError(f"Expected `roc` to be an (fpr, tpr, thresholds) tuple as AUROC.roc() returns, got {roc!r}.")
    fpr, tpr = roc[0], roc[1]
    if isinstance(fpr, Tensor) and isinstance(tpr, Tensor) and fpr.ndim == 2 and fpr.shape == tpr.shape:
        return list(fpr.detach().cpu()), list(tpr.detach().cpu())
    if (
        isinstance(fpr, (list, tuple))
        and isinstance(tpr, (list, tuple))
        and len(fpr) == len(tpr)
        and all(isinstance(x, Tensor) and x.ndim == 1 for x in (*fpr, *tpr))
        and all(x.shape == y.shape for x, y in zip(fpr, tpr, strict=True))
    ):
        return [x.detach().cpu() for x in fpr], [y.detach().cpu() for y in tpr]
    raise ValueError(
        "Expected `roc` to hold one curve per class, as a multiclass AUROC.roc() returns: fpr and tpr as lists of "
        "1-D tensors of equal lengths, or as [C, K] tensors."
    )


def roc_curves_to_auroc(roc: Any) -> Tensor:
    """The area under each class's ROC curve, float64 ``[C]`` (NaN for a class without positives or negatives).

    Args:
        roc: ``(fpr, tpr, thresholds)`` of a multiclass task, as :meth:`~lightning_genmetrics.metrics.AUROC.roc`
            returns it (exact: lists of per-class tensors; binned: ``[C, K]`` tensors).

    Example:
        >>> fpr, tpr = [torch.tensor([0.0, 0.0, 1.0])], [torch.tensor([0.0, 1.0, 1.0])]
        >>> roc_curves_to_auroc((fpr, tpr, None)).tolist()
        [1.0]
    """
    fpr, tpr = _curves(roc)
    return torch.stack([roc_to_auroc(x, y) for x, y in zip(fpr, tpr, strict=True)])


def _check_confusion(confusion: Any, num_classes: int) -> Tensor:
    check_tensor(confusion, "confusion")
    if confusion.is_floating_point() or confusion.is_complex() or confusion.dtype == torch.bool:
        raise TypeError(f"Expected `confusion` to be an integer tensor of counts, got dtype {confusion.dtype}.")
    if tuple(confusion.shape) != (num_classes, num_classes):
        raise ValueError(
            f"Expected `confusion` to have shape [{num_classes}, {num_classes}] (one ROC curve per class), got "
            f"shape {tuple(confusion.shape)}."
        )
    if bool((confusion < 0).any()):
        raise ValueError("Expected `confusion` to hold non-negative counts, got a negative one.")
    return confusion.detach().cpu().long()


def row_normalized(confusion: Tensor) -> Tensor:
    """Each row of a confusion matrix divided by its sum, float64 (a row without samples stays 0).

    Example:
        >>> row_normalized(torch.tensor([[3, 1], [0, 0]])).tolist()
        [[0.75, 0.25], [0.0, 0.0]]
    """
    counts = confusion.double()
    return counts / counts.sum(dim=1, keepdim=True).clamp(min=1.0)


def roc_figure(roc: Any, *, title: str | None = None) -> Figure:
    """The one-vs-rest ROC curves of :func:`classifier_figures` alone (its ``"roc"`` figure).

    Raises:
        TypeError, ValueError: ``roc`` as :func:`classifier_figures` refuses it.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> fpr, tpr = [torch.tensor([0.0, 0.0, 1.0])] * 2, [torch.tensor([0.0, 1.0, 1.0])] * 2
        >>> roc_figure((fpr, tpr, None), title="epoch 1").axes[0].get_title()
        'epoch 1: one-vs-rest ROC (mean AUC 1.000)'
    """
    fpr, tpr = _curves(roc)
    num_classes = len(fpr)
    areas = torch.stack([roc_to_auroc(x, y) for x, y in zip(fpr, tpr, strict=True)])
    _require_matplotlib()
    from matplotlib.figure import Figure

    prefix = "" if title is None else f"{title}: "
    colors = (class_colors(num_classes).double() / 255).tolist()
    figure = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    for k in range(num_classes):
        area = areas[k].item()
        label = f"class {k}: AUC {area:.3f}" if math.isfinite(area) else f"class {k}: AUC n/a"
        ax.plot(fpr[k].tolist(), tpr[k].tolist(), color=colors[k], label=label)
    defined = areas[~torch.isnan(areas)]
    mean = f"{defined.mean().item():.3f}" if defined.numel() else "n/a"
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(f"{prefix}one-vs-rest ROC (mean AUC {mean})")
    if num_classes <= MAX_ANNOTATED_CLASSES:
        ax.legend(loc="lower right", fontsize="small", ncols=1 + num_classes // 11)
    return figure


def confusion_figure(confusion: Tensor, *, title: str | None = None) -> Figure:
    """The confusion matrix of :func:`classifier_figures` alone (its ``"confusion"`` figure), of ``[C, C]`` counts.

    Raises:
        TypeError: ``confusion`` not an integer tensor.
        ValueError: ``confusion`` not ``[C, C]`` non-negative counts.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> confusion_figure(torch.tensor([[3, 1], [0, 4]])).axes[0].get_title()
        'confusion (accuracy 0.875)'
    """
    check_tensor(confusion, "confusion")
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"Expected `confusion` to have shape [C, C], got shape {tuple(confusion.shape)}.")
    num_classes = confusion.shape[0]
    counts = _check_confusion(confusion, num_classes)
    _require_matplotlib()
    from matplotlib.figure import Figure

    prefix = "" if title is None else f"{title}: "
    fractions = row_normalized(counts)
    figure = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(fractions.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, label="fraction of the label's samples")
    if num_classes <= MAX_ANNOTATED_CLASSES:
        for (i, j), count in zip(
            torch.cartesian_prod(*[torch.arange(num_classes)] * 2).tolist(), counts.flatten().tolist(), strict=True
        ):
            dark = fractions[i, j].item() > 0.5
            ax.text(j, i, str(int(count)), ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks(range(num_classes))
        ax.set_yticks(range(num_classes))
    accuracy = counts.diagonal().sum().item() / max(counts.sum().item(), 1)
    ax.set(xlabel="predicted class", ylabel="conditioning label")
    ax.set_title(f"{prefix}confusion (accuracy {accuracy:.3f})")
    return figure


def classifier_figures(roc: Any, confusion: Tensor, *, title: str | None = None) -> dict[str, Figure]:
    """A classifier judge's one-vs-rest ROC curves and its confusion matrix, from the state of its metrics.

    ``"roc"``: one curve per class (``fpr`` against ``tpr``), labelled with its AUC (the trapezoid area of the
    curve drawn: the exact one-vs-rest AUROC of the softmax scores with an exact ``AUROC``), the chance diagonal,
    and the mean AUC over the classes that have one in the title. A class without positives or negatives has no
    curve and reads "n/a". Above 20 classes the legend is left out.

    ``"confusion"``: rows are the conditioning labels, columns the predicted classes (the argmax of the logits);
    colours are row-normalised (the fraction of each label's samples, 0 to 1), the numbers are counts (up to 20
    classes), and the title gives the accuracy.

    Args:
        roc: ``AUROC.roc()`` of the judge's multiclass ``AUROC`` (e.g. ``ClassFidelity.auroc``), exact or binned.
        confusion: the ``[C, C]`` integer counts, rows the conditioning labels (e.g. ``ClassFidelity.confusion``'s
            ``confmat`` state).
        title: prefixed to both axes' titles, e.g. ``"epoch 4"``.

    Returns:
        ``{"roc": Figure, "confusion": Figure}``.

    Raises:
        TypeError: ``roc`` not an ``(fpr, tpr, thresholds)`` tuple, ``confusion`` not an integer tensor.
        ValueError: ``roc`` not one curve per class, ``confusion`` not ``[C, C]`` non-negative counts.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> from lightning_genmetrics.metrics import MulticlassAUROC
        >>> auroc = MulticlassAUROC(2, thresholds=None)
        >>> auroc.update(torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), torch.tensor([0, 1, 1]))
        >>> figures = classifier_figures(auroc.roc(), torch.tensor([[1, 0], [1, 1]]))
        >>> [text.get_text() for text in figures["roc"].axes[0].get_legend().get_texts()]
        ['class 0: AUC 1.000', 'class 1: AUC 1.000']
    """
    fpr, _ = _curves(roc)
    # Both checked before either is drawn: a bad confusion matrix leaves no half-made pair behind.
    _check_confusion(confusion, len(fpr))
    return {"roc": roc_figure(roc, title=title), "confusion": confusion_figure(confusion, title=title)}


def _check_pair(inputs: Any, reconstructions: Any) -> None:
    for name, value in (("inputs", inputs), ("reconstructions", reconstructions)):
        check_tensor(value, name)
        if not value.is_floating_point():
            raise TypeError(f"Expected `{name}` to be a floating point tensor, got dtype {value.dtype}.")
        check_finite(value, name)
    if inputs.ndim != 4 or inputs.shape[0] == 0 or inputs.shape[1] not in (1, 3):
        raise ValueError(
            f"Expected `inputs` to have shape [N, C, H, W] with N >= 1 and C = 1 or 3, got {tuple(inputs.shape)}."
        )
    if reconstructions.shape != inputs.shape:
        raise ValueError(
            f"Expected `reconstructions` to have the shape of `inputs` {tuple(inputs.shape)}, "
            f"got {tuple(reconstructions.shape)}."
        )


def reconstruction_errors(inputs: Tensor, reconstructions: Tensor, *, input_range: InputRange) -> Tensor:
    """The error map ``mean_c |input - clamp(reconstruction)| / (hi - lo)``, float32 ``[N, H, W]`` in ``[0, 1]``.

    Reconstructions are clamped into ``input_range`` first, as the reconstruction metrics and a saved image do;
    the error is a fraction of the range's width, averaged over the channels.

    Raises:
        TypeError: not floating point tensors.
        ValueError: shapes that differ or are not ``[N, C, H, W]``, NaN/Inf, an unsupported ``input_range``.

    Example:
        >>> inputs = torch.tensor([[[[-1.0, 1.0]]]])
        >>> reconstruction_errors(inputs, torch.tensor([[[[0.0, 3.0]]]]), input_range=(-1, 1)).tolist()
        [[[0.5, 0.0]]]
    """
    _check_pair(inputs, reconstructions)
    low, high = check_input_range(input_range) or (None, None)
    if low is None:
        raise ValueError(f"Expected `input_range` to be (0, 1) or (-1, 1), got {input_range!r}.")
    inputs, reconstructions = inputs.detach().cpu().double(), reconstructions.detach().cpu().double()
    return ((inputs - reconstructions.clamp(low, high)).abs().mean(dim=1) / (high - low)).float()


def reconstruction_panel(
    inputs: Tensor,
    reconstructions: Tensor,
    *,
    input_range: InputRange,
    max_rows: int = 8,
    error_scale: float | None = None,
    title: str | None = None,
) -> Figure:
    """Input | reconstruction for the first ``max_rows`` pairs, beside their :func:`reconstruction_errors` map.

    The left axes shows the pairs as the images they are (uint8, reconstructions clamped into range). The right
    axes shows the error maps in the ``"magma"`` colour map from 0 (black) to ``error_scale`` (pale yellow),
    with a colour bar: pass a fixed ``error_scale`` (e.g. 0.25) to compare panels across epochs; the default is
    the largest error shown (at least 1/255), so a panel always uses the whole colour map.

    Args:
        inputs: the autoencoder's inputs ``[N, C, H, W]``, C = 1 or 3, float in ``input_range``.
        reconstructions: its outputs, the same shape.
        input_range: ``(0, 1)`` or ``(-1, 1)``.
        max_rows: the most pairs shown.
        error_scale: the error at the top of the colour map, in ``(0, 1]``; ``None`` for the largest shown.
        title: the figure's title.

    Returns:
        A ``matplotlib.figure.Figure``: the pairs axes, the error axes, then the colour bar's axes.

    Raises:
        TypeError: not floating point tensors, ``max_rows`` not an int, ``error_scale`` not a number.
        ValueError: shapes that differ, NaN/Inf, inputs outside ``input_range``, ``error_scale`` outside
            ``(0, 1]``.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> inputs = torch.rand(2, 3, 4, 4)
        >>> figure = reconstruction_panel(inputs, inputs * 0.9, input_range=(0, 1), error_scale=0.5)
        >>> figure.axes[1].images[0].get_clim()
        (0.0, 0.5)
    """
    from torchvision.utils import make_grid

    max_rows = _check_max_rows(max_rows)
    errors = reconstruction_errors(inputs, reconstructions, input_range=input_range)
    if error_scale is not None:
        if isinstance(error_scale, bool) or not isinstance(error_scale, (int, float)):
            raise TypeError(f"Expected `error_scale` to be a float or None, got {error_scale!r}.")
        if not 0 < error_scale <= 1:
            raise ValueError(f"Expected `error_scale` in (0, 1], got {error_scale}.")
    rows = min(inputs.shape[0], max_rows)
    low, high = check_input_range(input_range)  # type: ignore[misc]
    shown = reconstructions[:rows].detach().cpu().clamp(low, high)
    originals = images_to_uint8(inputs[:rows].detach().cpu(), (low, high), name="inputs")
    pairs = torch.stack([originals, images_to_uint8(shown, (low, high), name="reconstructions")], dim=1)
    pairs_grid = make_grid(pairs.flatten(0, 1), nrow=2, padding=_PADDING, pad_value=255)
    errors = errors[:rows]
    errors_grid = make_grid(errors.unsqueeze(1), nrow=1, padding=_PADDING, pad_value=math.nan)[0]
    scale = error_scale if error_scale is not None else max(errors.max().item(), 1 / 255)
    _require_matplotlib()
    import matplotlib
    from matplotlib.figure import Figure

    height, width = inputs.shape[2:]
    grid_height = _CELL_INCHES * rows * height / width
    figure = Figure(figsize=(_CELL_INCHES * 3 + 1.2, max(grid_height, 2.0) + 0.8), layout="constrained")
    pairs_ax, errors_ax = figure.subplots(1, 2, width_ratios=(2, 1))
    pairs_ax.imshow(pairs_grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    _column_labels(pairs_ax, ("input", "reconstruction"), width)
    colormap = matplotlib.colormaps["magma"].with_extremes(bad="white")
    image = errors_ax.imshow(errors_grid.numpy(), cmap=colormap, vmin=0.0, vmax=scale, interpolation="nearest")
    _column_labels(errors_ax, ("|error|",), width)
    figure.colorbar(image, ax=errors_ax, label="mean |input − reconstruction| / range width", shrink=0.8)
    if title is not None:
        figure.suptitle(title)
    return figure
