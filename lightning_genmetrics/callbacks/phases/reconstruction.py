"""The reconstruction phase: an autoencoder's reconstructions of held-out images, scored against them.

The data loader's batches are sharded over the ranks; ``reconstruct(pl_module, images)`` runs under the
evaluation scope (eval mode, inference mode, the weights evaluated), and the values are logged as
``recon/<metric>``. When figures are wanted, rank 0's metrics keep its first ``panel_rows`` pairs as they score
them, and the phase hands the reporter their panel (input | reconstruction | error map).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightning.pytorch import LightningModule
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_genmetrics.callbacks import panels
from lightning_genmetrics.callbacks.phases.scope import EvaluationContext, PhaseResult, count_nonfinite
from lightning_genmetrics.callbacks.reconstruction import ReconstructionQuality
from lightning_genmetrics.features.preprocess import batch_to_images


class Reconstruction:
    """SSIM/MS-SSIM/PSNR/LPIPS of ``reconstruct``'s output on ``data``.

    Args:
        quality: the reconstruction metrics.
        data: a fixed-order ``DataLoader`` of images.
        reconstruct: ``(pl_module, images) -> reconstructions``.
        panel_rows: the rows of rank 0's reconstruction panel, 0 for none.
        figures_wanted: ``trainer -> bool``: whether to keep the panel's rows; ``None`` for never.
    """

    def __init__(
        self,
        quality: ReconstructionQuality,
        data: DataLoader,
        reconstruct: Callable[[LightningModule, Tensor], Tensor],
        *,
        panel_rows: int = 0,
        figures_wanted: Callable[[Any], bool] | None = None,
    ) -> None:
        self.quality = quality
        self.data = data
        self.reconstruct = reconstruct
        self.panel_rows = panel_rows
        self.figures_wanted = figures_wanted

    def value_names(self) -> list[str]:
        return [f"recon/{name}" for name in self.quality.value_names()]

    def run(self, context: EvaluationContext) -> PhaseResult:
        """Reconstruct this rank's share of the data and compute the metrics over all ranks.

        Raises:
            TypeError: ``reconstruct`` returned something other than a tensor.
        """
        quality = self.quality
        trainer = context.trainer
        keep = self.figures_wanted is not None and trainer.is_global_zero and self.figures_wanted(trainer)
        quality.reset(preview_rows=self.panel_rows if keep else 0)
        nonfinite = 0
        for item in context.share(self.data):
            images = batch_to_images(item.batch, "real batch").to(context.device)
            with context.timer("reconstruction"):
                reconstructions = self.reconstruct(context.pl_module, images)
            if not isinstance(reconstructions, Tensor):
                raise TypeError(f"Expected `reconstruct` to return a tensor, got {type(reconstructions).__name__}.")
            bad = count_nonfinite(reconstructions) if context.sampling.on_nonfinite == "nan" else 0
            if bad:
                nonfinite += bad
                continue
            with context.timer("features"):
                quality.update(images, reconstructions)
        values = context.any_nonfinite(nonfinite, self.value_names, "reconstructions are")
        if values is not None:
            return PhaseResult(values)
        with context.timer("compute"):
            values = {f"recon/{name}": value for name, value in quality.compute().items()}
        return PhaseResult(values, panels=self._panels())

    def _panels(self) -> dict[str, Callable[[str], Any]]:
        """Rank 0's reconstruction panel from the pairs the metrics kept, ``{}`` without a preview."""
        preview = self.quality.preview()
        if preview is None:
            return {}
        inputs, reconstructions = preview
        input_range = self.quality.input_range

        def draw(title: str) -> Any:
            return panels.reconstruction_panel(
                inputs, reconstructions, input_range=input_range, max_rows=inputs.shape[0], title=title
            )

        return {"reconstruction": draw}
