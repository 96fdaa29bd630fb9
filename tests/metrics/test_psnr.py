"""PSNR metric: both averages against numpy over any batching, exact merges, the inf policy, errors."""

import numpy as np
import pytest
import torch

from lightning_genmetrics.metrics.psnr import PSNR, PeakSignalNoiseRatio


def _pairs(rng, n):
    target = rng.random((n, 3, 7, 11))
    preds = np.clip(target + rng.uniform(0.02, 0.2) * rng.standard_normal(target.shape), 0, 1)
    return preds, target


@pytest.mark.parametrize("average", ["image", "pixel"])
def test_batches_match_numpy(rng, average):
    preds, target = _pairs(rng, 23)
    metric = PeakSignalNoiseRatio(data_range=1.0, average=average)
    cuts = np.sort(rng.choice(np.arange(1, 23), size=4, replace=False))
    returned = torch.cat(
        [
            metric(torch.from_numpy(p), torch.from_numpy(t))
            for p, t in zip(np.split(preds, cuts), np.split(target, cuts), strict=True)
        ]
    )
    mse = ((preds - target) ** 2).reshape(23, -1).mean(1)
    per_image = 10 * np.log10(1.0 / mse)
    np.testing.assert_allclose(returned.numpy(), per_image, rtol=1e-13)
    expected = per_image.mean() if average == "image" else 10 * np.log10(1.0 / ((preds - target) ** 2).mean())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-13)
    assert int(metric.num_images) == 23
    assert int(metric.num_values) == preds.size


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_merge_state_and_identical_images(rng):
    preds, target = (torch.from_numpy(a) for a in _pairs(rng, 6))
    whole, left, right = PSNR(1.0), PSNR(1.0), PSNR(1.0)
    whole.update(preds, target)
    left.update(preds[:4], target[:4])
    right.update(preds[4:], target[4:])
    left.merge_state(right)
    torch.testing.assert_close(left.compute(), whole.compute(), rtol=1e-14, atol=0)
    left.update(target[:1], target[:1])
    assert left.compute().item() == float("inf")  # one identical pair: PSNR inf, so the mean is inf
    with pytest.raises(RuntimeError, match="no images yet"):
        PSNR(1.0).compute()


@pytest.mark.parametrize(
    ("preds", "error", "match"),
    [
        (torch.rand(2, 3, 7, 11) * 4, ValueError, "span at most data_range=1"),
        (torch.rand(2, 3, 7, 12), ValueError, "the same shape"),
        (torch.zeros(2, 3, 7, 11, dtype=torch.int64), TypeError, "uint8 or floating point"),
        (torch.tensor(float("nan")).expand(2, 3, 7, 11), ValueError, "finite"),
    ],
)
def test_bad_update_leaves_state_untouched(rng, preds, error, match):
    metric = PeakSignalNoiseRatio(data_range=1.0)
    metric.update(*(torch.from_numpy(a) for a in _pairs(rng, 2)))
    before, count = {k: v.clone() for k, v in metric.metric_state.items()}, metric.update_count
    with pytest.raises(error, match=match):
        metric.update(preds, torch.rand(2, 3, 7, 11))
    assert all(torch.equal(v, metric.metric_state[k]) for k, v in before.items())
    assert metric.update_count == count


@pytest.mark.parametrize(
    ("kwargs", "error"), [({"data_range": 0}, ValueError), ({"data_range": 1, "average": "x"}, ValueError)]
)
def test_bad_construction(kwargs, error):
    with pytest.raises(error):
        PeakSignalNoiseRatio(**kwargs)
