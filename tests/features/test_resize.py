"""Each resize protocol against the code it reproduces: torch-fidelity, F.interpolate and PIL."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from lightning_genmetrics.features.resize import RESIZE_PROTOCOLS, check_resize_protocol, resize_images

# Upscales, a non-square input, a downscale, and shapes that are not 299 on either side.
SHAPES = [((32, 32), 299), ((97, 140), 299), ((512, 384), 299), ((299, 300), (64, 45))]


def _uint8_images(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, size=shape, dtype=np.uint8))


def _pil_bicubic(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """clean-fid's resize: each channel as a float32 "F" image, PIL bicubic, clipped to [0, 255]."""
    out = np.empty((*images.shape[:2], height, width), dtype=np.float32)
    for n, image in enumerate(images):
        for c, plane in enumerate(image):
            pil = Image.fromarray(plane.astype(np.float32))
            assert pil.mode == "F"
            out[n, c] = np.asarray(pil.resize((width, height), resample=Image.BICUBIC)).clip(0, 255)
    return out


def _as_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else size


@pytest.mark.parametrize(("in_size", "size"), SHAPES)
def test_tf1_matches_torch_fidelity(rng, in_size, size):
    images = _uint8_images(rng, (2, 3, *in_size))
    expected = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=_as_pair(size), align_corners=False)
    resized = resize_images(images, size, "tf1")
    assert resized.dtype == torch.float32
    assert resized.shape == (2, 3, *_as_pair(size))
    torch.testing.assert_close(resized, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("in_size", "size"), SHAPES)
def test_torch_antialias_matches_interpolate(rng, in_size, size):
    images = _uint8_images(rng, (2, 3, *in_size))
    expected = F.interpolate(images.float(), size=_as_pair(size), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(resize_images(images, size, "torch-antialias"), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("in_size", "size"), SHAPES)
def test_clean_matches_pil_bicubic(rng, in_size, size):
    images = _uint8_images(rng, (2, 3, *in_size))
    expected = _pil_bicubic(images.numpy(), *_as_pair(size))
    resized = resize_images(images, size, "clean")
    assert resized.dtype == torch.float32
    np.testing.assert_allclose(resized.numpy(), expected, atol=1e-4, rtol=0)


def test_clean_clips_the_bicubic_overshoot():
    checkerboard = torch.tensor([[0, 255] * 4, [255, 0] * 4] * 4, dtype=torch.uint8).expand(1, 3, 8, 8)
    raw = np.asarray(Image.fromarray(checkerboard[0, 0].numpy().astype(np.float32)).resize((29, 29), Image.BICUBIC))
    assert raw.min() < 0
    assert raw.max() > 255
    resized = resize_images(checkerboard, 29, "clean")
    assert resized.min() == 0
    assert resized.max() == 255
    np.testing.assert_allclose(resized[0, 0].numpy(), raw.clip(0, 255), atol=1e-4, rtol=0)


@pytest.mark.parametrize("protocol", RESIZE_PROTOCOLS)
def test_float_values_on_the_pixel_scale_equal_uint8(rng, protocol):
    images = _uint8_images(rng, (2, 3, 23, 41))
    for dtype in (torch.float32, torch.float64):
        torch.testing.assert_close(
            resize_images(images.to(dtype), (30, 17), protocol), resize_images(images, (30, 17), protocol)
        )


@pytest.mark.parametrize("protocol", RESIZE_PROTOCOLS)
def test_same_size_is_the_identity(rng, protocol):
    images = torch.from_numpy(rng.uniform(0, 255, size=(2, 3, 12, 17)).astype(np.float32))
    torch.testing.assert_close(resize_images(images, (12, 17), protocol), images, atol=1e-4, rtol=0)


def test_check_resize_protocol():
    assert [check_resize_protocol(protocol) for protocol in RESIZE_PROTOCOLS] == list(RESIZE_PROTOCOLS)
    with pytest.raises(ValueError, match=r"Expected `resize` to be one of \('tf1', 'torch-antialias', 'clean'\)"):
        check_resize_protocol("bicubic")


def test_clean_without_pillow_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ModuleNotFoundError, match="pip install pillow"):
        check_resize_protocol("clean")
    assert check_resize_protocol("tf1") == "tf1"


@pytest.mark.parametrize(
    ("images", "size", "protocol", "error", "match"),
    [
        (np.zeros((1, 3, 4, 4)), 8, "tf1", TypeError, "Expected `images` to be a torch.Tensor, got ndarray"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.int32), 8, "tf1", TypeError, "got dtype torch.int32"),
        (torch.zeros(3, 4, 4), 8, "tf1", ValueError, r"got shape \(3, 4, 4\)"),
        (torch.zeros(1, 3, 4, 0), 8, "tf1", ValueError, r"got shape \(1, 3, 4, 0\)"),
        (torch.zeros(1, 3, 4, 4), 0, "tf1", ValueError, "Expected `size` to be positive, got 0"),
        (torch.zeros(1, 3, 4, 4), (8, -1), "tf1", ValueError, r"got \(8, -1\)"),
        (torch.zeros(1, 3, 4, 4), 8.0, "tf1", TypeError, "Expected `size` to be an int or a .*got 8.0"),
        (torch.zeros(1, 3, 4, 4), (8, 8, 8), "tf1", TypeError, r"got \(8, 8, 8\)"),
        (torch.zeros(1, 3, 4, 4), True, "tf1", TypeError, "got True"),
        (torch.zeros(1, 3, 4, 4), 8, "bicubic", ValueError, "Expected `protocol` to be one of .*got 'bicubic'"),
    ],
)
def test_bad_arguments_raise(images, size, protocol, error, match):
    with pytest.raises(error, match=match):
        resize_images(images, size, protocol)
