"""Conditional fidelity: do generated samples show what they were conditioned on?

- ``ClassFidelity``: a classifier reads class-conditional samples; accuracy (from a confusion matrix) and
  one-vs-rest AUROC (exact, from the kept scores; or binned histograms) of its logits against the conditioning
  labels.
- ``MaskFidelity``: a segmenter reads mask-conditioned samples; mean IoU, pixel accuracy and mean Dice of its
  label maps against the conditioning masks.

Each also holds what its pictures need (:mod:`~lightning_genmetrics.callbacks.panels`), so drawing them takes no
second pass of its network: ``ClassFidelity.curves()`` gives the ROC curves and the confusion matrix of its state,
``MaskFidelity`` keeps the first ``preview_rows`` masks, samples and predicted label maps it scores (see ``reset``)
and, once computed, the per-class IoU.

Under DDP each rank scores its shard; ``compute`` all-reduces the confusion matrices (and binned AUROC
histograms) and gathers the exact AUROC's kept scores, so every rank gets the one-process value. The networks
get the images as the feature extractors do: uint8-quantised, then float RGB in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.functional.segmentation import segmentation_inputs_to_labels
from lightning_genmetrics.metrics import AUROC, SegmentationMetrics


class ClassFidelity(nn.Module):
    """Accuracy and AUROC of ``classifier`` on samples against the labels they were conditioned on.

    The AUROC is macro one-vs-rest over the softmax of the logits. By default (``auroc_bins=None``) it is
    exact, scikit-learn's ``roc_auc_score(labels, softmax, multi_class="ovr")``: the callback evaluates a
    bounded number of samples, and a confident classifier's saturated softmax scores defeat any fixed
    bins. The exact mode keeps each sample's float64 softmax scores and one-hot labels, ``9·C`` bytes
    per sample (0.9 MB for 10,000 samples of 10 classes, 90 MB of 1,000 classes) on the classifier's
    device, and ``compute`` gathers them from every rank. ``auroc_bins=T`` keeps ``16·C·T`` bytes of
    histograms instead (:class:`~lightning_genmetrics.metrics.AUROC`'s binned mode, all-reduced), and
    ``compute`` then also returns the binned value's ``auroc_error_bound``.

    Args:
        classifier: images ``[N, 3, H, W]`` in ``[0, 1]`` -> logits ``[N, num_classes]``.
        num_classes: the number of classes.
        input_range: the range of the samples, ``(0, 1)`` or ``(-1, 1)``.
        auroc_bins: ``None`` for the exact AUROC, or the number of thresholds of a binned one.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 2))
        >>> fidelity = ClassFidelity(classifier, 2, (0.0, 1.0))
        >>> fidelity.update(torch.rand(6, 3, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1]))
        >>> sorted(fidelity.compute())
        ['accuracy', 'auroc', 'balanced_accuracy']
        >>> binned = ClassFidelity(classifier, 2, (0.0, 1.0), auroc_bins=2001)
        >>> binned.update(torch.rand(6, 3, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1]))
        >>> sorted(binned.compute())
        ['accuracy', 'auroc', 'auroc_error_bound', 'balanced_accuracy']
        >>> (fpr, tpr, thresholds), confusion = fidelity.curves()
        >>> len(fpr), confusion.shape, int(confusion.sum())
        (2, torch.Size([2, 2]), 6)
    """

    # What "best" means for each value (the bound has no best).
    higher_is_better: ClassVar[dict[str, bool]] = {"accuracy": True, "balanced_accuracy": True, "auroc": True}

    def __init__(
        self, classifier: nn.Module, num_classes: int, input_range: InputRange, *, auroc_bins: int | None = None
    ) -> None:
        super().__init__()
        # The metrics' extractor protocol, and its pass shared with an Inception Score reading the same logits.
        self.logits = ImageFeatures(classifier, input_range=input_range)
        self.num_classes = num_classes
        self.confusion = SegmentationMetrics(num_classes)
        binning = {"thresholds": None} if auroc_bins is None else {"num_bins": auroc_bins}
        self.auroc = AUROC("multiclass", num_classes=num_classes, input="logits", **binning)

    def reset(self) -> None:
        self.confusion.reset()
        self.auroc.reset()

    def update(self, images: Tensor | ImageBatch, labels: Tensor) -> None:
        """Score a batch of samples (or an ``ImageBatch``) conditioned on ``labels`` ``[N]``.

        Raises:
            TypeError: the classifier returns something other than a floating point tensor.
            ValueError: its output is not ``[N, num_classes]``, or holds NaN/Inf.
        """
        logits = self.logits.extract(images)  # an ImageBatch shares the pass with metrics reading the same network
        expected = (len(images), self.num_classes)
        if tuple(logits.shape) != expected:
            raise ValueError(f"Expected the classifier to return logits of shape {list(expected)}, got {logits.shape}.")
        targets = labels.to(logits.device)
        self.confusion.update(logits, targets)
        self.auroc.update(logits, targets)

    def value_names(self) -> list[str]:
        """The keys of ``compute()``'s result."""
        return ["accuracy", "balanced_accuracy", "auroc", *(() if self.auroc.exact else ("auroc_error_bound",))]

    def compute(self) -> dict[str, float]:
        """``accuracy``, ``balanced_accuracy`` (the mean per-class recall) and macro one-vs-rest ``auroc``; with a
        binned AUROC also ``auroc_error_bound``, a bound on its distance to the exact value."""
        scores = self.confusion.compute()
        values = {
            "accuracy": float(scores["pixel_accuracy"]),
            "balanced_accuracy": float(scores["mean_class_accuracy"]),
            "auroc": float(self.auroc.compute()),
        }
        if not self.auroc.exact:
            values["auroc_error_bound"] = float(self.auroc.error_bound())
        return values

    def curves(self) -> tuple[Any, Tensor]:
        """The one-vs-rest ROC curves (``AUROC.roc()``) and the int64 ``[C, C]`` confusion counts (rows: the
        conditioning labels, columns: the predicted classes, the argmax of the logits), over every rank, for
        :func:`~lightning_genmetrics.callbacks.panels.classifier_figures`.

        Under DDP this is a collective (as ``compute``): every rank calls it.

        Raises:
            RuntimeError: no samples yet.
        """
        confusion = self.confusion
        with confusion.sync_context(
            dist_sync_fn=confusion.dist_sync_fn,
            should_sync=tm_compat.should_sync_now(confusion),
            should_unsync=tm_compat.should_unsync_now(confusion),
        ):
            counts = confusion.confmat.detach().clone()
        return self.auroc.roc(), counts


class MaskFidelity(nn.Module):
    """Mean IoU, pixel accuracy and mean Dice of ``segmenter`` on samples against their conditioning masks.

    After ``reset(preview_rows=n)`` it keeps, on the CPU, the first ``n`` samples it scores (uint8), their masks
    and the segmenter's label maps of them (``preview()``); ``compute`` keeps the per-class IoU
    (``per_class_iou``): what :func:`~lightning_genmetrics.callbacks.panels.segmentation_panel` draws, without a
    second pass of the segmenter.

    Args:
        segmenter: images ``[N, 3, H, W]`` in ``[0, 1]`` -> class scores ``[N, C, H, W]`` or labels ``[N, H, W]``.
        num_classes: the number of classes ``C``.
        input_range: the range of the samples, ``(0, 1)`` or ``(-1, 1)``.
        ignore_index: a mask value whose pixels are not counted.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> segmenter = nn.Conv2d(3, 2, 1)
        >>> fidelity = MaskFidelity(segmenter, 2, (0.0, 1.0))
        >>> fidelity.update(torch.rand(2, 3, 4, 4), torch.randint(0, 2, (2, 4, 4)))
        >>> sorted(fidelity.compute())
        ['mdice', 'miou', 'pixel_accuracy']
        >>> fidelity.reset(preview_rows=1)
        >>> fidelity.update(torch.rand(2, 3, 4, 4), torch.randint(0, 2, (2, 4, 4)))
        >>> masks, samples, predicted = fidelity.preview()
        >>> masks.shape, samples.dtype, predicted.shape
        (torch.Size([1, 4, 4]), torch.uint8, torch.Size([1, 4, 4]))
    """

    higher_is_better = True

    def __init__(
        self, segmenter: nn.Module, num_classes: int, input_range: InputRange, ignore_index: int | None = None
    ) -> None:
        super().__init__()
        self.network = ImageFeatures(segmenter, input_range=input_range)
        self.scores = SegmentationMetrics(num_classes, ignore_index)
        self.reset()

    def reset(self, preview_rows: int = 0) -> None:
        """Forget the scores and the preview; keep the first ``preview_rows`` samples of the coming updates."""
        self.scores.reset()
        self.preview_rows = preview_rows
        self._preview: list[tuple[Tensor, Tensor, Tensor]] = []
        self.per_class_iou: Tensor | None = None

    def preview(self) -> tuple[Tensor, Tensor, Tensor] | None:
        """The kept ``(masks [n, H, W], samples uint8 [n, 3, H, W], predicted label maps [n, H, W])``, or ``None``."""
        if not self._preview:
            return None
        masks, samples, predicted = zip(*self._preview, strict=True)
        return torch.cat(masks), torch.cat(samples), torch.cat(predicted)

    def update(self, images: Tensor | ImageBatch, masks: Tensor) -> None:
        """Score a batch of samples (or an ``ImageBatch``) conditioned on ``masks`` ``[N, H, W]``.

        Raises:
            TypeError: the segmenter returns something other than a tensor.
            ValueError: its output does not fit the masks (see ``SegmentationMetrics.update``).
        """
        batch = self.network.image_batch(images)
        out: Any = self.network.raw_output(batch)
        if not isinstance(out, Tensor):
            raise TypeError(f"Expected the segmenter to return a tensor, got {type(out).__name__}.")
        masks = masks.to(out.device)
        self.scores.update(out, masks)
        missing = self.preview_rows - sum(kept[0].shape[0] for kept in self._preview)
        if missing > 0:
            # The label maps of the rows shown only (the argmax of their scores), as the scores counted them.
            scores = self.scores
            predicted, _ = segmentation_inputs_to_labels(
                out[:missing], masks[:missing], scores.num_classes, scores.ignore_index
            )
            self._preview.append((masks[:missing].cpu(), batch.uint8[:missing].cpu(), predicted.cpu()))

    def value_names(self) -> list[str]:
        """The keys of ``compute()``'s result."""
        return ["miou", "pixel_accuracy", "mdice"]

    def compute(self) -> dict[str, float]:
        scores = self.scores.compute()
        self.per_class_iou = scores["iou"].detach().cpu()
        return {name: float(scores[name]) for name in self.value_names()}
