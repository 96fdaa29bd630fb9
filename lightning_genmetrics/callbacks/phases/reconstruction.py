"""The reconstruction phase: an autoencoder's reconstructions of held-out images, scored against them.

The data loader's batches are sharded over the ranks; ``reconstruct(pl_module, images)`` runs under the
evaluation scope (eval mode, inference mode, the weights evaluated), and the values are logged as
``recon/<metric>``.
"""

from __future__ import annotations

from collections.abc import Callable

from lightning.pytorch import LightningModule
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_genmetrics.callbacks.phases.scope import EvaluationContext, PhaseResult, count_nonfinite
from lightning_genmetrics.callbacks.reconstruction import ReconstructionQuality
from lightning_genmetrics.features.preprocess import batch_to_images


class Reconstruction:
    """SSIM/MS-SSIM/PSNR/LPIPS of ``reconstruct``'s output on ``data``.

    Args:
        quality: the reconstruction metrics.
        data: a fixed-order ``DataLoader`` of images.
        reconstruct: ``(pl_module, images) -> reconstructions``.
    """

    def __init__(
        self,
        quality: ReconstructionQuality,
        data: DataLoader,
        reconstruct: Callable[[LightningModule, Tensor], Tensor],
    ) -> None:
        self.quality = quality
        self.data = data
        self.reconstruct = reconstruct

    def value_names(self) -> list[str]:
        return [f"recon/{name}" for name in self.quality.value_names()]

    def run(self, context: EvaluationContext) -> PhaseResult:
        """Reconstruct this rank's share of the data and compute the metrics over all ranks.

        Raises:
            TypeError: ``reconstruct`` returned something other than a tensor.
        """
        quality = self.quality
        quality.reset()
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
            return PhaseResult({f"recon/{name}": value for name, value in quality.compute().items()})
