"""Stateful ``torchmetrics.Metric`` classes that keep only sufficient statistics."""

from lightning_genmetrics.metrics.frechet import FrechetDistance, FrechetInceptionDistance
from lightning_genmetrics.metrics.inception_score import InceptionScore
from lightning_genmetrics.metrics.kid import KernelInceptionDistance

__all__ = ["FrechetDistance", "FrechetInceptionDistance", "InceptionScore", "KernelInceptionDistance"]
