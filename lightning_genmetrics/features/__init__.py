"""Image preprocessing, feature extractors and their verified weights."""

from lightning_genmetrics.features.classifier import ClassifierFeatures
from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.features.inception import INCEPTION_LAYER_DIMS, FIDInceptionV3
from lightning_genmetrics.features.lpips_nets import LPIPSNetwork
from lightning_genmetrics.features.preprocess import InputRange, images_to_uint8
from lightning_genmetrics.features.resize import resize_images
from lightning_genmetrics.features.weights import WeightsFile, fetch_weights, load_state_dict_file

__all__ = [
    "INCEPTION_LAYER_DIMS",
    "ClassifierFeatures",
    "FIDInceptionV3",
    "ImageFeatures",
    "InputRange",
    "LPIPSNetwork",
    "WeightsFile",
    "fetch_weights",
    "images_to_uint8",
    "load_state_dict_file",
    "resize_images",
]
