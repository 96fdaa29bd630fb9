"""Stateless math over features and statistics; the metrics in ``lightning_genmetrics.metrics`` call these."""

from lightning_genmetrics.functional.frechet import frechet_distance, psd_sqrt, trace_sqrt_product
from lightning_genmetrics.functional.inception_score import (
    inception_score,
    logits_to_statistics,
    statistics_to_inception_score,
)
from lightning_genmetrics.functional.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from lightning_genmetrics.functional.moments import features_to_moments, merge_moments, moments_to_covariance
from lightning_genmetrics.functional.sampling import bottom_k, sample_keys

__all__ = [
    "bottom_k",
    "features_to_moments",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "logits_to_statistics",
    "merge_moments",
    "mmd2_unbiased",
    "moments_to_covariance",
    "polynomial_kernel",
    "psd_sqrt",
    "sample_keys",
    "statistics_to_inception_score",
    "trace_sqrt_product",
]
