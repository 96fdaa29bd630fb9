"""The conditional-masks phase: one sample per conditioning mask, scored by a segmenter against its mask.

The mask loader's batches are sharded over the ranks (batch ``b`` on rank ``b mod W``); the sample drawn for the
mask at global position ``i`` is sample ``i`` of the seeded stream, with the mask as the sampler's ``labels``.
When figures are wanted, rank 0's segmenter keeps its first ``panel_rows`` masks, samples and label maps as it
scores them, and the phase hands the reporter their panel (mask | sample | predicted | disagreement, with the
per-class IoU of the whole evaluation): no second pass of the segmenter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_genmetrics.callbacks import panels
from lightning_genmetrics.callbacks.conditional import MaskFidelity
from lightning_genmetrics.callbacks.phases.scope import EvaluationContext, PhaseResult


def batch_to_masks(batch: Any) -> Tensor:
    """The masks of a batch: the batch itself, or the first integer tensor of a tuple/list batch.

    Raises:
        TypeError: no integer tensor in the batch.

    Example:
        >>> batch_to_masks((torch.rand(2, 3), torch.zeros(2, 4, 4, dtype=torch.int64))).shape
        torch.Size([2, 4, 4])
    """
    entries = list(batch) if isinstance(batch, (tuple, list)) else [batch]
    for entry in entries:
        if isinstance(entry, Tensor) and not entry.is_floating_point() and entry.dtype != torch.bool:
            return entry
    raise TypeError(
        f"Expected a mask batch to be an integer tensor or a tuple holding one, got {type(batch).__name__}."
    )


class MaskConditioning:
    """Mean IoU, pixel accuracy and mean Dice of mask-conditioned samples.

    Args:
        fidelity: the segmenter's scores.
        masks: a fixed-order ``DataLoader`` of conditioning masks.
        panel_rows: the rows of rank 0's segmentation panel, 0 for none.
        figures_wanted: ``trainer -> bool``: whether to keep the panel's rows; ``None`` for never.
    """

    def __init__(
        self,
        fidelity: MaskFidelity,
        masks: DataLoader,
        *,
        panel_rows: int = 0,
        figures_wanted: Callable[[Any], bool] | None = None,
    ) -> None:
        self.fidelity = fidelity
        self.masks = masks
        self.panel_rows = panel_rows
        self.figures_wanted = figures_wanted

    def run(self, context: EvaluationContext, sampler: Any, label: str) -> PhaseResult:
        """Evaluate ``sampler`` (``label`` names a guidance strength in messages)."""
        fidelity = self.fidelity
        trainer = context.trainer
        keep = self.figures_wanted is not None and trainer.is_global_zero and self.figures_wanted(trainer)
        fidelity.reset(preview_rows=self.panel_rows if keep else 0)
        nonfinite = 0
        for item in context.share(self.masks):
            masks = batch_to_masks(item.batch).to(context.device)
            with context.timer("sampling"):
                images, bad = context.draw(sampler, item.offset, item.offset + masks.shape[0], masks)
            if images is None:
                nonfinite += bad
                continue
            with context.timer("features"):
                fidelity.update(images, masks)
        values = context.any_nonfinite(nonfinite, fidelity.value_names, f"mask-conditioned samples{label} are")
        if values is not None:
            return PhaseResult(values)
        with context.timer("compute"):
            values = fidelity.compute()
        return PhaseResult(values, panels=self._panels())

    def _panels(self) -> dict[str, Callable[[str], Any]]:
        """Rank 0's segmentation panel from what the segmenter kept, ``{}`` without a preview."""
        preview, iou = self.fidelity.preview(), self.fidelity.per_class_iou
        if preview is None or iou is None:
            return {}
        masks, samples, predicted = preview
        num_classes = self.fidelity.scores.num_classes

        def draw(title: str) -> Any:
            return panels.segmentation_panel(
                masks,
                samples,
                predicted,
                num_classes=num_classes,
                per_class_iou=iou,
                max_rows=masks.shape[0],
                title=title,
            )

        return {"segmentation": draw}
