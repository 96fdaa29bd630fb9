"""Image preprocessing, feature extractors and their verified weights."""

from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.classifier import ClassifierFeatures
from lightning_genmetrics.features.clip import (
    CLIP_ENCODERS,
    CLIPImageEncoder,
    clip_preprocess,
    load_clip_visual_state_dict,
)
from lightning_genmetrics.features.dinov2 import DINOV2_ENCODER_NAMES, DINOv2Encoder, dinov2_preprocess
from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.features.inception import INCEPTION_LAYER_DIMS, FIDInceptionV3
from lightning_genmetrics.features.lpips_nets import LPIPSNetwork
from lightning_genmetrics.features.preprocess import InputRange, images_to_uint8
from lightning_genmetrics.features.resize import resize_images
from lightning_genmetrics.features.weights import WeightsFile, fetch_weights, load_state_dict_file

__all__ = [
    "CLIP_ENCODERS",
    "DINOV2_ENCODER_NAMES",
    "INCEPTION_LAYER_DIMS",
    "CLIPImageEncoder",
    "ClassifierFeatures",
    "DINOv2Encoder",
    "FIDInceptionV3",
    "ImageBatch",
    "ImageFeatures",
    "InputRange",
    "LPIPSNetwork",
    "WeightsFile",
    "clip_preprocess",
    "dinov2_preprocess",
    "fetch_weights",
    "images_to_uint8",
    "load_clip_visual_state_dict",
    "load_state_dict_file",
    "resize_images",
]
