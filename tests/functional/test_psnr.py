"""PSNR against numpy (and scikit-image) on fresh random inputs: over all values, per slice of any ``dim``,
``base``, ``reduction``, ``data_range=(min, max)``; its inf policy, its gradient and its input errors."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr

from lightning_genmetrics.functional.psnr import peak_signal_noise_ratio


def _numpy_psnr(preds, target, data_range, axis=None, base=10.0):
    mse = ((preds.astype(np.float64) - target.astype(np.float64)) ** 2).mean(axis=axis)
    return 10 * np.log(data_range**2 / mse) / np.log(base)


@pytest.mark.parametrize("shape", [(4, 3, 17, 9), (1, 1, 5, 5), (3, 2, 8, 31)])
def test_matches_numpy_over_all_values_and_per_image(rng, shape):
    target = rng.random(shape) * 2 - 1
    preds = np.clip(target + rng.uniform(0.01, 0.3) * rng.standard_normal(shape), -1, 1)
    p, t = torch.from_numpy(preds), torch.from_numpy(target)
    assert peak_signal_noise_ratio(p, t, 2.0).item() == pytest.approx(_numpy_psnr(preds, target, 2.0), rel=1e-13)
    per_image = peak_signal_noise_ratio(p, t, 2.0, reduction="none", dim=(1, 2, 3))
    expected = _numpy_psnr(preds, target, 2.0, axis=(1, 2, 3))
    np.testing.assert_allclose(per_image.numpy(), expected, rtol=1e-13)
    np.testing.assert_allclose(
        per_image.numpy(), [skimage_psnr(t, p, data_range=2.0) for p, t in zip(preds, target, strict=True)]
    )
    mean = peak_signal_noise_ratio(p, t, 2.0, dim=(1, 2, 3)).item()
    assert mean == pytest.approx(expected.mean(), rel=1e-13)
    assert peak_signal_noise_ratio(p, t, 2.0, 10.0, "sum", (-3, -2, -1)).item() == pytest.approx(expected.sum())


@pytest.mark.parametrize(("shape", "dim"), [((5,), 0), ((6, 7), 1), ((2, 3, 4, 5, 6), (1, 3)), ((3, 4), ())])
def test_any_rank_any_dim_and_base(rng, shape, dim):
    target = rng.random(shape)
    preds = np.clip(target + 0.1 * rng.standard_normal(shape), 0, 1)
    base = float(rng.uniform(1.5, 20))
    ours = peak_signal_noise_ratio(torch.from_numpy(preds), torch.from_numpy(target), 1.0, base, "none", dim)
    axis = dim if dim != () else None
    np.testing.assert_allclose(ours.numpy(), _numpy_psnr(preds, target, 1.0, axis=axis, base=base), rtol=1e-12)
    assert peak_signal_noise_ratio(
        torch.from_numpy(preds), torch.from_numpy(target), 1.0, base=base
    ).item() == pytest.approx(_numpy_psnr(preds, target, 1.0, base=base), rel=1e-12)


def test_data_range_pair_clamps_and_uint8(rng):
    target = rng.random((3, 3, 12, 12)) * 1.4 - 0.2
    preds = rng.random((3, 3, 12, 12)) * 1.4 - 0.2
    ours = peak_signal_noise_ratio(torch.from_numpy(preds), torch.from_numpy(target), (0, 1))
    expected = _numpy_psnr(np.clip(preds, 0, 1), np.clip(target, 0, 1), 1.0)
    assert ours.item() == pytest.approx(expected, rel=1e-13)
    target8 = rng.integers(0, 256, (3, 3, 12, 12), dtype=np.uint8)
    preds8 = rng.integers(0, 256, (3, 3, 12, 12), dtype=np.uint8)
    ours8 = peak_signal_noise_ratio(torch.from_numpy(preds8), torch.from_numpy(target8), 255)
    assert ours8.item() == pytest.approx(_numpy_psnr(preds8, target8, 255), rel=1e-13)
    as_int = peak_signal_noise_ratio(torch.from_numpy(preds8).int(), torch.from_numpy(target8).int(), 255.0)
    assert as_int.item() == ours8.item()


def test_identical_images_give_inf_and_symmetry(rng):
    # In [0, 0.98], so that preds (first image + 0.01) also spans at most data_range=1 as the target of the swap.
    target = torch.from_numpy(rng.random((3, 1, 6, 6)) * 0.98)
    preds = target.clone()
    preds[0] += 0.01
    per_image = peak_signal_noise_ratio(preds, target, 1.0, reduction="none", dim=(1, 2, 3))
    assert torch.isfinite(per_image[0])
    assert torch.isinf(per_image[1:]).all()
    assert (per_image[1:] > 0).all()
    assert peak_signal_noise_ratio(preds, target, 1.0, dim=(1, 2, 3)).item() == float("inf")
    assert peak_signal_noise_ratio(target, target, 1.0).item() == float("inf")
    assert torch.equal(per_image, peak_signal_noise_ratio(target, preds, 1.0, reduction="none", dim=(1, 2, 3)))


def test_gradcheck_and_gradient_of_the_mse(rng):
    preds = torch.from_numpy(rng.random((2, 2, 3, 3))).requires_grad_()
    target = torch.from_numpy(rng.random((2, 2, 3, 3)))
    for dim in (None, (1, 2, 3)):
        assert torch.autograd.gradcheck(lambda p, d=dim: peak_signal_noise_ratio(p, target, 1.0, dim=d), (preds,))
    assert torch.autograd.gradcheck(lambda p: peak_signal_noise_ratio(p, target, (0.1, 0.9), base=2.0), (preds,))
    # d/dp 10·log10(R²/MSE) = -10 / (ln 10 · MSE) · 2 (p - t) / n
    value = peak_signal_noise_ratio(preds, target, 1.0)
    (gradient,) = torch.autograd.grad(value, preds)
    mse = (preds - target).square().mean()
    expected = -10 / (math.log(10) * mse) * 2 * (preds - target) / preds.numel()
    torch.testing.assert_close(gradient, expected.detach(), rtol=1e-12, atol=0)


def test_reduction_without_dim_warns_and_changes_nothing(rng):
    preds, target = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    with pytest.warns(UserWarning, match="`reduction=sum` will not have any effect when `dim` is None"):
        summed = peak_signal_noise_ratio(preds, target, 1.0, reduction="sum")
    assert summed.item() == peak_signal_noise_ratio(preds, target, 1.0).item()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_range": None}, ValueError, r"data_range=1\.0 for images in \[0, 1\], 255 for uint8"),
        ({"data_range": -1.0}, ValueError, "`data_range` to be a positive finite number, got -1.0"),
        ({"data_range": True}, TypeError, "`data_range` to be a positive number"),
        ({"data_range": (1.0, 0.0)}, ValueError, "min < max"),
        ({"data_range": (0.0, 1.0, 2.0)}, ValueError, r"\(min, max\)"),
        ({"base": 1.0}, ValueError, "`base` to be a positive number other than 1"),
        ({"base": -2.0}, ValueError, "`base` to be a positive finite number"),
        ({"reduction": "mean"}, ValueError, "`reduction` to be one of"),
        ({"dim": 1.5}, TypeError, "`dim` to be None, an int or a tuple of ints"),
        ({"dim": 4}, ValueError, "`dim` to name dimensions of the 4-dimensional inputs, got 4"),
        ({"dim": (1, -3)}, ValueError, "each dimension once"),
        ({"target": torch.rand(2, 3, 4, 4) * 2}, ValueError, r"`target` to span at most data_range=1, got values in"),
        ({"preds": torch.rand(2, 3, 4, 4) > 0.5}, TypeError, "integer or floating point dtype, got torch.bool"),
        ({"preds": torch.rand(2, 3, 4, 5)}, ValueError, r"the same shape, got \(2, 3, 4, 5\) and \(2, 3, 4, 4\)"),
        ({"target": torch.tensor(float("inf")).expand(2, 3, 4, 4)}, ValueError, "`target` to be finite"),
        ({"preds": np.zeros((2, 3, 4, 4))}, TypeError, "`preds` to be a torch.Tensor"),
        ({"preds": torch.rand(0, 3, 4, 4), "target": torch.rand(0, 3, 4, 4)}, ValueError, "values to compare"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"preds": torch.rand(2, 3, 4, 4), "target": torch.rand(2, 3, 4, 4), "data_range": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        peak_signal_noise_ratio(
            arguments.pop("preds"), arguments.pop("target"), arguments.pop("data_range"), **arguments
        )


def test_predictions_may_overshoot_the_range(rng):
    """A model's raw output (a loss) may leave the range; only the reference images declare it."""
    target = torch.from_numpy(rng.random((2, 3, 4, 4)))
    preds = target * 1.5 - 0.25
    expected = _numpy_psnr(preds.numpy(), target.numpy(), 1.0)
    assert peak_signal_noise_ratio(preds, target, 1.0).item() == pytest.approx(expected, rel=1e-13)
