"""SSIM and MS-SSIM metrics: streaming equals the one-shot value, states merge exactly, bad input changes nothing."""

import numpy as np
import pytest
import torch

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


def _state(metric):
    return {name: value.clone() for name, value in metric.metric_state.items()}


def _pairs(rng, n, shape=(3, 36, 41)):
    target = rng.random((n, *shape))
    preds = np.clip(target + rng.uniform(0.05, 0.3) * rng.standard_normal(target.shape), 0, 1)
    return torch.from_numpy(preds), torch.from_numpy(target)


def _feed(metric, preds, target, rng):
    cuts = np.sort(rng.choice(np.arange(1, len(preds)), size=3, replace=False))
    returned = [metric(p, t) for p, t in zip(np.split(preds, cuts), np.split(target, cuts), strict=True)]
    return torch.cat(returned)


CASES = [
    (lambda: StructuralSimilarityIndexMeasure(data_range=1.0), structural_similarity_index_measure, {}),
    (
        lambda: StructuralSimilarityIndexMeasure(1.0, 7, 1.0, border="symmetric"),
        structural_similarity_index_measure,
        {"kernel_size": 7, "sigma": 1.0, "border": "symmetric"},
    ),
    (
        lambda: MultiScaleStructuralSimilarityIndexMeasure(1.0, betas=(0.2, 0.3, 0.5)),
        multiscale_structural_similarity_index_measure,
        {"betas": (0.2, 0.3, 0.5)},
    ),
]


@pytest.mark.parametrize(("make", "functional", "options"), CASES)
def test_batches_give_the_one_shot_value(rng, make, functional, options):
    preds, target = _pairs(rng, 13, (3, 44, 47))
    metric = make()
    per_image = _feed(metric, preds, target, rng)
    expected = functional(preds, target, 1.0, reduction="none", **options)
    torch.testing.assert_close(per_image, expected, rtol=0, atol=1e-15)
    value = metric.compute()
    assert value.dtype == torch.float64
    assert int(metric.num_images) == 13
    torch.testing.assert_close(value, expected.mean(), rtol=1e-13, atol=0)


def test_merge_state_equals_one_stream(rng):
    preds, target = _pairs(rng, 9)
    whole, left, right = SSIM(1.0), SSIM(1.0), SSIM(1.0)
    whole.update(preds, target)
    left.update(preds[:2], target[:2])
    right.update(preds[2:], target[2:])
    left.merge_state(right)
    torch.testing.assert_close(left.compute(), whole.compute(), rtol=1e-14, atol=0)
    assert int(left.num_images) == 9


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_aliases_reset_and_empty_compute(rng):
    assert SSIM is StructuralSimilarityIndexMeasure
    assert MS_SSIM is MultiScaleStructuralSimilarityIndexMeasure
    metric = SSIM(1.0)
    with pytest.raises(RuntimeError, match="no images yet"):
        metric.compute()
    metric.update(*_pairs(rng, 2))
    metric.reset()
    assert int(metric.num_images) == 0
    assert metric.similarity_sum.item() == 0.0
    assert metric.higher_is_better is True


@pytest.mark.parametrize(
    ("preds", "target", "error", "match"),
    [
        (torch.rand(2, 3, 20, 20) * 3, torch.rand(2, 3, 20, 20), ValueError, "span at most data_range=1"),
        (torch.rand(2, 3, 20, 20), torch.rand(2, 3, 20, 21), ValueError, "the same shape"),
        (torch.rand(2, 3, 9, 20), torch.rand(2, 3, 9, 20), ValueError, "at least 11×11 pixels"),
        (torch.ones(2, 3, 20, 20, dtype=torch.int16), torch.ones(2, 3, 20, 20), TypeError, "uint8 or floating"),
        (torch.full((2, 3, 20, 20), float("nan")), torch.rand(2, 3, 20, 20), ValueError, "`preds` to be finite"),
        (torch.rand(3, 20, 20), torch.rand(3, 20, 20), ValueError, r"\[N, C, H, W\]"),
        ([[0.0]], torch.rand(2, 3, 20, 20), TypeError, "`preds` to be a torch.Tensor"),
    ],
)
def test_bad_update_leaves_state_untouched(rng, preds, target, error, match):
    metric = StructuralSimilarityIndexMeasure(data_range=1.0)
    metric.update(*_pairs(rng, 3, (3, 20, 20)))
    before, count = _state(metric), metric.update_count
    with pytest.raises(error, match=match):
        metric.update(preds, target)
    after = metric.metric_state
    assert all(torch.equal(value, after[name]) for name, value in before.items())
    assert metric.update_count == count


def test_ms_ssim_too_small_leaves_state_untouched(rng):
    metric = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0)
    metric.update(*_pairs(rng, 1, (1, 176, 180)))
    before = _state(metric)
    with pytest.raises(ValueError, match=r"at least 176×176 pixels"):
        metric.update(*_pairs(rng, 2, (1, 100, 200)))
    assert all(torch.equal(value, metric.metric_state[name]) for name, value in before.items())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_range": None}, TypeError, "data_range"),
        ({"data_range": 1.0, "kernel_size": 0}, ValueError, "odd positive number, got 0"),
        ({"data_range": 1.0, "sigma": 0}, ValueError, "`sigma`"),
        ({"data_range": 1.0, "k1": -0.01}, ValueError, "`k1`"),
        ({"data_range": 1.0, "border": "same"}, ValueError, "`border`"),
    ],
)
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        StructuralSimilarityIndexMeasure(**kwargs)
    with pytest.raises(error, match=match):
        MultiScaleStructuralSimilarityIndexMeasure(**kwargs)


def test_ms_ssim_bad_betas():
    with pytest.raises(ValueError, match="betas"):
        MultiScaleStructuralSimilarityIndexMeasure(1.0, betas=())


@pytest.mark.parametrize(("make", "functional", "options"), CASES)
def test_inputs_that_require_grad_give_the_same_value_and_a_detached_state(rng, make, functional, options):
    preds, target = _pairs(rng, 3, (3, 44, 47))
    plain, tracked = make(), make()
    plain.update(preds, target)
    per_image = tracked(preds.clone().requires_grad_(), target.clone().requires_grad_())
    assert not per_image.requires_grad
    assert not any(value.requires_grad for value in tracked.metric_state.values())
    assert torch.equal(tracked.compute(), plain.compute())
