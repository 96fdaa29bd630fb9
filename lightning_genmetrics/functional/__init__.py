"""Stateless math over features and statistics; the metrics in ``lightning_genmetrics.metrics`` call these."""

from lightning_genmetrics.functional.auroc import (
    auroc,
    auroc_inputs_to_scores,
    binary_auroc,
    binned_thresholds,
    counts_to_threshold_metrics,
    exact_scores_to_average_auroc,
    histograms_to_auroc,
    histograms_to_auroc_error_bound,
    histograms_to_average_auroc,
    histograms_to_roc,
    multiclass_auroc,
    multilabel_auroc,
    probabilities_to_bins,
    scores_to_histograms,
    scores_to_probabilities,
    scores_to_tied_groups,
)
from lightning_genmetrics.functional.cmmd import cmmd, gaussian_kernel_sum
from lightning_genmetrics.functional.frechet import frechet_distance, psd_sqrt, trace_sqrt_product
from lightning_genmetrics.functional.inception_score import (
    inception_score,
    logits_to_statistics,
    statistics_to_inception_score,
)
from lightning_genmetrics.functional.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from lightning_genmetrics.functional.lpips import (
    features_to_lpips,
    learned_perceptual_image_patch_similarity,
    normalize_channels,
)
from lightning_genmetrics.functional.moments import features_to_moments, merge_moments, moments_to_covariance
from lightning_genmetrics.functional.prdc import knn_radii, precision_recall_density_coverage
from lightning_genmetrics.functional.psnr import images_to_squared_error_sums, mse_to_psnr, peak_signal_noise_ratio
from lightning_genmetrics.functional.sampling import bottom_k, sample_keys
from lightning_genmetrics.functional.segmentation import (
    confusion_matrix_to_scores,
    labels_to_confusion_matrix,
    labels_to_image_iou_sums,
    mean_iou,
    per_image_mean_iou,
    segmentation_inputs_to_labels,
    segmentation_scores,
)
from lightning_genmetrics.functional.ssim import (
    gaussian_window,
    multiscale_structural_similarity_index_measure,
    ssim_min_size,
    structural_similarity_index_measure,
)

__all__ = [
    "auroc",
    "auroc_inputs_to_scores",
    "binary_auroc",
    "binned_thresholds",
    "bottom_k",
    "cmmd",
    "confusion_matrix_to_scores",
    "counts_to_threshold_metrics",
    "exact_scores_to_average_auroc",
    "features_to_lpips",
    "features_to_moments",
    "frechet_distance",
    "gaussian_kernel_sum",
    "gaussian_window",
    "histograms_to_auroc",
    "histograms_to_auroc_error_bound",
    "histograms_to_average_auroc",
    "histograms_to_roc",
    "images_to_squared_error_sums",
    "inception_score",
    "kernel_inception_distance",
    "knn_radii",
    "labels_to_confusion_matrix",
    "labels_to_image_iou_sums",
    "learned_perceptual_image_patch_similarity",
    "logits_to_statistics",
    "mean_iou",
    "merge_moments",
    "mmd2_unbiased",
    "moments_to_covariance",
    "mse_to_psnr",
    "multiclass_auroc",
    "multilabel_auroc",
    "multiscale_structural_similarity_index_measure",
    "normalize_channels",
    "peak_signal_noise_ratio",
    "per_image_mean_iou",
    "polynomial_kernel",
    "precision_recall_density_coverage",
    "probabilities_to_bins",
    "psd_sqrt",
    "sample_keys",
    "scores_to_histograms",
    "scores_to_probabilities",
    "scores_to_tied_groups",
    "segmentation_inputs_to_labels",
    "segmentation_scores",
    "ssim_min_size",
    "statistics_to_inception_score",
    "structural_similarity_index_measure",
    "trace_sqrt_product",
]
