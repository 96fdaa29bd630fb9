"""Image preprocessing and feature extractors."""

from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.features.preprocess import InputRange, images_to_uint8

__all__ = ["ImageFeatures", "InputRange", "images_to_uint8"]
