"""lightning_genmetrics: exact, constant-memory, DDP-synchronised metrics for generative models.

The metrics are ``torchmetrics.Metric`` classes that keep only sufficient statistics; this module
imports nothing else at first: each public name is loaded on first access, so that ``import
lightning_genmetrics`` and the ``genmetrics`` command's ``--help`` do not wait for torch, and
``lightning`` is imported only with ``GenerativeMetricsCallback``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first access (``__getattr__``)
    from lightning_genmetrics import functional, samplers
    from lightning_genmetrics.features import (
        ClassifierFeatures,
        CLIPImageEncoder,
        DINOv2Encoder,
        FIDInceptionV3,
        ImageBatch,
        ImageFeatures,
        images_to_uint8,
    )
    from lightning_genmetrics.metrics import (
        AUROC,
        LPIPS,
        MS_SSIM,
        PSNR,
        SSIM,
        BinaryAUROC,
        CLIPMaximumMeanDiscrepancy,
        FrechetDistance,
        FrechetInceptionDistance,
        FrechetInceptionDistanceInfinity,
        InceptionScore,
        KernelInceptionDistance,
        LearnedPerceptualImagePatchSimilarity,
        MeanIoU,
        MulticlassAUROC,
        MultilabelAUROC,
        MultiScaleStructuralSimilarityIndexMeasure,
        PeakSignalNoiseRatio,
        PrecisionRecallDensityCoverage,
        SegmentationMetrics,
        SpatialFrechetInceptionDistance,
        StructuralSimilarityIndexMeasure,
    )
    from lightning_genmetrics.samplers import (
        AutoregressiveSampler,
        CallableSampler,
        DiffusersSampler,
        DiffusionSampler,
        FlowMatchingSampler,
        GANSampler,
        LogSNRDiffusionSampler,
        NonFiniteSamplesError,
        VAESampler,
        sample_range,
    )
    from lightning_genmetrics.stats import ReferenceStatistics, load_statistics, save_statistics

__version__ = "0.1.0.dev0"

# Where ``__getattr__`` looks for a public name (one listed in ``__all__``), in this order: the callbacks last,
# as they import ``lightning``. To export a name, add it to ``__all__`` and to the imports above.
_SUBMODULES = ("functional", "features", "metrics", "samplers", "stats", "callbacks")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in __all__:
        value = next(
            getattr(module, name)
            for module in (importlib.import_module(f"{__name__}.{sub}") for sub in _SUBMODULES)
            if hasattr(module, name)
        )
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # found once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AUROC",
    "LPIPS",
    "MS_SSIM",
    "PSNR",
    "SSIM",
    "AutoregressiveSampler",
    "BinaryAUROC",
    "CLIPImageEncoder",
    "CLIPMaximumMeanDiscrepancy",
    "CallableSampler",
    "ClassifierFeatures",
    "DINOv2Encoder",
    "DiffusersSampler",
    "DiffusionSampler",
    "FIDInceptionV3",
    "FlowMatchingSampler",
    "FrechetDistance",
    "FrechetInceptionDistance",
    "FrechetInceptionDistanceInfinity",
    "GANSampler",
    "GenerativeMetricsCallback",
    "ImageBatch",
    "ImageFeatures",
    "InceptionScore",
    "KernelInceptionDistance",
    "LearnedPerceptualImagePatchSimilarity",
    "LogSNRDiffusionSampler",
    "MeanIoU",
    "MultiScaleStructuralSimilarityIndexMeasure",
    "MulticlassAUROC",
    "MultilabelAUROC",
    "NonFiniteSamplesError",
    "PeakSignalNoiseRatio",
    "PrecisionRecallDensityCoverage",
    "ReferenceStatistics",
    "SegmentationMetrics",
    "SpatialFrechetInceptionDistance",
    "StructuralSimilarityIndexMeasure",
    "VAESampler",
    "__version__",
    "functional",
    "images_to_uint8",
    "load_statistics",
    "sample_range",
    "samplers",
    "save_statistics",
]
