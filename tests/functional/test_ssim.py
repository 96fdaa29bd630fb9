"""SSIM against scikit-image and MS-SSIM against a scipy reference and pytorch-msssim, on fresh random inputs."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from lightning_genmetrics.functional.ssim import (
    MS_SSIM_BETAS,
    multiscale_structural_similarity_index_measure,
    ssim_min_size,
    structural_similarity_index_measure,
)


def _structured(rng, shape):
    """Smooth gradients, a sharp-edged block and mild texture: flat regions where float32 SSIM would fail."""
    n, c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    images = np.empty(shape)
    for i in range(n):
        for j in range(c):
            a, b = rng.uniform(0.5, 3, 2)
            image = 0.5 + 0.3 * np.sin(a * np.pi * xx + b * yy)
            top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
            image[top : top + h // 3, left : left + w // 3] = rng.uniform(0, 1)
            images[i, j] = np.clip(image + 0.02 * rng.standard_normal((h, w)), 0, 1)
    return images


def _pair(rng, shape, kind):
    if kind == "random":
        target = rng.random(shape)
        preds = np.clip(target + rng.uniform(0.05, 0.4) * rng.standard_normal(shape), 0, 1)
    else:
        target = _structured(rng, shape)
        preds = np.clip(gaussian_filter(target, sigma=(0, 0, 1.2, 1.2)) + 0.01 * rng.standard_normal(shape), 0, 1)
    return preds, target


def _skimage(preds, target, data_range=1.0, **options):
    options = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, **options}
    return np.array(
        [
            structural_similarity(p, t, channel_axis=0, data_range=data_range, **options)
            for p, t in zip(preds, target, strict=True)
        ]
    )


@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("shape", [(3, 1, 11, 11), (2, 1, 33, 47), (2, 3, 40, 40), (3, 3, 27, 61)])
def test_matches_scikit_image(rng, kind, shape):
    preds, target = _pair(rng, shape, kind)
    ours = structural_similarity_index_measure(torch.from_numpy(preds), torch.from_numpy(target), 1.0, reduction="none")
    expected = _skimage(preds, target)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)
    mean = structural_similarity_index_measure(torch.from_numpy(preds), torch.from_numpy(target), 1.0)
    assert abs(mean.item() - expected.mean()) <= 1e-9


def test_float32_and_uint8_inputs_match_scikit_image(rng):
    uint8 = rng.integers(0, 256, (2, 3, 30, 35), dtype=np.uint8)
    other = np.clip(uint8.astype(np.int64) + rng.integers(-40, 40, uint8.shape), 0, 255).astype(np.uint8)
    ours = structural_similarity_index_measure(torch.from_numpy(other), torch.from_numpy(uint8), 255, reduction="none")
    expected = _skimage(other.astype(np.float64), uint8.astype(np.float64), data_range=255)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)
    preds, target = _pair(rng, (2, 3, 30, 35), "structured")
    preds32, target32 = preds.astype(np.float32), target.astype(np.float32)
    ours = structural_similarity_index_measure(
        torch.from_numpy(preds32), torch.from_numpy(target32), 1.0, reduction="none"
    )
    expected = _skimage(preds32.astype(np.float64), target32.astype(np.float64))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)


def test_other_window_and_constants_match_scikit_image(rng):
    preds, target = _pair(rng, (2, 3, 25, 29), "random")
    # scikit-image's window for sigma=1 has 2·int(3.5·1 + 0.5) + 1 = 9 taps.
    ours = structural_similarity_index_measure(
        torch.from_numpy(preds) * 2 - 1,
        torch.from_numpy(target) * 2 - 1,
        2.0,
        kernel_size=9,
        sigma=1.0,
        k1=0.02,
        k2=0.05,
        reduction="none",
    )
    expected = _skimage(preds * 2 - 1, target * 2 - 1, data_range=2.0, sigma=1.0, K1=0.02, K2=0.05)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)


def _full_map_mean(p, t, c1=1e-4, c2=9e-4):
    """Mean SSIM map of one pair [C, H, W] with scipy's 'reflect' (symmetric) borders, any image size."""

    def blur(a):
        return gaussian_filter(a, sigma=(0, 1.5, 1.5), truncate=3.5, mode="reflect")

    mp, mt = blur(p), blur(t)
    vp, vt, cpt = blur(p * p) - mp**2, blur(t * t) - mt**2, blur(p * t) - mp * mt
    return ((2 * mp * mt + c1) * (2 * cpt + c2) / ((mp**2 + mt**2 + c1) * (vp + vt + c2))).mean()


@pytest.mark.parametrize("shape", [(2, 3, 24, 31), (1, 1, 4, 9)])
def test_symmetric_border_is_the_mean_of_the_full_map(rng, shape):
    preds, target = _pair(rng, shape, "random")
    ours = structural_similarity_index_measure(
        torch.from_numpy(preds), torch.from_numpy(target), 1.0, border="symmetric", reduction="none"
    )
    np.testing.assert_allclose(
        ours.numpy(), [_full_map_mean(p, t) for p, t in zip(preds, target, strict=True)], rtol=0, atol=1e-9
    )
    if min(shape[-2:]) >= 11:  # scikit-image refuses images smaller than its window, even with full=True
        expected = [
            structural_similarity(
                p,
                t,
                channel_axis=0,
                data_range=1.0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                full=True,
            )[1].mean()
            for p, t in zip(preds, target, strict=True)
        ]
        np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)


def test_identity_and_symmetry(rng):
    preds, target = (torch.from_numpy(a) for a in _pair(rng, (3, 3, 24, 23), "structured"))
    for border in ("valid", "symmetric"):
        same = structural_similarity_index_measure(target, target, 1.0, border=border, reduction="none")
        assert torch.equal(same, torch.ones(3, dtype=torch.float64))
        forward = structural_similarity_index_measure(preds, target, 1.0, border=border, reduction="none")
        backward = structural_similarity_index_measure(target, preds, 1.0, border=border, reduction="none")
        assert torch.equal(forward, backward)
    same = multiscale_structural_similarity_index_measure(
        target, target, 1.0, betas=(0.5, 0.5), border="symmetric", reduction="none"
    )
    torch.testing.assert_close(same, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-15)


# --- MS-SSIM ----------------------------------------------------------------------------------------


def _ms_ssim_reference(x, y, data_range=1.0, betas=MS_SSIM_BETAS):
    """MS-SSIM of one image pair [C, H, W] from scipy's Gaussian filter, in float64 and numpy only."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    value = 1.0
    for scale, beta in enumerate(betas):

        def blur(a):
            return gaussian_filter(a, sigma=(0, 1.5, 1.5), truncate=3.5)[:, 5:-5, 5:-5]

        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = (2 * cxy + c2) / (vx + vy + c2)
        ssim = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
        term = ssim.mean() if scale == len(betas) - 1 else cs.mean()
        value *= max(term, 0.0) ** beta
        h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
        x = x[:, :h, :w].reshape(x.shape[0], h // 2, 2, w // 2, 2).mean((2, 4))
        y = y[:, :h, :w].reshape(y.shape[0], h // 2, 2, w // 2, 2).mean((2, 4))
    return value


@pytest.mark.parametrize("shape", [(2, 3, 177, 190), (2, 1, 192, 176)])
def test_ms_ssim_matches_scipy_reference(rng, shape):
    preds, target = _pair(rng, shape, "structured")
    ours = multiscale_structural_similarity_index_measure(
        torch.from_numpy(preds), torch.from_numpy(target), 1.0, reduction="none"
    )
    expected = [_ms_ssim_reference(p, t) for p, t in zip(preds, target, strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)


def test_ms_ssim_matches_pytorch_msssim_on_grayscale(rng):
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    preds, target = (torch.from_numpy(a) for a in _pair(rng, (3, 1, 192, 208), "random"))
    offsets = np.arange(11) - 5.0
    window = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = torch.from_numpy(window / window.sum()).view(1, 1, 1, 11)
    expected = pytorch_msssim.ms_ssim(preds, target, data_range=1.0, size_average=False, win=window)
    ours = multiscale_structural_similarity_index_measure(preds, target, 1.0, reduction="none")
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-9)


def test_one_scale_ms_ssim_is_ssim(rng):
    preds, target = (torch.from_numpy(a) for a in _pair(rng, (2, 3, 21, 30), "random"))
    torch.testing.assert_close(
        multiscale_structural_similarity_index_measure(preds, target, 1.0, betas=(1.0,), reduction="none"),
        structural_similarity_index_measure(preds, target, 1.0, reduction="none"),
        rtol=0,
        atol=1e-15,
    )


def test_ms_ssim_counts_negative_terms_as_zero(rng):
    target = torch.from_numpy(rng.random((2, 1, 44, 44)))
    inverted = 1 - target  # anti-correlated: negative contrast-structure at the finest scale
    ssim = structural_similarity_index_measure(inverted, target, 1.0, reduction="none")
    assert (ssim < 0).all()
    value = multiscale_structural_similarity_index_measure(inverted, target, 1.0, betas=(0.5, 0.5), reduction="none")
    assert torch.equal(value, torch.zeros(2, dtype=torch.float64))


def test_too_small_images_name_the_minimum_size():
    assert ssim_min_size(11, scales=5) == 176
    with pytest.raises(ValueError, match=r"at least 176×176 pixels"):
        multiscale_structural_similarity_index_measure(torch.rand(1, 1, 175, 300), torch.rand(1, 1, 175, 300), 1.0)
    multiscale_structural_similarity_index_measure(torch.rand(1, 1, 176, 176), torch.rand(1, 1, 176, 176), 1.0)
    with pytest.raises(ValueError, match=r"at least 11×11 pixels for kernel_size=11"):
        structural_similarity_index_measure(torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40), 1.0)
    small = torch.rand(1, 3, 10, 40)
    structural_similarity_index_measure(small, small, 1.0, border="symmetric")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_range": 0.0}, ValueError, "`data_range` to be a positive finite number, got 0.0"),
        ({"data_range": "1"}, TypeError, "`data_range` to be a positive number"),
        ({"kernel_size": 4}, ValueError, "`kernel_size` to be an odd positive number, got 4"),
        ({"kernel_size": 3.0}, TypeError, "`kernel_size` to be an int"),
        ({"sigma": -1.5}, ValueError, "`sigma` to be a positive finite number, got -1.5"),
        ({"k2": float("nan")}, ValueError, "`k2`"),
        ({"border": "reflect"}, ValueError, "`border` to be one of"),
        ({"reduction": "sum"}, ValueError, "`reduction` to be one of"),
        ({"preds": torch.rand(2, 3, 16, 16) * 255}, ValueError, "span at most data_range=1"),
        ({"preds": torch.randint(0, 9, (2, 3, 16, 16))}, TypeError, "uint8 or floating point"),
        ({"preds": torch.rand(2, 3, 16, 17)}, ValueError, "the same shape"),
        ({"preds": torch.rand(3, 16, 16)}, ValueError, r"\[N, C, H, W\]"),
        ({"target": torch.full((2, 3, 16, 16), float("nan"))}, ValueError, "finite"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"preds": torch.rand(2, 3, 16, 16), "target": torch.rand(2, 3, 16, 16), "data_range": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        structural_similarity_index_measure(
            arguments.pop("preds"), arguments.pop("target"), arguments.pop("data_range"), **arguments
        )


@pytest.mark.parametrize("betas", [(), (0.5, -0.1), "abc", (0.5, float("inf"))])
def test_bad_betas(betas):
    with pytest.raises((TypeError, ValueError), match="betas"):
        multiscale_structural_similarity_index_measure(
            torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64), 1.0, betas=betas
        )


# gradcheck's fast mode compares the analytical and the finite-difference derivative along random directions: a
# few dozen forward passes instead of two per input element (minutes here), and a direction that misses a wrong
# partial derivative has probability 0.


def _inside_range(rng, shape, kind):
    """A pair in [0.05, 0.95]: finite-difference steps cannot take it past ``data_range``."""
    preds, target = _pair(rng, shape, kind)
    return (torch.from_numpy(0.05 + 0.9 * x).requires_grad_() for x in (preds, target))


@pytest.mark.parametrize("border", ["valid", "symmetric"])
def test_ssim_gradients_match_finite_differences(rng, border):
    preds, target = _inside_range(rng, (2, 2, 9, 10), "random")

    def ssim(p, t):
        return structural_similarity_index_measure(p, t, 1.0, kernel_size=5, sigma=1.0, border=border, reduction="none")

    assert torch.autograd.gradcheck(ssim, (preds, target), fast_mode=True)


@pytest.mark.parametrize("border", ["valid", "symmetric"])
def test_ms_ssim_gradients_match_finite_differences(rng, border):
    preds, target = _inside_range(rng, (1, 2, 20, 22), "structured")

    def ms_ssim(p, t):
        return multiscale_structural_similarity_index_measure(
            p, t, 1.0, kernel_size=5, sigma=1.0, betas=(0.3, 0.7), border=border, reduction="none"
        )

    assert (ms_ssim(preds, target) > 0).all()  # away from the clamp of negative terms
    assert torch.autograd.gradcheck(ms_ssim, (preds, target), fast_mode=True)


def test_gradients_across_chunks(rng, monkeypatch):
    import lightning_genmetrics.functional.ssim as ssim_module

    monkeypatch.setattr(ssim_module, "_CHUNK_PIXELS", 100)  # one 9×10 plane per chunk: four chunks
    preds, target = _inside_range(rng, (2, 2, 9, 10), "random")
    assert torch.autograd.gradcheck(
        lambda p, t: structural_similarity_index_measure(p, t, 1.0, kernel_size=5, sigma=1.0),
        (preds, target),
        fast_mode=True,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_value_with_gradients_is_the_value_without(rng, dtype):
    preds, target = (torch.from_numpy(x).to(dtype) for x in _pair(rng, (2, 3, 50, 53), "structured"))
    for function, options in (
        (structural_similarity_index_measure, {}),
        (structural_similarity_index_measure, {"border": "symmetric", "kernel_size": 7}),
        (multiscale_structural_similarity_index_measure, {"betas": (0.2, 0.3, 0.5)}),
    ):
        plain = function(preds, target, 1.0, reduction="none", **options)
        tracked = function(preds.clone().requires_grad_(), target, 1.0, reduction="none", **options)
        assert tracked.requires_grad
        assert not plain.requires_grad
        assert torch.equal(tracked.detach(), plain)
        with torch.no_grad():
            assert torch.equal(
                function(preds.clone().requires_grad_(), target, 1.0, reduction="none", **options), plain
            )


def test_ssim_as_a_loss_moves_the_prediction_toward_the_target(rng):
    preds, target = (torch.from_numpy(x) for x in _pair(rng, (1, 1, 24, 24), "structured"))
    preds = preds.clone().requires_grad_()
    before = structural_similarity_index_measure(preds, target, 1.0)
    (1 - before).backward()
    with torch.no_grad():
        after = structural_similarity_index_measure(preds - 0.1 * preds.grad, target, 1.0)
    assert after > before


def test_ms_ssim_gradient_is_zero_where_a_term_is_clamped(rng):
    target = torch.from_numpy(rng.random((2, 1, 44, 44)))
    inverted = (1 - target).requires_grad_()
    value = multiscale_structural_similarity_index_measure(inverted, target, 1.0, betas=(0.5, 0.5))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(inverted.grad, torch.zeros_like(inverted))
