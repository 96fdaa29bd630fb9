"""PSNR metric: every ``dim``/``reduction`` against numpy over any batching, forward's batch values and their
gradient, exact merges (in update order for ``"none"``), the inf policy, errors that leave the state as it was."""

import numpy as np
import pytest
import torch

from lightning_genmetrics.metrics.psnr import PSNR, PeakSignalNoiseRatio
from tests.contract import MetricContract


def _pairs(rng, n):
    target = rng.random((n, 3, 7, 11))
    preds = np.clip(target + rng.uniform(0.02, 0.2) * rng.standard_normal(target.shape), 0, 1)
    return preds, target


def _numpy_psnr(preds, target, axis=None):
    return 10 * np.log10(1.0 / ((preds - target) ** 2).mean(axis=axis))


@pytest.mark.parametrize(
    ("dim", "reduction"), [(None, "elementwise_mean"), ((1, 2, 3), "elementwise_mean"), (1, "sum"), ((1, 2, 3), None)]
)
def test_batches_match_numpy(rng, dim, reduction):
    preds, target = _pairs(rng, 23)
    metric = PeakSignalNoiseRatio(1.0, 10.0, reduction, dim)
    cuts = np.sort(rng.choice(np.arange(1, 23), size=4, replace=False))
    axis = None if dim is None else ((dim,) if isinstance(dim, int) else dim)
    reduce = {"elementwise_mean": np.mean, "sum": np.sum, None: np.ravel}[reduction]
    for p, t in zip(np.split(preds, cuts), np.split(target, cuts), strict=True):
        batch = metric(torch.from_numpy(p), torch.from_numpy(t))
        expected = _numpy_psnr(p, t) if dim is None else reduce(_numpy_psnr(p, t, axis))
        np.testing.assert_allclose(batch.numpy(), expected, rtol=1e-13)
    expected = _numpy_psnr(preds, target) if dim is None else reduce(_numpy_psnr(preds, target, axis))
    np.testing.assert_allclose(metric.compute().numpy(), expected, rtol=1e-13)


def test_state_is_constant_size_except_for_none(rng):
    preds, target = (torch.from_numpy(a) for a in _pairs(rng, 9))
    pixel, per_image, kept = PSNR(1.0), PSNR(1.0, dim=(1, 2, 3)), PSNR(1.0, reduction="none", dim=(1, 2, 3))
    for metric in (pixel, per_image, kept):
        metric.update(preds, target)
        metric.update(preds[:4], target[:4])
    assert (int(pixel.total), int(per_image.num_slices)) == (13 * 3 * 7 * 11, 13)
    assert all(state.ndim == 0 for state in (*pixel.metric_state.values(), *per_image.metric_state.values()))
    assert kept.compute().shape == (13,)


_BAD = [
    ((torch.rand(2, 3, 7, 12), torch.rand(2, 3, 7, 11)), ValueError, "the same shape"),
    (
        (torch.zeros(2, 3, 7, 11, dtype=torch.complex64), torch.rand(2, 3, 7, 11)),
        TypeError,
        "integer or floating point",
    ),
    ((torch.tensor(float("nan")).expand(2, 3, 7, 11), torch.rand(2, 3, 7, 11)), ValueError, "finite"),
    ((torch.rand(2, 3, 7, 11), torch.rand(2, 3, 7, 11) * 4), ValueError, "span at most data_range=1"),
]


@pytest.mark.parametrize(
    "arguments",
    [(1.0,), (1.0, 10.0, "elementwise_mean", (1, 2, 3)), (1.0, 10.0, "none", (2, 3)), (1.0, 10.0, "none", (1, 2, 3))],
)
def test_metric_contract(rng, arguments):
    preds, target = (torch.from_numpy(a) for a in _pairs(rng, 6))
    contract = MetricContract(lambda: PSNR(*arguments), [(preds[:4], target[:4]), (preds[4:], target[4:])], rtol=1e-14)
    contract.check_batch_split()
    contract.check_merge()  # in update order for "none": torchmetrics' order, the incoming state's values first
    if "none" not in arguments:  # "none" keeps one value per slice, as torchmetrics' does
        contract.check_state_size()
    contract.check_rejected_updates(_BAD)


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_identical_images(rng):
    preds, target = (torch.from_numpy(a) for a in _pairs(rng, 6))
    per_image = PSNR(1.0, dim=(1, 2, 3))
    per_image.update(preds, target)
    per_image.update(target[:1], target[:1])
    assert per_image.compute().item() == float("inf")  # one identical pair: PSNR inf, so the mean is inf
    with pytest.raises(RuntimeError, match="no images yet"):
        PSNR(1.0).compute()


def test_forward_is_differentiable_and_leaves_no_graph_in_the_state(rng):
    preds, target = (torch.from_numpy(a) for a in _pairs(rng, 3))
    for metric in (PSNR(1.0), PSNR(1.0, reduction="none", dim=(1, 2, 3))):
        metric.update(preds, target)
        estimate = preds.clone().requires_grad_()
        loss = -metric(estimate, target).sum()
        loss.backward()
        assert estimate.grad is not None
        assert bool(torch.isfinite(estimate.grad).all())
        assert not any(
            value.requires_grad
            for state in metric.metric_state.values()
            for value in (state if isinstance(state, list) else [state])
        )
    assert PSNR.is_differentiable


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_range": 0}, ValueError, "positive finite"),
        ({"data_range": None}, ValueError, r"Pass data_range=1\.0 for images in \[0, 1\], 255 for uint8"),
        ({"data_range": 1, "average": "image"}, TypeError, r"dim=\(1, 2, 3\) averages per-image PSNRs"),
        ({"data_range": 1, "reduction": "mean"}, ValueError, "`reduction` to be one of"),
        ({"data_range": 1, "dim": "1"}, TypeError, "`dim` to be None"),
    ],
)
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        PeakSignalNoiseRatio(**kwargs)
