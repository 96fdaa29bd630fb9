"""Stateful ``torchmetrics.Metric`` classes that keep only sufficient statistics."""

from lightning_genmetrics.metrics.auroc import AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC
from lightning_genmetrics.metrics.cmmd import CLIPMaximumMeanDiscrepancy
from lightning_genmetrics.metrics.fd_infinity import FrechetInceptionDistanceInfinity
from lightning_genmetrics.metrics.frechet import (
    FrechetDistance,
    FrechetInceptionDistance,
    SpatialFrechetInceptionDistance,
)
from lightning_genmetrics.metrics.inception_score import InceptionScore
from lightning_genmetrics.metrics.kid import KernelInceptionDistance
from lightning_genmetrics.metrics.lpips import LPIPS, LearnedPerceptualImagePatchSimilarity
from lightning_genmetrics.metrics.prdc import PrecisionRecallDensityCoverage
from lightning_genmetrics.metrics.psnr import PSNR, PeakSignalNoiseRatio
from lightning_genmetrics.metrics.segmentation import MeanIoU, SegmentationMetrics
from lightning_genmetrics.metrics.ssim import (
    MS_SSIM,
    SSIM,
    MultiScaleStructuralSimilarityIndexMeasure,
    StructuralSimilarityIndexMeasure,
)

__all__ = [
    "AUROC",
    "LPIPS",
    "MS_SSIM",
    "PSNR",
    "SSIM",
    "BinaryAUROC",
    "CLIPMaximumMeanDiscrepancy",
    "FrechetDistance",
    "FrechetInceptionDistance",
    "FrechetInceptionDistanceInfinity",
    "InceptionScore",
    "KernelInceptionDistance",
    "LearnedPerceptualImagePatchSimilarity",
    "MeanIoU",
    "MultiScaleStructuralSimilarityIndexMeasure",
    "MulticlassAUROC",
    "MultilabelAUROC",
    "PeakSignalNoiseRatio",
    "PrecisionRecallDensityCoverage",
    "SegmentationMetrics",
    "SpatialFrechetInceptionDistance",
    "StructuralSimilarityIndexMeasure",
]
