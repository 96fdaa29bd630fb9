"""lightning_genmetrics: exact, constant-memory, DDP-synchronised metrics for generative models.

The metrics are ``torchmetrics.Metric`` classes that keep only sufficient statistics; this module
does not import ``lightning`` (only the callback does).
"""

from lightning_genmetrics import functional, samplers
from lightning_genmetrics.features import FIDInceptionV3, ImageFeatures, images_to_uint8
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
    GANSampler,
    VAESampler,
    sample_range,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AUROC",
    "LPIPS",
    "MS_SSIM",
    "PSNR",
    "SSIM",
    "BinaryAUROC",
    "CallableSampler",
    "DiffusionSampler",
    "FIDInceptionV3",
    "FrechetDistance",
    "FrechetInceptionDistance",
    "GANSampler",
    "ImageFeatures",
    "InceptionScore",
    "KernelInceptionDistance",
    "LearnedPerceptualImagePatchSimilarity",
    "MeanIoU",
    "MultiScaleStructuralSimilarityIndexMeasure",
    "MulticlassAUROC",
    "MultilabelAUROC",
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
