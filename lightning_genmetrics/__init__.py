"""lightning_genmetrics: exact, constant-memory, DDP-synchronised metrics for generative models.

The metrics are ``torchmetrics.Metric`` classes that keep only sufficient statistics; this module
does not import ``lightning``: ``GenerativeMetricsCallback`` is loaded on first access.
"""

from lightning_genmetrics import functional, samplers
from lightning_genmetrics.features import ClassifierFeatures, FIDInceptionV3, ImageFeatures, images_to_uint8
from lightning_genmetrics.metrics import (
    AUROC,
    LPIPS,
    MS_SSIM,
    PSNR,
    SSIM,
    BinaryAUROC,
    FrechetDistance,
    FrechetInceptionDistance,
    InceptionScore,
    KernelInceptionDistance,
    LearnedPerceptualImagePatchSimilarity,
    MeanIoU,
    MulticlassAUROC,
    MultilabelAUROC,
    MultiScaleStructuralSimilarityIndexMeasure,
    PeakSignalNoiseRatio,
    SegmentationMetrics,
    StructuralSimilarityIndexMeasure,
)
from lightning_genmetrics.samplers import (
    CallableSampler,
    DiffusionSampler,
    FlowMatchingSampler,
    GANSampler,
    LogSNRDiffusionSampler,
    NonFiniteSamplesError,
    VAESampler,
    sample_range,
)

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> type:
    # The callback imports `lightning` (seconds); load it only when asked for, so this import stays light.
    if name == "GenerativeMetricsCallback":
        from lightning_genmetrics.callbacks import GenerativeMetricsCallback

        return GenerativeMetricsCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUROC",
    "LPIPS",
    "MS_SSIM",
    "PSNR",
    "SSIM",
    "BinaryAUROC",
    "CallableSampler",
    "ClassifierFeatures",
    "DiffusionSampler",
    "FIDInceptionV3",
    "FlowMatchingSampler",
    "FrechetDistance",
    "FrechetInceptionDistance",
    "GANSampler",
    "GenerativeMetricsCallback",
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
    "SegmentationMetrics",
    "StructuralSimilarityIndexMeasure",
    "VAESampler",
    "__version__",
    "functional",
    "images_to_uint8",
    "sample_range",
    "samplers",
]
