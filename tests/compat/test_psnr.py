"""PSNR as torchmetrics 1.9 computes it.

- torchmetrics' own test cases (its inputs, its scikit-image reference with ``dim``, ``base`` and
  ``reduction``, its tolerance or tighter), class batch by batch and functional;
- live comparisons with torchmetrics on fresh random inputs: class and functional, positional and keyword
  arguments, ``forward`` batch by batch, batch-split ``compute``;
- gradients: ``gradcheck`` in float64 and equal to torchmetrics' gradients;
- the refusals, each naming what to write instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_peak_signal_noise_ratio
from torchmetrics.image import PeakSignalNoiseRatio as TMPeakSignalNoiseRatio

from lightning_genmetrics import PSNR, PeakSignalNoiseRatio
from lightning_genmetrics.functional import peak_signal_noise_ratio

# torchmetrics' tests: NUM_BATCHES = 4 batches of BATCH_SIZE = 32 images of 32 × 32, integer levels as floats.
NUM_BATCHES, BATCH_SIZE = 4, 32
_LEVELS = [(10, 10), (5, 10), (10, 5)]
_CASES = [
    (0, 10, "elementwise_mean", None),
    (1, 10, "elementwise_mean", None),
    (2, 5, "elementwise_mean", None),
    (2, 5, "elementwise_mean", 1),
    (2, 5, "elementwise_mean", (1, 2)),
    (2, 5, "sum", (1, 2)),
    (0, (0.0, 1.0), "elementwise_mean", None),
]
_TOLERANCE = {"rtol": 1e-12, "atol": 1e-12}  # torchmetrics asserts rtol 1e-5: float64 here allows tighter


def _torchmetrics_inputs(rng: np.random.Generator, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    n_pred, n_target = _LEVELS[levels]
    shape = (NUM_BATCHES, BATCH_SIZE, 32, 32)
    preds = torch.from_numpy(rng.integers(0, n_pred, shape)).float()
    target = torch.from_numpy(rng.integers(0, n_target, shape)).float()
    return preds, target


def _skimage_reference(preds, target, data_range, reduction, dim, base=10.0):
    """torchmetrics' reference: scikit-image's PSNR over everything (``dim=None``) or on every slice over ``dim``
    of every batch ``[B, ...]`` of ``preds``/``target`` (``[num_batches, B, ...]``), then reduced."""
    if isinstance(data_range, tuple):
        preds, target = preds.clamp(*data_range), target.clamp(*data_range)
        data_range = data_range[1] - data_range[0]
    preds, target = preds.numpy().astype(np.float64), target.numpy().astype(np.float64)
    if dim is None:
        pairs = [(preds, target)]
    else:
        dims = (dim,) if isinstance(dim, int) else dim
        pairs = []
        for p, t in zip(preds, target, strict=True):
            moved = [np.moveaxis(x, dims, range(-len(dims), 0)) for x in (p, t)]
            slice_shape = moved[0].shape[-len(dims) :]
            pairs.extend(zip(*(x.reshape(-1, *slice_shape) for x in moved), strict=True))
    values = np.array([skimage_psnr(t, p, data_range=data_range) for p, t in pairs]) * math.log(10) / math.log(base)
    return {"elementwise_mean": np.mean, "sum": np.sum, "none": np.asarray}[reduction](values)


@pytest.mark.parametrize(("levels", "data_range", "reduction", "dim"), _CASES)
@pytest.mark.parametrize("base", [10.0, math.e])
def test_torchmetrics_cases_class_batch_by_batch(rng, levels, data_range, reduction, dim, base):
    preds, target = _torchmetrics_inputs(rng, levels)
    metric = PeakSignalNoiseRatio(data_range=data_range, base=base, reduction=reduction, dim=dim)
    for i in range(NUM_BATCHES):
        batch = metric(preds[i], target[i])
        expected = _skimage_reference(preds[i : i + 1], target[i : i + 1], data_range, reduction, dim, base)
        np.testing.assert_allclose(batch.numpy(), expected, **_TOLERANCE)
    np.testing.assert_allclose(
        metric.compute().numpy(), _skimage_reference(preds, target, data_range, reduction, dim, base), **_TOLERANCE
    )


@pytest.mark.parametrize(("levels", "data_range", "reduction", "dim"), _CASES)
@pytest.mark.parametrize("base", [10.0, math.e])
def test_torchmetrics_cases_functional(rng, levels, data_range, reduction, dim, base):
    preds, target = _torchmetrics_inputs(rng, levels)
    for i in range(NUM_BATCHES):
        ours = peak_signal_noise_ratio(
            preds[i], target[i], data_range=data_range, base=base, reduction=reduction, dim=dim
        )
        expected = _skimage_reference(preds[i : i + 1], target[i : i + 1], data_range, reduction, dim, base)
        np.testing.assert_allclose(ours.numpy(), expected, **_TOLERANCE)


def test_torchmetrics_case_uint8_is_read_as_float(rng):
    preds = torch.from_numpy(rng.integers(0, 255, (BATCH_SIZE, 32, 32), dtype=np.uint8))
    target = torch.from_numpy(rng.integers(0, 255, (BATCH_SIZE, 32, 32), dtype=np.uint8))
    ours = peak_signal_noise_ratio(preds, target, data_range=255.0)
    assert ours.item() == peak_signal_noise_ratio(preds.float(), target.float(), data_range=255.0).item()
    assert ours.item() == pytest.approx(tm_peak_signal_noise_ratio(preds, target, data_range=255.0).item(), rel=1e-6)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_torchmetrics_case_reduction_without_dim_warns(reduction):
    match = f"The `reduction={reduction}` will not have any effect when `dim` is None."
    with pytest.warns(UserWarning, match=match):
        PeakSignalNoiseRatio(data_range=10.0, reduction=reduction, dim=None)
    with pytest.warns(UserWarning, match=match):
        peak_signal_noise_ratio(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), data_range=10.0, reduction=reduction)


# Live comparisons: (positional arguments, keyword arguments), each as torchmetrics takes them.
_CALLS = [
    ((1.0,), {}),
    ((), {"data_range": 1.0}),
    ((1.0, 2.0), {}),
    ((1.0, 10.0, "elementwise_mean", (1, 2, 3)), {}),
    ((1.0,), {"dim": (1, 2, 3)}),
    ((1.0, 10.0, "sum", (2, 3)), {}),
    ((1.0,), {"reduction": "none", "dim": (1, 2, 3)}),
    ((1.0,), {"reduction": None, "dim": 1}),
    (((0.1, 0.9),), {}),
    ((), {"data_range": (0.2, 0.7), "base": math.e, "dim": (1, 2, 3)}),
    ((2.0, 10.0, "elementwise_mean", -1), {}),
]


def _noisy_pairs(rng, shape, dtype=torch.float32):
    target = rng.random(shape)
    preds = np.clip(target + rng.uniform(0.02, 0.3) * rng.standard_normal(shape), 0, 1)
    return torch.as_tensor(preds, dtype=dtype), torch.as_tensor(target, dtype=dtype)


@pytest.mark.filterwarnings("ignore:The `reduction=")
@pytest.mark.parametrize(("args", "kwargs"), _CALLS)
def test_live_against_torchmetrics_class_forward_and_functional(rng, args, kwargs):
    preds, target = _noisy_pairs(rng, (int(rng.integers(5, 12)), 3, 13, 17), torch.float64)
    ours, theirs = PeakSignalNoiseRatio(*args, **kwargs), TMPeakSignalNoiseRatio(*args, **kwargs)
    cuts = sorted(rng.choice(np.arange(1, preds.shape[0]), size=2, replace=False).tolist())
    for p, t in zip(preds.tensor_split(cuts), target.tensor_split(cuts), strict=True):
        # torchmetrics keeps the width in float32 (its `data_range` state): float32 rounding of log(R).
        torch.testing.assert_close(ours(p, t), theirs(p, t).double(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(
            peak_signal_noise_ratio(p, t, *args, **kwargs),
            tm_peak_signal_noise_ratio(p, t, *args, **kwargs).double(),
            rtol=1e-6,
            atol=1e-6,
        )
    torch.testing.assert_close(ours.compute(), theirs.compute().double(), rtol=1e-6, atol=1e-6)


def test_live_float32_default_call_and_the_former_per_image_default(rng):
    preds, target = _noisy_pairs(rng, (16, 3, 32, 32))
    ours = PSNR(data_range=1.0)
    theirs = TMPeakSignalNoiseRatio(data_range=1.0)
    for p, t in zip(preds.split(5), target.split(5), strict=True):
        torch.testing.assert_close(ours(p, t).float(), theirs(p, t), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.compute().float(), theirs.compute(), rtol=1e-5, atol=1e-5)
    # The former default here, the mean of per-image PSNRs, is torchmetrics' dim=(1, 2, 3).
    per_image = PSNR(1.0, dim=(1, 2, 3))(preds, target)
    torch.testing.assert_close(
        per_image.float(), TMPeakSignalNoiseRatio(1.0, dim=(1, 2, 3))(preds, target), rtol=1e-5, atol=1e-5
    )


def test_any_rank(rng):
    for shape, dim in (((40,), None), ((6, 9), 0), ((2, 3, 4, 5, 6), (2, 4)), ((), None)):
        preds, target = _noisy_pairs(rng, shape, torch.float64)
        expected = tm_peak_signal_noise_ratio(preds, target, 1.0, dim=dim).double()
        torch.testing.assert_close(peak_signal_noise_ratio(preds, target, 1.0, dim=dim), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "arguments",
    [(1.0, 10.0, "elementwise_mean", None), (1.0, 2.0, "sum", (1, 2, 3)), ((0.1, 0.9), 10.0, "none", (1, 2))],
)
def test_gradients_gradcheck_and_against_torchmetrics(rng, arguments):
    preds, target = _noisy_pairs(rng, (2, 2, 4, 5), torch.float64)
    preds.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: peak_signal_noise_ratio(p, target, *arguments), (preds,))
    for ours_value, their_value in (
        (peak_signal_noise_ratio(preds, target, *arguments), tm_peak_signal_noise_ratio(preds, target, *arguments)),
        (PSNR(*arguments)(preds, target), TMPeakSignalNoiseRatio(*arguments)(preds, target)),
    ):
        (ours,) = torch.autograd.grad(ours_value.sum(), preds)
        (theirs,) = torch.autograd.grad(their_value.sum(), preds)
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)


def test_refusals_name_the_replacement():
    preds, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    replacement = r"Pass data_range=1\.0 for images in \[0, 1\], 255 for uint8, or data_range=\(min, max\)"
    with pytest.raises(ValueError, match=replacement):
        PeakSignalNoiseRatio(data_range=None)
    with pytest.raises(ValueError, match=replacement):
        peak_signal_noise_ratio(preds, target, None)
    with pytest.raises(TypeError, match=r"dim=\(1, 2, 3\) averages per-image PSNRs"):
        PeakSignalNoiseRatio(1.0, average="image")
    with pytest.raises(ValueError, match=r"data_range=\(min, max\) to clamp them into it"):
        PSNR(1.0).update(preds, target * 255)
