"""Stateful ``torchmetrics.Metric`` classes that keep only sufficient statistics."""

from lightning_genmetrics.metrics.auroc import AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC
from lightning_genmetrics.metrics.frechet import FrechetDistance, FrechetInceptionDistance
from lightning_genmetrics.metrics.inception_score import InceptionScore
from lightning_genmetrics.metrics.kid import KernelInceptionDistance
from lightning_genmetrics.metrics.segmentation import MeanIoU, SegmentationMetrics

__all__ = [
    "AUROC",
    "BinaryAUROC",
    "FrechetDistance",
    "FrechetInceptionDistance",
    "InceptionScore",
    "KernelInceptionDistance",
    "MeanIoU",
    "MulticlassAUROC",
    "MultilabelAUROC",
    "SegmentationMetrics",
]
