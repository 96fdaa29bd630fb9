"""SSIM and MS-SSIM against torchmetrics 1.9: its own test cases ported, and live comparisons on fresh inputs.

Ported from torchmetrics' ``tests/unittests/image/test_ssim.py`` and ``test_ms_ssim.py``: their inputs (4 batches
of ``preds`` uniform in [0, 1] and ``target = coef · preds``), their references (scikit-image's
``structural_similarity`` and pytorch-msssim) and their tolerance (``atol=6e-3``: torchmetrics' border, like this
library's default, is not scikit-image's valid window). Where a reference computes exactly what an argument here
computes, the comparison is also made at float64 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_msssim
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
from torchmetrics.image import MultiScaleStructuralSimilarityIndexMeasure as TorchmetricsMSSSIM
from torchmetrics.image import StructuralSimilarityIndexMeasure as TorchmetricsSSIM

from lightning_genmetrics.functional.ssim import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)
from lightning_genmetrics.metrics.ssim import (
    MS_SSIM,
    SSIM,
    MultiScaleStructuralSimilarityIndexMeasure,
    StructuralSimilarityIndexMeasure,
)
from tests.ddp.harness import run_distributed
from tests.helpers import fresh_seed

NUM_BATCHES = 4
TORCHMETRICS_ATOL = 6e-3
# (size, channels, coef, dtype) of torchmetrics' SSIM inputs; each is used as images and as volumes.
SSIM_INPUTS = [
    (12, 3, 0.9, torch.float32),
    (13, 1, 0.8, torch.float32),
    (14, 1, 0.7, torch.float64),
    (13, 3, 0.6, torch.float32),
]


def _torch(rng, shape, dtype=torch.float64):
    return torch.from_numpy(rng.random(shape)).to(dtype)


def _ported_input(rng, size, channels, coef, dtype, volume, batch_size=2):
    """torchmetrics' inputs: 4 batches of images, or (to keep the float64 3-D convolutions of the references short)
    one batch of volumes."""
    spatial = (size,) * (3 if volume else 2)
    preds = _torch(rng, (1 if volume else NUM_BATCHES, batch_size, channels, *spatial), dtype)
    return preds, preds * coef


def _close(ours, theirs, atol):
    """Our float64 value against torchmetrics' (computed in the input's dtype)."""
    if isinstance(ours, tuple):
        assert isinstance(theirs, tuple)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _close(a, b, atol)
        return
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs.to(torch.float64), rtol=0, atol=atol)


def _rounding(dtype):
    """torchmetrics computes in the input's dtype, this library in float64: agreement to that dtype's rounding."""
    return 1e-5 if dtype == torch.float32 else 1e-12


# torchmetrics' classes sum into a float32 state whatever the input's dtype.
CLASS_ROUNDING = 1e-5


# --- ported: torchmetrics' SSIM test cases ----------------------------------------------------------------------


def _reference_skimage_ssim(preds, target, data_range, sigma, gaussian_weights=True, reduction="elementwise_mean"):
    """torchmetrics' reference: scikit-image per image, channels last, after clamping to a (low, high) range."""
    if isinstance(data_range, tuple):
        preds, target = preds.clamp(*data_range), target.clamp(*data_range)
        data_range = data_range[1] - data_range[0]
    values = torch.tensor(
        [
            structural_similarity(
                t.movedim(0, -1).double().numpy(),
                p.movedim(0, -1).double().numpy(),
                data_range=data_range,
                gaussian_weights=gaussian_weights,
                sigma=sigma,
                use_sample_covariance=False,
                channel_axis=-1,
            )
            for p, t in zip(preds, target, strict=True)
        ],
        dtype=torch.float64,
    )
    if reduction == "sum":
        return values.sum()
    return values.mean() if reduction == "elementwise_mean" else values


@pytest.mark.parametrize("volume", [False, True], ids=["images", "volumes"])
@pytest.mark.parametrize(("size", "channels", "coef", "dtype"), SSIM_INPUTS)
@pytest.mark.parametrize("sigma", [1.5, 0.5])
@pytest.mark.parametrize("data_range", [1.0, (0.1, 1.0)])
def test_ssim_class_against_scikit_image(rng, size, channels, coef, dtype, volume, sigma, data_range):
    preds, target = _ported_input(rng, size, channels, coef, dtype, volume)
    ours = StructuralSimilarityIndexMeasure(data_range=data_range, sigma=sigma)
    theirs = TorchmetricsSSIM(data_range=data_range, sigma=sigma)
    for p, t in zip(preds, target, strict=True):
        value = ours(p, t)
        torch.testing.assert_close(
            value, _reference_skimage_ssim(p, t, data_range, sigma), rtol=0, atol=TORCHMETRICS_ATOL
        )
        _close(value, theirs(p, t), CLASS_ROUNDING)
    everything = preds.flatten(0, 1), target.flatten(0, 1)
    value = ours.compute()
    torch.testing.assert_close(
        value, _reference_skimage_ssim(*everything, data_range, sigma), rtol=0, atol=TORCHMETRICS_ATOL
    )
    _close(value, theirs.compute(), CLASS_ROUNDING)
    # scikit-image's own protocol is one argument away, at float64 rounding.
    valid = structural_similarity_index_measure(*everything, sigma=sigma, data_range=data_range, border="valid")
    torch.testing.assert_close(valid, _reference_skimage_ssim(*everything, data_range, sigma), rtol=0, atol=1e-9)


@pytest.mark.parametrize("volume", [False, True], ids=["images", "volumes"])
@pytest.mark.parametrize(("size", "channels", "coef", "dtype"), SSIM_INPUTS)
@pytest.mark.parametrize("sigma", [1.5, 0.5])
def test_ssim_without_gaussian_kernel(rng, size, channels, coef, dtype, volume, sigma):
    preds, target = _ported_input(rng, size, channels, coef, dtype, volume)
    ours = SSIM(gaussian_kernel=False, data_range=1.0, sigma=sigma)
    theirs = TorchmetricsSSIM(gaussian_kernel=False, data_range=1.0, sigma=sigma)
    for p, t in zip(preds, target, strict=True):
        value = ours(p, t)
        # torchmetrics compares its uniform 11-tap window with scikit-image's Gaussian one, at its tolerance.
        torch.testing.assert_close(value, _reference_skimage_ssim(p, t, 1.0, sigma), rtol=0, atol=TORCHMETRICS_ATOL)
        _close(value, theirs(p, t), CLASS_ROUNDING)
    _close(ours.compute(), theirs.compute(), CLASS_ROUNDING)


@pytest.mark.parametrize("volume", [False, True], ids=["images", "volumes"])
@pytest.mark.parametrize(("size", "channels", "coef", "dtype"), SSIM_INPUTS)
@pytest.mark.parametrize("sigma", [1.5, 0.5])
def test_ssim_functional_against_scikit_image_and_pytorch_msssim(rng, size, channels, coef, dtype, volume, sigma):
    preds, target = _ported_input(rng, size, channels, coef, dtype, volume)
    for p, t in zip(preds, target, strict=True):
        skimage = _reference_skimage_ssim(p, t, 1.0, sigma, reduction="none")
        # pytorch-msssim's window always has 11 taps (here of the given sigma), valid region only.
        msssim = pytorch_msssim.ssim(t, p, data_range=1.0, win_size=11, win_sigma=sigma, size_average=False).double()
        theirs = tm_ssim(p, t, sigma=sigma, data_range=1.0, reduction="none")
        for reduction, reduce in (("sum", torch.sum), ("elementwise_mean", torch.mean), (None, lambda x: x)):
            value = structural_similarity_index_measure(p, t, sigma=sigma, data_range=1.0, reduction=reduction)
            torch.testing.assert_close(value, reduce(skimage), rtol=0, atol=TORCHMETRICS_ATOL)
            torch.testing.assert_close(value, reduce(msssim), rtol=0, atol=TORCHMETRICS_ATOL)
            _close(value, reduce(theirs), _rounding(dtype) * len(p))
        assert torch.equal(tm_ssim(p, t, sigma=sigma, data_range=1.0, reduction="sum"), theirs.sum())


@pytest.mark.parametrize(
    ("shape", "kernel_size", "sigma", "match"),
    [
        ([1, 1, 16, 16], [11, 11], [1.5], "a sequence of 2 or 3 numbers"),
        ([1, 16, 16], [11, 11], [1.5, 1.5], r"\[N, C, H, W\] or \[N, C, D, H, W\]"),
        ([1, 1, 16, 16], [11], [1.5, 1.5], "a sequence of 2 or 3 numbers"),
        ([1, 1, 16, 16], [11], [1.5], "a sequence of 2 or 3 numbers"),
        ([1, 1, 16, 16], [11, 0], [1.5, 1.5], "odd positive numbers"),
        ([1, 1, 16, 16], [11, 10], [1.5, 1.5], "odd positive numbers"),
        ([1, 1, 16, 16], [11, -11], [1.5, 1.5], "odd positive numbers"),
        ([1, 1, 16, 16], [11, 11], [1.5, 0], "`sigma` to be a positive finite number"),
        ([1, 1, 16, 16], [11, 11], [1.5, -1.5], "`sigma` to be a positive finite number"),
    ],
)
def test_ssim_invalid_inputs(shape, kernel_size, sigma, match):
    preds, target = torch.rand(shape), torch.rand(shape)
    with pytest.raises(ValueError, match=match):
        structural_similarity_index_measure(preds, target, kernel_size=kernel_size, sigma=sigma, data_range=1.0)


_BINARY_PREDS = [
    [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
    [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
]
_BINARY_TARGET = [
    [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
    [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
    [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0],
    [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0],
    [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0],
    [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"sigma": (0.25, 0.5)}, 0.20977394),
        ({"sigma": (0.5, 0.25)}, 0.13884821),
        ({"gaussian_kernel": False, "kernel_size": (3, 5)}, 0.05032664),
        ({"gaussian_kernel": False, "kernel_size": (5, 3)}, 0.03472072),
    ],
)
def test_ssim_unequal_kernel_size(options, expected):
    preds, target = torch.tensor([[_BINARY_PREDS]]), torch.tensor([[_BINARY_TARGET]])
    # torchmetrics' case infers data_range from these 0/1 images: 1.
    value = structural_similarity_index_measure(preds, target, data_range=1.0, **options)
    assert value.item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("volume", [False, True], ids=["images", "volumes"])
@pytest.mark.parametrize(("size", "channels", "coef", "dtype"), SSIM_INPUTS)
def test_full_image_output(rng, size, channels, coef, dtype, volume):
    preds, target = _ported_input(rng, size, channels, coef, dtype, volume)
    out = structural_similarity_index_measure(preds[0], target[0], data_range=1.0)
    assert isinstance(out, torch.Tensor)
    assert out.numel() == 1
    value, image = structural_similarity_index_measure(preds[0], target[0], data_range=1.0, return_full_image=True)
    assert value.numel() == 1
    assert image.shape == preds[0].shape


def test_ssim_for_correct_padding():
    preds = torch.rand([3, 3, 256, 256])
    target = preds.clone()
    target[:, :, 0, :] = 0
    target[:, :, -1, :] = 0
    target[:, :, :, 0] = 0
    target[:, :, :, -1] = 0
    assert structural_similarity_index_measure(preds, target, data_range=1.0) < 1.0


# --- ported: torchmetrics' MS-SSIM test cases -------------------------------------------------------------------


@pytest.mark.parametrize("coef", [0.9, 0.7])
def test_ms_ssim_against_pytorch_msssim(rng, coef):
    # torchmetrics' 182×182 inputs, in two batches of one image (not four) to keep the test short.
    preds = _torch(rng, (2, 1, 1, 182, 182), torch.float32)
    target = preds * coef
    ours, theirs = (
        MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=11),
        TorchmetricsMSSSIM(data_range=1.0, kernel_size=11),
    )
    for p, t in zip(preds, target, strict=True):
        reference = pytorch_msssim.ms_ssim(p, t, data_range=1.0, win_size=11, size_average=False).double()
        value = ours(p, t)
        torch.testing.assert_close(value, reference.mean(), rtol=0, atol=TORCHMETRICS_ATOL)
        _close(value, theirs(p, t), CLASS_ROUNDING)
        functional = multiscale_structural_similarity_index_measure(p, t, data_range=1.0, kernel_size=11)
        torch.testing.assert_close(functional, reference.mean(), rtol=0, atol=TORCHMETRICS_ATOL)
    _close(ours.compute(), theirs.compute(), CLASS_ROUNDING)


def test_ms_ssim_differentiability(rng):
    preds = _torch(rng, (1, 1, 16, 16))
    target = preds * 0.9
    options = {"data_range": 1.0, "kernel_size": 11, "betas": (1.0,)}
    preds.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p: multiscale_structural_similarity_index_measure(p, target, **options), (preds,), fast_mode=True
    )
    metric = MultiScaleStructuralSimilarityIndexMeasure(**options)
    assert metric.is_differentiable
    assert torch.autograd.gradcheck(lambda p: metric(p, target), (preds,), fast_mode=True)


def test_ms_ssim_contrast_sensitivity():
    preds, target = torch.rand(1, 1, 50, 50, 50), torch.rand(1, 1, 50, 50, 50)
    options = {"data_range": 1.0, "kernel_size": 3, "betas": (1.0, 0.5, 0.25)}
    out = multiscale_structural_similarity_index_measure(preds, target, **options)
    assert isinstance(out, torch.Tensor)
    # A Gaussian window (11 taps from sigma) with torchmetrics' depth padding from kernel_size: its number.
    _close(out, tm_ms_ssim(preds, target, **options), 1e-6)


# --- live: fresh inputs, every argument, class and functional, batch by batch ----------------------------------

SSIM_OPTIONS = [
    {},
    {"sigma": 0.5},
    {"sigma": (0.5, 1.0)},
    {"sigma": 0.1},
    {"gaussian_kernel": False, "kernel_size": 7},
    {"gaussian_kernel": False, "kernel_size": (3, 5)},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"reduction": None, "k1": 0.02, "k2": 0.05},
    {"data_range": (0.1, 0.9)},
    {"return_full_image": True},
    {"return_contrast_sensitivity": True, "reduction": "none"},
]


@pytest.mark.parametrize(
    ("options", "dtype"),
    [({}, torch.float32), *((options, torch.float64) for options in SSIM_OPTIONS)],
    ids=str,
)
def test_ssim_equals_torchmetrics(rng, options, dtype):
    height, width = rng.integers(16, 40, 2)
    target = _torch(rng, (7, 3, height, width), dtype)
    preds = (target + rng.uniform(0.05, 0.4) * _torch(rng, target.shape, dtype)).clamp(0, 1)
    options = {"data_range": 1.0, **options}
    tolerance = _rounding(dtype) * (7 if options.get("reduction") == "sum" else 1)
    _close(structural_similarity_index_measure(preds, target, **options), tm_ssim(preds, target, **options), tolerance)
    ours, theirs = SSIM(**options), TorchmetricsSSIM(**options)
    tolerance = max(tolerance, CLASS_ROUNDING * (7 if options.get("reduction") == "sum" else 1))
    for p, t in zip(preds.split(3), target.split(3), strict=True):
        _close(ours(p, t), theirs(p, t), tolerance)
    _close(ours.compute(), theirs.compute(), tolerance)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"kernel_size": 5},
        {"sigma": 0.5},
        {"sigma": (0.5, 1.0, 1.5), "kernel_size": 11},
        {"gaussian_kernel": False, "kernel_size": (3, 5, 7)},
        {"return_contrast_sensitivity": True, "reduction": "none", "kernel_size": 5},
    ],
    ids=str,
)
def test_ssim_of_volumes_equals_torchmetrics(rng, options):
    volumes = _torch(rng, (3, 2, *rng.integers(12, 18, 3)))
    others = (volumes * rng.uniform(0.6, 0.95)).clamp(0, 1)
    options = {"data_range": 1.0, **options}
    _close(structural_similarity_index_measure(volumes, others, **options), tm_ssim(volumes, others, **options), 1e-12)


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({}, (176, 200)),
        ({"normalize": "simple", "betas": (0.3, 0.3, 0.4)}, (44, 60)),
        ({"normalize": None, "reduction": "none", "betas": (0.3, 0.3, 0.4)}, (44, 60)),
        ({"kernel_size": 7, "betas": (0.3, 0.3, 0.4), "reduction": "sum"}, (44, 60)),
        ({"gaussian_kernel": False, "kernel_size": 7, "betas": (0.5, 0.5)}, (20, 40)),
        ({"sigma": (1.0, 1.5), "data_range": (0.0, 0.9), "betas": (0.3, 0.3, 0.4)}, (44, 60)),
    ],
    ids=str,
)
def test_ms_ssim_equals_torchmetrics(rng, options, size):
    images = 2 if size[0] > 100 else 5
    target = _torch(rng, (images, 2, *rng.integers(*size, 2)))
    preds = (target + rng.uniform(0.05, 0.4) * _torch(rng, target.shape)).clamp(0, 1)
    options = {"data_range": 1.0, **options}
    # torchmetrics raises its betas to float32 before the powers: agreement to about 1e-8.
    _close(
        multiscale_structural_similarity_index_measure(preds, target, **options),
        tm_ms_ssim(preds, target, **options),
        1e-7,
    )
    ours, theirs = MS_SSIM(**options), TorchmetricsMSSSIM(**options)
    tolerance = 1e-7 if options.get("reduction") in ("none", None) else CLASS_ROUNDING
    for p, t in zip(preds.split(2), target.split(2), strict=True):
        _close(ours(p, t), theirs(p, t), tolerance)
    _close(ours.compute(), theirs.compute(), tolerance)


def test_positional_forms_equal_torchmetrics(rng):
    target = _torch(rng, (3, 3, 48, 52))
    preds = (target + 0.2 * _torch(rng, target.shape)).clamp(0, 1)
    # torchmetrics' positional orders: the class (gaussian_kernel, sigma, kernel_size, reduction, data_range, k1,
    # k2, return_full_image, return_contrast_sensitivity); MS-SSIM's class swaps kernel_size and sigma.
    ssim_args = (True, 0.5, 11, "none", 1.0, 0.02, 0.04, False, True)
    _close(SSIM(*ssim_args)(preds, target), TorchmetricsSSIM(*ssim_args)(preds, target), 1e-12)
    _close(structural_similarity_index_measure(preds, target, *ssim_args), tm_ssim(preds, target, *ssim_args), 1e-12)
    ms_args = (True, 7, 1.0, "sum", 1.0, 0.01, 0.03, (0.3, 0.3, 0.4), "simple")
    _close(MS_SSIM(*ms_args)(preds, target), TorchmetricsMSSSIM(*ms_args)(preds, target), CLASS_ROUNDING)
    ms_args = (False, 1.0, 7, "elementwise_mean", 1.0, 0.01, 0.03, (0.5, 0.5), "relu")
    _close(
        multiscale_structural_similarity_index_measure(preds, target, *ms_args),
        tm_ms_ssim(preds, target, *ms_args),
        1e-7,
    )


# --- gradients --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"sigma": (0.5, 1.0)},
        {"gaussian_kernel": False, "kernel_size": 5, "reduction": "sum"},
        {"data_range": (0.0, 1.0)},
    ],
    ids=str,
)
def test_ssim_gradients_equal_torchmetrics(rng, options):
    target = _torch(rng, (2, 3, 24, 27))
    start = (0.05 + 0.9 * target * rng.uniform(0.6, 0.9)).requires_grad_()
    options = {"data_range": 1.0, **options}
    ours, theirs = start.clone().detach().requires_grad_(), start.clone().detach().requires_grad_()
    (1 - structural_similarity_index_measure(ours, target, **options)).sum().backward()
    (1 - tm_ssim(theirs, target, **options)).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-9, atol=1e-14)
    # The class's forward is the same loss.
    via_class = start.clone().detach().requires_grad_()
    (1 - SSIM(**options)(via_class, target)).sum().backward()
    torch.testing.assert_close(via_class.grad, theirs.grad, rtol=1e-9, atol=1e-14)
    gradcheck_input = start[:1, :1, :12, :13].detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p: SSIM(**options)(p, target[:1, :1, :12, :13]), (gradcheck_input,), fast_mode=True
    )


def test_ms_ssim_gradients_equal_torchmetrics_and_pytorch_msssim(rng):
    # pytorch-msssim pads an odd side before pooling where torchmetrics drops the last row: sizes divisible by 16.
    target = _torch(rng, (1, 1, 176, 192))
    start = 0.05 + 0.9 * (target * 0.8 + 0.2 * _torch(rng, target.shape)).clamp(0, 1)
    # pytorch-msssim builds its window in float32; this one is the float64 Gaussian.
    offsets = torch.arange(11, dtype=torch.float64) - 5
    window = torch.exp(-(offsets**2) / (2 * 1.5**2))
    window = (window / window.sum()).view(1, 1, 1, 11)
    grads = {}
    for name, loss in {
        "ours": lambda p: multiscale_structural_similarity_index_measure(p, target, data_range=1.0),
        "torchmetrics": lambda p: tm_ms_ssim(p, target, data_range=1.0),
        "ours valid": lambda p: multiscale_structural_similarity_index_measure(
            p, target, data_range=1.0, border="valid"
        ),
        "pytorch-msssim": lambda p: pytorch_msssim.ms_ssim(p, target, data_range=1.0, win=window),
    }.items():
        preds = start.clone().requires_grad_()
        (1 - loss(preds)).backward()
        grads[name] = preds.grad
    # torchmetrics' float32 betas: gradients agree to about 1e-8 of their scale.
    scale = grads["torchmetrics"].abs().max().item()
    torch.testing.assert_close(grads["ours"], grads["torchmetrics"], rtol=0, atol=1e-7 * scale)
    torch.testing.assert_close(grads["ours valid"], grads["pytorch-msssim"], rtol=0, atol=1e-10 * scale)


# --- refusals: each names what to write instead -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: SSIM(), ValueError, r"pass data_range=1.0 for images in \[0, 1\], 255 for uint8"),
        (lambda: MS_SSIM(), ValueError, r"pass data_range=1.0 for images in \[0, 1\], 255 for uint8"),
        (
            lambda: structural_similarity_index_measure(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)),
            ValueError,
            r"pass data_range=1.0 for images in \[0, 1\], 255 for uint8",
        ),
        (
            lambda: multiscale_structural_similarity_index_measure(torch.rand(1, 1, 96, 96), torch.rand(1, 1, 96, 96)),
            ValueError,
            r"pass data_range=1.0 for images in \[0, 1\], 255 for uint8",
        ),
        (lambda: SSIM(1.0), TypeError, r"pass the range by keyword, `data_range=1.0`"),
        (lambda: MS_SSIM(255.0, 11, 1.5), TypeError, r"pass the range by keyword, `data_range=255.0`"),
        (
            lambda: structural_similarity_index_measure(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), 1.0),
            TypeError,
            r"`data_range=1.0`",
        ),
        (lambda: SSIM(data_range=1.0, reduction="mean"), ValueError, r"\('elementwise_mean', 'sum', 'none', None\)"),
        (
            lambda: SSIM(data_range=1.0)(torch.rand(1, 1, 16, 16) * 255, torch.rand(1, 1, 16, 16)),
            ValueError,
            r"data_range=\(low, high\) to clamp them",
        ),
    ],
)
def test_refusals_name_the_replacement(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- two gloo processes: uneven shards, an empty rank, per-image states -----------------------------------------


def _ddp_data(seed):
    rng = np.random.default_rng(seed)
    target = rng.random((9, 2, 20, 22))
    preds = np.clip(target + 0.2 * rng.standard_normal(target.shape), 0, 1)
    return torch.from_numpy(preds), torch.from_numpy(target)


_DDP_OPTIONS = {
    "mean": {"data_range": 1.0},
    "per image": {"data_range": 1.0, "reduction": "none"},
    "full image": {"data_range": 1.0, "return_full_image": True},
    "contrast": {"data_range": 1.0, "reduction": None, "return_contrast_sensitivity": True},
}


def _ddp_rank(rank, world_size, seed):
    preds, target = _ddp_data(seed)
    values = {}
    for name, options in _DDP_OPTIONS.items():
        for layout, cut in (("uneven", 7), ("empty rank", 9)):
            metric = SSIM(**options)
            shard = slice(0, cut) if rank == 0 else slice(cut, None)
            for p, t in zip(preds[shard].split(3), target[shard].split(3), strict=True):
                metric.update(p, t)
            values[name, layout] = metric.compute()
    return values


@pytest.mark.ddp
def test_two_processes_give_torchmetrics_one_process_values():
    seed = fresh_seed()
    results = run_distributed(_ddp_rank, world_size=2, timeout=180, seed=seed)
    preds, target = _ddp_data(seed)
    for name, options in _DDP_OPTIONS.items():
        one_process, theirs = SSIM(**options), TorchmetricsSSIM(**options)
        for metric in (one_process, theirs):
            for p, t in zip(preds.split(3), target.split(3), strict=True):
                metric.update(p, t)
        for values in results:
            for layout in ("uneven", "empty rank"):
                # The sums merge exactly; torchmetrics' own class sums in float32.
                _close(values[name, layout], one_process.compute(), 1e-12)
                _close(values[name, layout], theirs.compute(), CLASS_ROUNDING)
