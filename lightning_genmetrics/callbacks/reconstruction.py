"""Reconstruction quality of an autoencoder: SSIM, MS-SSIM, PSNR and LPIPS between inputs and reconstructions.

Both sides are mapped from their declared range to ``[0, 1]`` (reconstructions clamped into it first, as
saving them as images would), so SSIM and PSNR use ``data_range = 1`` and LPIPS ``normalize=True``. Every
metric keeps a per-image sum and a count: shards of any size merge exactly. After ``reset(preview_rows=n)`` the
first ``n`` pairs are also kept (on the CPU, as given) for
:func:`~lightning_genmetrics.callbacks.panels.reconstruction_panel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_finite, values_outside
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.metrics import (
    LearnedPerceptualImagePatchSimilarity,
    MultiScaleStructuralSimilarityIndexMeasure,
    PeakSignalNoiseRatio,
    StructuralSimilarityIndexMeasure,
)

RECONSTRUCTION_METRICS = ("ssim", "ms_ssim", "psnr", "lpips")


def _to_unit(images: Tensor, input_range: InputRange) -> Tensor:
    low, high = input_range
    return ((images.double() - low) / (high - low)).float()


class ReconstructionQuality(nn.Module):
    """The mean SSIM/MS-SSIM/PSNR/LPIPS of (input, reconstruction) pairs.

    Args:
        names: metric names among ``"ssim"``, ``"ms_ssim"``, ``"psnr"``, ``"lpips"``.
        input_range: the range of inputs and reconstructions, ``(0, 1)`` or ``(-1, 1)``.
        metric_kwargs: extra constructor arguments per name (e.g. ``{"lpips": {"net_type": "vgg"}}``).

    Example:
        >>> import torch
        >>> quality = ReconstructionQuality(("ssim", "psnr"), (0.0, 1.0))
        >>> images = torch.rand(2, 1, 16, 16)
        >>> quality.update(images, (images + 0.01).clamp(0, 1))
        >>> values = quality.compute()
        >>> round(values["ssim"], 2), values["psnr"] > 38
        (1.0, True)
        >>> quality.reset(preview_rows=1)
        >>> quality.update(images, images)
        >>> [part.shape[0] for part in quality.preview()]
        [1, 1]
    """

    def __init__(
        self,
        names: Sequence[str],
        input_range: InputRange,
        metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.input_range = input_range
        # The protocols papers report: SSIM over the valid windows (scikit-image, Wang et al.), the mean of
        # per-image PSNRs. The classes default to torchmetrics' numbers instead; metric_kwargs override these.
        builders = {
            "ssim": lambda kwargs: StructuralSimilarityIndexMeasure(data_range=1.0, **{"border": "valid", **kwargs}),
            "ms_ssim": lambda kwargs: MultiScaleStructuralSimilarityIndexMeasure(
                data_range=1.0, **{"border": "valid", **kwargs}
            ),
            "psnr": lambda kwargs: PeakSignalNoiseRatio(data_range=1.0, **{"dim": (1, 2, 3), **kwargs}),
            "lpips": lambda kwargs: LearnedPerceptualImagePatchSimilarity(normalize=True, **kwargs),
        }
        kwargs = metric_kwargs or {}
        self.metrics = nn.ModuleDict({name: builders[name](dict(kwargs.get(name, {}))) for name in names})
        self.reset()

    def reset(self, preview_rows: int = 0) -> None:
        """Forget the metrics' state and the preview; keep the first ``preview_rows`` pairs of the coming updates."""
        for metric in self.metrics.values():
            metric.reset()
        self.preview_rows = preview_rows
        self._preview: list[tuple[Tensor, Tensor]] = []

    def preview(self) -> tuple[Tensor, Tensor] | None:
        """The kept ``(inputs, reconstructions)``, each ``[n, C, H, W]`` in ``input_range``, or ``None``."""
        if not self._preview:
            return None
        inputs, reconstructions = zip(*self._preview, strict=True)
        return torch.cat(inputs), torch.cat(reconstructions)

    def update(self, inputs: Tensor, reconstructions: Tensor) -> None:
        """Add a batch of inputs and their reconstructions (same shape, both in ``input_range``).

        Raises:
            ValueError: shapes that differ, or values the metrics refuse (NaN, out of range).
        """
        if reconstructions.shape != inputs.shape:
            raise ValueError(
                f"Expected the reconstructions to have the inputs' shape {tuple(inputs.shape)}, "
                f"got {tuple(reconstructions.shape)}."
            )
        for images, name in ((inputs, "reconstruction inputs"), (reconstructions, "reconstructions")):
            check_finite(images, name)
        outside = values_outside(inputs, *self.input_range)
        if outside is not None:
            raise ValueError(
                f"Expected the reconstruction inputs in the declared range {self.input_range}, got values in "
                f"[{outside[0]:.6g}, {outside[1]:.6g}]; set `real_input_range`."
            )
        target = _to_unit(inputs, self.input_range)
        preds = _to_unit(reconstructions, self.input_range).clamp(0, 1)
        for metric in self.metrics.values():
            metric.update(preds, target.to(preds.device))
        missing = self.preview_rows - sum(kept[0].shape[0] for kept in self._preview)
        if missing > 0:
            self._preview.append((inputs[:missing].detach().cpu(), reconstructions[:missing].detach().cpu()))

    @property
    def higher_is_better(self) -> dict[str, bool | None]:
        """Each metric's own direction (LPIPS is a distance: lower is better)."""
        return {name: metric.higher_is_better for name, metric in self.metrics.items()}

    def value_names(self) -> list[str]:
        """The keys of ``compute()``'s result."""
        return list(self.metrics)

    def compute(self) -> dict[str, float]:
        return {name: float(metric.compute()) for name, metric in self.metrics.items()}
