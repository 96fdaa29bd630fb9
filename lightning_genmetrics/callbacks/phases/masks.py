"""The conditional-masks phase: one sample per conditioning mask, scored by a segmenter against its mask.

The mask loader's batches are sharded over the ranks (batch ``b`` on rank ``b mod W``); the sample drawn for the
mask at global position ``i`` is sample ``i`` of the seeded stream, with the mask as the sampler's ``labels``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

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
    """

    def __init__(self, fidelity: MaskFidelity, masks: DataLoader) -> None:
        self.fidelity = fidelity
        self.masks = masks

    def run(self, context: EvaluationContext, sampler: Any, label: str) -> PhaseResult:
        """Evaluate ``sampler`` (``label`` names a guidance strength in messages)."""
        fidelity = self.fidelity
        fidelity.reset()
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
            return PhaseResult(fidelity.compute())
