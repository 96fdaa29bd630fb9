"""PSNR against numpy (and scikit-image) on fresh random inputs, its inf policy and its input errors."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr

from lightning_genmetrics.functional.psnr import peak_signal_noise_ratio


def _numpy_psnr(preds, target, data_range):
    mse = ((preds.astype(np.float64) - target.astype(np.float64)) ** 2).reshape(len(preds), -1).mean(1)
    return 10 * np.log10(data_range**2 / mse)


@pytest.mark.parametrize("shape", [(4, 3, 17, 9), (1, 1, 5, 5), (3, 2, 8, 31)])
def test_matches_numpy_per_image_and_over_pixels(rng, shape):
    target = rng.random(shape) * 2 - 1
    preds = np.clip(target + rng.uniform(0.01, 0.3) * rng.standard_normal(shape), -1, 1)
    p, t = torch.from_numpy(preds), torch.from_numpy(target)
    per_image = peak_signal_noise_ratio(p, t, 2.0, reduction="none")
    expected = _numpy_psnr(preds, target, 2.0)
    np.testing.assert_allclose(per_image.numpy(), expected, rtol=1e-13)
    np.testing.assert_allclose(
        per_image.numpy(), [skimage_psnr(t, p, data_range=2.0) for p, t in zip(preds, target, strict=True)]
    )
    assert peak_signal_noise_ratio(p, t, 2.0).item() == pytest.approx(expected.mean(), rel=1e-13)
    over_pixels = 10 * np.log10(4.0 / ((preds - target) ** 2).mean())
    assert peak_signal_noise_ratio(p, t, 2.0, average="pixel").item() == pytest.approx(over_pixels, rel=1e-13)


def test_uint8_and_float32(rng):
    target = rng.integers(0, 256, (3, 3, 12, 12), dtype=np.uint8)
    preds = rng.integers(0, 256, (3, 3, 12, 12), dtype=np.uint8)
    ours = peak_signal_noise_ratio(torch.from_numpy(preds), torch.from_numpy(target), 255, reduction="none")
    np.testing.assert_allclose(ours.numpy(), _numpy_psnr(preds, target, 255), rtol=1e-13)
    ours32 = peak_signal_noise_ratio(
        torch.from_numpy(preds.astype(np.float32) / 255), torch.from_numpy(target.astype(np.float32) / 255), 1.0
    )
    expected = _numpy_psnr(preds.astype(np.float32) / 255, target.astype(np.float32) / 255, 1.0).mean()
    assert ours32.item() == pytest.approx(expected, rel=1e-12)


def test_identical_images_give_inf_and_symmetry(rng):
    target = torch.from_numpy(rng.random((3, 1, 6, 6)))
    preds = target.clone()
    preds[0] += 0.01
    per_image = peak_signal_noise_ratio(preds, target, 1.0, reduction="none")
    assert torch.isfinite(per_image[0])
    assert torch.isinf(per_image[1:]).all()
    assert (per_image[1:] > 0).all()
    assert peak_signal_noise_ratio(preds, target, 1.0).item() == float("inf")
    assert peak_signal_noise_ratio(target, target, 1.0, average="pixel").item() == float("inf")
    assert torch.equal(per_image, peak_signal_noise_ratio(target, preds, 1.0, reduction="none"))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_range": -1.0}, ValueError, "`data_range` to be a positive finite number, got -1.0"),
        ({"data_range": True}, TypeError, "`data_range` to be a positive number"),
        ({"average": "images"}, ValueError, "`average` to be one of"),
        ({"average": "pixel", "reduction": "none"}, ValueError, "reduction='none'"),
        ({"preds": torch.rand(2, 3, 4, 4) * 2}, ValueError, r"span at most data_range=1, got values in \[0"),
        (
            {"preds": torch.rand(2, 3, 4, 4).to(torch.int32)},
            TypeError,
            "uint8 or floating point, got dtype torch.int32",
        ),
        ({"preds": torch.rand(2, 3, 4, 5)}, ValueError, r"the same shape, got \(2, 3, 4, 5\) and \(2, 3, 4, 4\)"),
        ({"preds": torch.rand(2, 0, 4, 4), "target": torch.rand(2, 0, 4, 4)}, ValueError, "C, H, W > 0"),
        ({"target": torch.tensor(float("inf")).expand(2, 3, 4, 4)}, ValueError, "`target` to be finite"),
        ({"preds": np.zeros((2, 3, 4, 4))}, TypeError, "`preds` to be a torch.Tensor"),
        ({"preds": torch.rand(0, 3, 4, 4), "target": torch.rand(0, 3, 4, 4)}, ValueError, "empty batch"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"preds": torch.rand(2, 3, 4, 4), "target": torch.rand(2, 3, 4, 4), "data_range": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        peak_signal_noise_ratio(
            arguments.pop("preds"), arguments.pop("target"), arguments.pop("data_range"), **arguments
        )
