"""SSIM against scikit-image and scipy references (every border); MS-SSIM against scipy and pytorch-msssim."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from lightning_genmetrics.functional.ssim import (
    MS_SSIM_BETAS,
    gaussian_kernel_size,
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


def _ssim(preds, target, data_range=1.0, **options):
    """Per-image SSIM of numpy images through this library, float64."""
    return structural_similarity_index_measure(
        torch.from_numpy(preds), torch.from_numpy(target), data_range=data_range, reduction="none", **options
    ).numpy()


@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("shape", [(3, 1, 11, 11), (2, 1, 33, 47), (2, 3, 40, 40), (3, 3, 27, 61)])
def test_valid_border_matches_scikit_image(rng, kind, shape):
    preds, target = _pair(rng, shape, kind)
    expected = _skimage(preds, target)
    np.testing.assert_allclose(_ssim(preds, target, border="valid"), expected, rtol=0, atol=1e-9)
    mean = structural_similarity_index_measure(
        torch.from_numpy(preds), torch.from_numpy(target), data_range=1.0, border="valid"
    )
    assert mean.dtype == torch.float64
    assert abs(mean.item() - expected.mean()) <= 1e-9


def _mirrored_map(p, t, sigma=(1.5, 1.5), c1=1e-4, c2=9e-4, mode="mirror"):
    """SSIM and cs maps of one pair [C, *spatial] from scipy's Gaussian filter, every pixel kept.

    scipy's ``"mirror"`` is ``c b | a b c`` (torch's ``"reflect"``), its ``"reflect"`` is ``b a | a b``.
    """

    def blur(a):
        return gaussian_filter(a, sigma=(0, *sigma), truncate=3.5, mode=mode)

    mp, mt = blur(p), blur(t)
    vp, vt, cpt = blur(p * p) - mp**2, blur(t * t) - mt**2, blur(p * t) - mp * mt
    cs = (2 * cpt + c2) / (vp + vt + c2)
    return (2 * mp * mt + c1) / (mp**2 + mt**2 + c1) * cs, cs


@pytest.mark.parametrize(
    ("shape", "sigma"), [((2, 3, 24, 31), 1.5), ((2, 1, 13, 12), (0.5, 1.0)), ((1, 2, 12, 11, 13), 1.5)]
)
def test_default_reflect_border_is_the_mean_of_the_mirrored_map(rng, shape, sigma):
    preds, target = _pair(rng, shape, "random") if len(shape) == 4 else (rng.random(shape), rng.random(shape))
    spatial = len(shape) - 2
    sigmas = sigma if isinstance(sigma, tuple) else (sigma,) * spatial
    maps = [_mirrored_map(p, t, sigmas) for p, t in zip(preds, target, strict=True)]
    np.testing.assert_allclose(_ssim(preds, target, sigma=sigma), [m.mean() for m, _ in maps], rtol=0, atol=1e-9)
    # The contrast-structure term is averaged where the window lies inside the image (torchmetrics' crop).
    pads = [gaussian_kernel_size(s) // 2 for s in sigmas]
    inside = (slice(None), *(slice(pad, -pad) for pad in pads))
    _, cs = structural_similarity_index_measure(
        torch.from_numpy(preds),
        torch.from_numpy(target),
        sigma=sigma,
        data_range=1.0,
        reduction="none",
        return_contrast_sensitivity=True,
    )
    np.testing.assert_allclose(cs.numpy(), [c[inside].mean() for _, c in maps], rtol=0, atol=1e-9)
    _, full = structural_similarity_index_measure(
        torch.from_numpy(preds), torch.from_numpy(target), sigma=sigma, data_range=1.0, return_full_image=True
    )
    np.testing.assert_allclose(full.numpy(), np.stack([m for m, _ in maps]), rtol=0, atol=1e-9)


def test_float32_and_uint8_inputs_match_scikit_image(rng):
    uint8 = rng.integers(0, 256, (2, 3, 30, 35), dtype=np.uint8)
    other = np.clip(uint8.astype(np.int64) + rng.integers(-40, 40, uint8.shape), 0, 255).astype(np.uint8)
    expected = _skimage(other.astype(np.float64), uint8.astype(np.float64), data_range=255)
    np.testing.assert_allclose(_ssim(other, uint8, 255, border="valid"), expected, rtol=0, atol=1e-9)
    preds, target = _pair(rng, (2, 3, 30, 35), "structured")
    preds32, target32 = preds.astype(np.float32), target.astype(np.float32)
    expected = _skimage(preds32.astype(np.float64), target32.astype(np.float64))
    np.testing.assert_allclose(_ssim(preds32, target32, border="valid"), expected, rtol=0, atol=1e-9)


def test_sigma_decides_the_window_and_constants_match_scikit_image(rng):
    preds, target = _pair(rng, (2, 3, 25, 29), "random")
    # scikit-image's window for sigma has 2·int(3.5·sigma + 0.5) + 1 taps (9 for 1.0, 5 for 0.5); kernel_size
    # is the uniform window's and does not change a Gaussian one.
    assert (gaussian_kernel_size(1.0), gaussian_kernel_size(0.5)) == (9, 5)
    for sigma, kernel_size in ((1.0, 11), (0.5, 11), (0.5, 3)):
        ours = _ssim(
            preds * 2 - 1, target * 2 - 1, 2.0, sigma=sigma, kernel_size=kernel_size, k1=0.02, k2=0.05, border="valid"
        )
        expected = _skimage(preds * 2 - 1, target * 2 - 1, data_range=2.0, sigma=sigma, K1=0.02, K2=0.05)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


def test_uniform_window_and_volumes_match_scikit_image(rng):
    preds, target = _pair(rng, (2, 3, 20, 23), "random")
    expected = _skimage(preds, target, gaussian_weights=False, win_size=7)
    np.testing.assert_allclose(
        _ssim(preds, target, gaussian_kernel=False, kernel_size=7, border="valid"), expected, atol=1e-9
    )
    volumes, others = rng.random((2, 2, 12, 13, 14)), rng.random((2, 2, 12, 13, 14))
    expected = _skimage(volumes, others, sigma=1.0)
    np.testing.assert_allclose(_ssim(volumes, others, sigma=1.0, border="valid"), expected, rtol=0, atol=1e-9)


def test_per_axis_windows(rng):
    preds, target = _pair(rng, (2, 1, 21, 26), "random")
    # A uniform 3×5 window is a mean over 3 rows and 5 columns: compare with explicit box sums on the valid region.
    box = np.ones((1, 1, 3, 5)) / 15

    def blur(a):
        return np.stack([[_box(plane, box[0, 0]) for plane in image] for image in a])

    mp, mt = blur(preds), blur(target)
    vp, vt, cpt = blur(preds**2) - mp**2, blur(target**2) - mt**2, blur(preds * target) - mp * mt
    ssim_map = (2 * mp * mt + 1e-4) * (2 * cpt + 9e-4) / ((mp**2 + mt**2 + 1e-4) * (vp + vt + 9e-4))
    ours = _ssim(preds, target, gaussian_kernel=False, kernel_size=(3, 5), border="valid")
    np.testing.assert_allclose(ours, ssim_map.mean((1, 2, 3)), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        _ssim(preds, target, gaussian_kernel=False, kernel_size=(3, 5, 7))


def _box(plane, window):
    """Valid-region correlation of a 2-D plane with a small window."""
    kh, kw = window.shape
    out = np.zeros((plane.shape[0] - kh + 1, plane.shape[1] - kw + 1))
    for i in range(kh):
        for j in range(kw):
            out += window[i, j] * plane[i : i + out.shape[0], j : j + out.shape[1]]
    return out


@pytest.mark.parametrize("shape", [(2, 3, 24, 31), (1, 1, 4, 9)])
def test_symmetric_border_is_the_mean_of_the_full_map(rng, shape):
    preds, target = _pair(rng, shape, "random")
    ours = _ssim(preds, target, border="symmetric")
    expected = [_mirrored_map(p, t, mode="reflect")[0].mean() for p, t in zip(preds, target, strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    if min(shape[-2:]) >= 11:  # scikit-image refuses images smaller than its window, even with full=True
        expected = [
            structural_similarity(
                p, t, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                full=True,
            )[1].mean()
            for p, t in zip(preds, target, strict=True)
        ]  # fmt: skip
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


def test_reductions_and_range_pairs(rng):
    preds, target = (torch.from_numpy(a) for a in _pair(rng, (3, 2, 20, 20), "random"))
    per_image = structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none")
    assert torch.equal(structural_similarity_index_measure(preds, target, reduction=None, data_range=1.0), per_image)
    torch.testing.assert_close(
        structural_similarity_index_measure(preds, target, reduction="sum", data_range=1.0), per_image.sum()
    )
    torch.testing.assert_close(structural_similarity_index_measure(preds, target, data_range=1.0), per_image.mean())
    # (low, high): the images are clamped to the range and its width is the data range.
    wide = preds * 1.4 - 0.2
    clamped = structural_similarity_index_measure(wide.clamp(0.1, 0.9), target.clamp(0.1, 0.9), data_range=0.8)
    assert torch.equal(structural_similarity_index_measure(wide, target, data_range=(0.1, 0.9)), clamped)
    # An empty batch: nothing to average, an empty per-image vector, a zero sum.
    empty = torch.rand(0, 2, 20, 20)
    assert structural_similarity_index_measure(empty, empty, data_range=1.0, reduction="none").shape == (0,)
    assert structural_similarity_index_measure(empty, empty, data_range=1.0, reduction="sum").item() == 0.0
    _, maps = structural_similarity_index_measure(empty, empty, data_range=1.0, return_full_image=True, reduction="sum")
    assert maps.shape == (0, 2, 20, 20)
    with pytest.raises(ValueError, match="empty batch"):
        structural_similarity_index_measure(empty, empty, data_range=1.0)


def test_identity_and_symmetry(rng):
    preds, target = (torch.from_numpy(a) for a in _pair(rng, (3, 3, 24, 23), "structured"))
    for border in ("reflect", "valid", "symmetric"):
        same = structural_similarity_index_measure(target, target, data_range=1.0, border=border, reduction="none")
        assert torch.equal(same, torch.ones(3, dtype=torch.float64))
        forward = structural_similarity_index_measure(preds, target, data_range=1.0, border=border, reduction="none")
        backward = structural_similarity_index_measure(target, preds, data_range=1.0, border=border, reduction="none")
        assert torch.equal(forward, backward)
    same = multiscale_structural_similarity_index_measure(
        target, target, data_range=1.0, betas=(0.5, 0.5), border="symmetric", reduction="none"
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
        torch.from_numpy(preds), torch.from_numpy(target), data_range=1.0, reduction="none", border="valid"
    )
    expected = [_ms_ssim_reference(p, t) for p, t in zip(preds, target, strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)


def test_ms_ssim_default_border_takes_the_mirrored_ssim_at_the_coarsest_scale(rng):
    # torchmetrics' MS-SSIM: contrast-structure terms where the window lies inside the image, the coarsest
    # SSIM over the whole mirrored map; the border of that last map is what differs from pytorch-msssim.
    preds, target = _pair(rng, (2, 2, 100, 97), "structured")
    betas = (0.2, 0.3, 0.5)
    expected = []
    for x, y in zip(preds, target, strict=True):
        value = 1.0
        for scale, beta in enumerate(betas):
            ssim_map, cs_map = _mirrored_map(x, y)
            value *= max(ssim_map.mean() if scale == len(betas) - 1 else cs_map[:, 5:-5, 5:-5].mean(), 0.0) ** beta
            h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
            x = x[:, :h, :w].reshape(x.shape[0], h // 2, 2, w // 2, 2).mean((2, 4))
            y = y[:, :h, :w].reshape(y.shape[0], h // 2, 2, w // 2, 2).mean((2, 4))
        expected.append(value)
    ours = multiscale_structural_similarity_index_measure(
        torch.from_numpy(preds), torch.from_numpy(target), data_range=1.0, betas=betas, reduction="none"
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-9)


def test_ms_ssim_matches_pytorch_msssim_on_grayscale(rng):
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    preds, target = (torch.from_numpy(a) for a in _pair(rng, (3, 1, 192, 208), "random"))
    offsets = np.arange(11) - 5.0
    window = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = torch.from_numpy(window / window.sum()).view(1, 1, 1, 11)
    expected = pytorch_msssim.ms_ssim(preds, target, data_range=1.0, size_average=False, win=window)
    ours = multiscale_structural_similarity_index_measure(
        preds, target, data_range=1.0, reduction="none", border="valid"
    )
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("border", ["reflect", "valid", "symmetric"])
def test_one_scale_ms_ssim_is_ssim(rng, border):
    preds, target = (torch.from_numpy(a) for a in _pair(rng, (2, 3, 21, 30), "random"))
    options = {"data_range": 1.0, "reduction": "none", "border": border}
    torch.testing.assert_close(
        multiscale_structural_similarity_index_measure(preds, target, betas=(1.0,), **options),
        structural_similarity_index_measure(preds, target, **options),
        rtol=0,
        atol=1e-15,
    )


def test_ms_ssim_counts_negative_terms_as_zero(rng):
    target = torch.from_numpy(rng.random((2, 1, 44, 44)))
    inverted = 1 - target  # anti-correlated: negative contrast-structure at the finest scale
    ssim = structural_similarity_index_measure(inverted, target, data_range=1.0, reduction="none")
    assert (ssim < 0).all()
    options = {"data_range": 1.0, "betas": (0.5, 0.5), "reduction": "none"}
    value = multiscale_structural_similarity_index_measure(inverted, target, **options)
    assert torch.equal(value, torch.zeros(2, dtype=torch.float64))
    # normalize="simple" maps each term t to (t + 1) / 2; None leaves a negative term, whose root is NaN.
    _, cs = structural_similarity_index_measure(
        inverted, target, data_range=1.0, reduction="none", return_contrast_sensitivity=True
    )
    half = F.avg_pool2d(inverted, 2), F.avg_pool2d(target, 2)
    coarse = structural_similarity_index_measure(*half, data_range=1.0, reduction="none")
    simple = multiscale_structural_similarity_index_measure(inverted, target, normalize="simple", **options)
    torch.testing.assert_close(simple, ((cs + 1) / 2) ** 0.5 * ((coarse + 1) / 2) ** 0.5, rtol=1e-13, atol=0)
    assert multiscale_structural_similarity_index_measure(inverted, target, normalize=None, **options).isnan().all()


def test_too_small_images_name_the_minimum_size():
    assert (ssim_min_size(11, "valid", scales=5), ssim_min_size(11, scales=5)) == (176, 96)
    with pytest.raises(ValueError, match=r"at least 176×176 pixels for MS-SSIM with 5 scales"):
        multiscale_structural_similarity_index_measure(
            torch.rand(1, 1, 175, 300), torch.rand(1, 1, 175, 300), data_range=1.0, border="valid"
        )
    multiscale_structural_similarity_index_measure(
        torch.rand(1, 1, 176, 176), torch.rand(1, 1, 176, 176), data_range=1.0, border="valid"
    )
    with pytest.raises(ValueError, match=r"at least 96×96 pixels for MS-SSIM"):
        multiscale_structural_similarity_index_measure(
            torch.rand(1, 1, 95, 96), torch.rand(1, 1, 95, 96), data_range=1.0
        )
    multiscale_structural_similarity_index_measure(torch.rand(1, 1, 96, 96), torch.rand(1, 1, 96, 96), data_range=1.0)
    with pytest.raises(ValueError, match=r"at least 11×11 pixels for SSIM with a window of \[11, 11\] taps"):
        structural_similarity_index_measure(
            torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40), data_range=1.0, border="valid"
        )
    # The mirrored border needs more pixels than half the window (torch's reflect padding).
    with pytest.raises(ValueError, match=r"at least 6×6 pixels"):
        structural_similarity_index_measure(torch.rand(1, 3, 5, 40), torch.rand(1, 3, 5, 40), data_range=1.0)
    small = torch.rand(1, 3, 6, 40)
    structural_similarity_index_measure(small, small, data_range=1.0)
    structural_similarity_index_measure(small[..., :3, :], small[..., :3, :], data_range=1.0, border="symmetric")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_range": None}, ValueError, "pass data_range=1.0 for images in \\[0, 1\\], 255 for uint8"),
        ({"gaussian_kernel": 1.0}, TypeError, "pass the range by keyword, `data_range=1.0`"),
        ({"data_range": 0.0}, ValueError, "`data_range` to be a positive finite number, got 0.0"),
        ({"data_range": "1"}, TypeError, "`data_range` to be a positive number"),
        ({"data_range": (1.0, 0.0)}, ValueError, "finite low < high"),
        ({"data_range": (0.0, 1.0, 2.0)}, TypeError, "a number or a \\(low, high\\) pair"),
        ({"gaussian_kernel": False, "kernel_size": 4}, ValueError, "`kernel_size` to be odd positive numbers"),
        ({"kernel_size": (11, 0)}, ValueError, "`kernel_size` to be odd positive numbers"),
        ({"kernel_size": 3.0}, TypeError, "`kernel_size` to be an int"),
        ({"kernel_size": (11,)}, ValueError, "a sequence of 2 or 3"),
        ({"sigma": (1.5, 1.5, 1.5)}, ValueError, "one entry per spatial axis"),
        ({"sigma": -1.5}, ValueError, "`sigma` to be a positive finite number, got -1.5"),
        ({"k2": float("nan")}, ValueError, "`k2`"),
        ({"border": "mirror"}, ValueError, "`border` to be one of"),
        ({"reduction": "mean"}, ValueError, "`reduction` to be one of \\('elementwise_mean'"),
        ({"return_full_image": True, "return_contrast_sensitivity": True}, ValueError, "at most one of"),
        ({"preds": torch.rand(2, 3, 16, 16) * 255}, ValueError, "data_range=\\(low, high\\) to clamp"),
        ({"preds": torch.randint(0, 9, (2, 3, 16, 16))}, TypeError, "uint8 or floating point"),
        ({"preds": torch.rand(2, 3, 16, 17)}, ValueError, "the same shape"),
        ({"preds": torch.rand(3, 16, 16)}, ValueError, r"\[N, C, H, W\] or \[N, C, D, H, W\]"),
        ({"target": torch.full((2, 3, 16, 16), float("nan"))}, ValueError, "finite"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"preds": torch.rand(2, 3, 16, 16), "target": torch.rand(2, 3, 16, 16), "data_range": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        structural_similarity_index_measure(arguments.pop("preds"), arguments.pop("target"), **arguments)


@pytest.mark.parametrize("betas", [(), (0.5, -0.1), "abc", (0.5, float("inf"))])
def test_bad_betas(betas):
    with pytest.raises((TypeError, ValueError), match="betas"):
        multiscale_structural_similarity_index_measure(
            torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64), data_range=1.0, betas=betas
        )


def test_bad_normalize_and_old_positional_range():
    images = torch.rand(1, 1, 64, 64)
    with pytest.raises(ValueError, match="`normalize` to be one of"):
        multiscale_structural_similarity_index_measure(images, images, data_range=1.0, betas=(0.5, 0.5), normalize="x")
    with pytest.raises(TypeError, match=r"`data_range=1\.0`"):
        multiscale_structural_similarity_index_measure(images, images, 1.0)


# gradcheck's fast mode compares the analytical and the finite-difference derivative along random directions: a
# few dozen forward passes instead of two per input element (minutes here), and a direction that misses a wrong
# partial derivative has probability 0.


def _inside_range(rng, shape, kind):
    """A pair in [0.05, 0.95]: finite-difference steps cannot take it past ``data_range``."""
    preds, target = _pair(rng, shape, kind) if len(shape) == 4 else (rng.random(shape), rng.random(shape))
    return (torch.from_numpy(0.05 + 0.9 * x).requires_grad_() for x in (preds, target))


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((2, 2, 9, 10), {"border": "reflect"}),
        ((2, 2, 9, 10), {"border": "valid"}),
        ((2, 2, 9, 10), {"border": "symmetric"}),
        ((2, 2, 9, 10), {"gaussian_kernel": False, "kernel_size": (3, 5), "reduction": "sum"}),
        ((1, 1, 6, 7, 8), {"sigma": (0.5, 0.7, 1.0)}),
        ((2, 1, 9, 10), {"data_range": (0.1, 0.9), "return_contrast_sensitivity": True}),
    ],
)
def test_ssim_gradients_match_finite_differences(rng, shape, options):
    preds, target = _inside_range(rng, shape, "random")
    options = {"sigma": 1.0, "data_range": 1.0, "reduction": "none", **options}

    def ssim(p, t):
        return structural_similarity_index_measure(p, t, **options)

    assert torch.autograd.gradcheck(ssim, (preds, target), fast_mode=True)


@pytest.mark.parametrize("border", ["reflect", "valid", "symmetric"])
def test_ms_ssim_gradients_match_finite_differences(rng, border):
    preds, target = _inside_range(rng, (1, 2, 20, 22), "structured")

    def ms_ssim(p, t):
        return multiscale_structural_similarity_index_measure(
            p, t, sigma=1.0, data_range=1.0, betas=(0.3, 0.7), border=border, reduction="none"
        )

    assert (ms_ssim(preds, target) > 0).all()  # away from the clamp of negative terms
    assert torch.autograd.gradcheck(ms_ssim, (preds, target), fast_mode=True)


def test_gradients_across_chunks(rng, monkeypatch):
    import lightning_genmetrics.functional.ssim as ssim_module

    monkeypatch.setattr(ssim_module, "_CHUNK_PIXELS", 200)  # one 2×9×10 image per chunk: two chunks
    preds, target = _inside_range(rng, (2, 2, 9, 10), "random")
    assert torch.autograd.gradcheck(
        lambda p, t: structural_similarity_index_measure(p, t, sigma=1.0, data_range=1.0, return_full_image=True),
        (preds, target),
        fast_mode=True,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_value_with_gradients_is_the_value_without(rng, dtype):
    preds, target = (torch.from_numpy(x).to(dtype) for x in _pair(rng, (2, 3, 50, 53), "structured"))
    for function, options in (
        (structural_similarity_index_measure, {}),
        (structural_similarity_index_measure, {"border": "symmetric", "sigma": 1.0}),
        (multiscale_structural_similarity_index_measure, {"betas": (0.2, 0.3, 0.5)}),
    ):
        plain = function(preds, target, data_range=1.0, reduction="none", **options)
        tracked = function(preds.clone().requires_grad_(), target, data_range=1.0, reduction="none", **options)
        assert tracked.requires_grad
        assert not plain.requires_grad
        assert torch.equal(tracked.detach(), plain)


def test_ssim_as_a_loss_moves_the_prediction_toward_the_target(rng):
    preds, target = (torch.from_numpy(x) for x in _pair(rng, (1, 1, 24, 24), "structured"))
    preds = preds.clone().requires_grad_()
    before = structural_similarity_index_measure(preds, target, data_range=1.0)
    (1 - before).backward()
    with torch.no_grad():
        after = structural_similarity_index_measure(preds - 0.1 * preds.grad, target, data_range=1.0)
    assert after > before


def test_ms_ssim_gradient_is_zero_where_a_term_is_clamped(rng):
    target = torch.from_numpy(rng.random((2, 1, 44, 44)))
    inverted = (1 - target).requires_grad_()
    value = multiscale_structural_similarity_index_measure(inverted, target, data_range=1.0, betas=(0.5, 0.5))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(inverted.grad, torch.zeros_like(inverted))
