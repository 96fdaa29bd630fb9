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
from tests.contract import MetricContract, unchanged_state


def _pairs(rng, n, shape=(3, 36, 41)):
    target = rng.random((n, *shape))
    preds = np.clip(target + rng.uniform(0.05, 0.3) * rng.standard_normal(target.shape), 0, 1)
    return torch.from_numpy(preds), torch.from_numpy(target)


def _squeezed(value):
    """What torchmetrics' ``compute`` returns for ``value``: a one-element tensor becomes a scalar."""
    return value.squeeze() if value.numel() == 1 else value


def _split(rng, preds, target):
    cuts = np.sort(rng.choice(np.arange(1, len(preds)), size=3, replace=False))
    return list(zip(np.split(preds, cuts), np.split(target, cuts), strict=True))


CASES = [
    (lambda **kw: StructuralSimilarityIndexMeasure(data_range=1.0, **kw), structural_similarity_index_measure, {}),
    (
        lambda **kw: StructuralSimilarityIndexMeasure(True, 1.0, 11, data_range=1.0, border="symmetric", **kw),
        structural_similarity_index_measure,
        {"sigma": 1.0, "border": "symmetric"},
    ),
    (
        lambda **kw: StructuralSimilarityIndexMeasure(False, 1.5, (5, 7), data_range=(0.0, 1.0), **kw),
        structural_similarity_index_measure,
        {"gaussian_kernel": False, "kernel_size": (5, 7), "data_range": (0.0, 1.0)},
    ),
    (
        lambda **kw: MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, betas=(0.2, 0.3, 0.5), **kw),
        multiscale_structural_similarity_index_measure,
        {"betas": (0.2, 0.3, 0.5)},
    ),
]


def _call(functional, preds, target, options, **extra):
    return functional(preds, target, **{"data_range": 1.0, **options, **extra})


@pytest.mark.parametrize(("make", "functional", "options"), CASES)
def test_batches_give_the_one_shot_value(rng, make, functional, options):
    preds, target = _pairs(rng, 13, (3, 44, 47))
    mean, total, each = make(), make(reduction="sum"), make(reduction="none")
    for p, t in _split(rng, preds, target):
        expected = _call(functional, p, t, options)
        # forward returns the batch's own value, as torchmetrics' does.
        torch.testing.assert_close(mean(p, t), expected, rtol=1e-14, atol=0)
        torch.testing.assert_close(total(p, t), _call(functional, p, t, options, reduction="sum"), rtol=1e-14, atol=0)
        expected = _squeezed(_call(functional, p, t, options, reduction="none"))
        torch.testing.assert_close(each(p, t), expected, rtol=1e-14, atol=0)
    per_image = _call(functional, preds, target, options, reduction="none")
    # BLAS may round the last bit differently for another number of images in a product.
    torch.testing.assert_close(each.compute(), per_image, rtol=1e-14, atol=0)
    value = mean.compute()
    assert value.dtype == torch.float64
    assert int(mean.num_images) == 13
    torch.testing.assert_close(value, per_image.mean(), rtol=1e-13, atol=0)
    torch.testing.assert_close(total.compute(), per_image.sum(), rtol=1e-13, atol=0)


@pytest.mark.parametrize("option", ["return_full_image", "return_contrast_sensitivity"])
def test_per_image_outputs_are_kept_in_order(rng, option):
    preds, target = _pairs(rng, 7, (2, 20, 22))
    metric = SSIM(data_range=1.0, reduction="none", **{option: True})
    batches = _split(rng, preds, target)
    for p, t in batches:
        value, image = metric(p, t)
        expected = structural_similarity_index_measure(p, t, data_range=1.0, reduction="none", **{option: True})
        assert torch.equal(value, _squeezed(expected[0]))
        assert torch.equal(image, _squeezed(expected[1]))
    value, image = metric.compute()
    expected = structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none", **{option: True})
    torch.testing.assert_close(value, expected[0], rtol=1e-14, atol=0)
    torch.testing.assert_close(image, expected[1], rtol=1e-14, atol=1e-15)


# Refused by every configuration; the default SSIM (the first case) also refuses _BAD_FOR_THE_DEFAULT.
_BAD = [
    ((torch.rand(2, 3, 44, 47), torch.rand(2, 3, 44, 46)), ValueError, "the same shape"),
    ((torch.ones(2, 3, 44, 47, dtype=torch.int16), torch.ones(2, 3, 44, 47)), TypeError, "uint8 or floating"),
    ((torch.full((2, 3, 44, 47), float("nan")), torch.rand(2, 3, 44, 47)), ValueError, "`preds` to be finite"),
    ((torch.rand(3, 44, 47), torch.rand(3, 44, 47)), ValueError, r"\[N, C, H, W\]"),
    (([[0.0]], torch.rand(2, 3, 44, 47)), TypeError, "`preds` to be a torch.Tensor"),
]
_BAD_FOR_THE_DEFAULT = [
    ((torch.rand(2, 3, 20, 20) * 3, torch.rand(2, 3, 20, 20)), ValueError, "span at most data_range=1"),
    ((torch.rand(2, 3, 5, 20), torch.rand(2, 3, 5, 20)), ValueError, "at least 6×6 pixels"),
]


@pytest.mark.parametrize(("make", "functional", "options"), CASES)
@pytest.mark.parametrize("reduction", ["elementwise_mean", "none"])  # "sum" keeps the states of the mean
def test_metric_contract(rng, make, functional, options, reduction):
    preds, target = _pairs(rng, 7, (2, 28, 30))
    contract = MetricContract(lambda: make(reduction=reduction), _split(rng, preds, target), rtol=1e-14)
    contract.check_batch_split()
    for merged in contract.check_merge():
        assert int(merged.num_images) == 7
    if reduction != "none":  # "none" keeps one value per image, as torchmetrics' does
        contract.check_state_size()
    contract.check_rejected_updates([*_BAD, *(_BAD_FOR_THE_DEFAULT if make is CASES[0][0] else [])])


def test_ms_ssim_too_small_is_refused_and_changes_nothing(rng):
    contract = MetricContract(lambda: MS_SSIM(data_range=1.0), [_pairs(rng, 1, (1, 96, 100)) for _ in range(2)])
    contract.check_rejected_updates([(_pairs(rng, 2, (1, 80, 200)), ValueError, r"at least 96×96 pixels")])


@pytest.mark.parametrize("option", ["return_full_image", "return_contrast_sensitivity"])
def test_metric_contract_of_per_image_maps(rng, option):
    preds, target = _pairs(rng, 7, (1, 20, 22))
    contract = MetricContract(
        lambda: SSIM(data_range=1.0, reduction="none", **{option: True}), _split(rng, preds, target)
    )
    contract.check_batch_split()
    contract.check_merge()
    contract.check_rejected_updates([((p[:, :1], t[:, :1]), error, match) for (p, t), error, match in _BAD[:3]])
    if option == "return_full_image":
        refused = (_pairs(rng, 2, (1, 21, 22)), ValueError, r"maps of shape \(1, 20, 22\) so far")
        contract.check_rejected_updates([refused])


def test_full_images_of_another_size_are_refused_by_forward_and_merge_and_change_nothing(rng):
    # torchmetrics 1.9 takes them and then fails in every later `compute` (it concatenates maps of two sizes).
    earlier = [_pairs(rng, 2, (1, 20, 22)) for _ in range(2)]
    contract = MetricContract(lambda: SSIM(data_range=1.0, return_full_image=True), earlier)
    other_size = _pairs(rng, 3, (1, 21, 22))
    contract.check_rejected_updates(
        [(other_size, ValueError, r"\(1, 20, 22\) so far\), got maps of shape \(1, 21, 22\)")]
    )
    metric = contract.fed(contract.batches)
    value, maps = metric.compute()
    assert maps.shape == (4, 1, 20, 22)
    other = SSIM(data_range=1.0, return_full_image=True)
    other.update(*other_size)
    with unchanged_state(metric), pytest.raises(ValueError, match=r"maps of shape \(1, 21, 22\) into a metric holding"):
        metric.merge_state(other)
    with unchanged_state(other), pytest.raises(ValueError, match=r"maps of shape \(1, 20, 22\) into a metric holding"):
        other.merge_state(metric.metric_state)
    # The state still computes, and a batch of the first size still joins it.
    torch.testing.assert_close(metric.compute()[0], value, rtol=0, atol=0)
    batch_value, batch_maps = metric(*earlier[0])
    expected_value, expected_maps = structural_similarity_index_measure(
        *earlier[0], data_range=1.0, return_full_image=True
    )
    torch.testing.assert_close(batch_value, expected_value, rtol=1e-14, atol=0)
    torch.testing.assert_close(batch_maps, expected_maps, rtol=1e-14, atol=0)
    assert metric.compute()[1].shape == (6, 1, 20, 22)


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_aliases_reset_and_empty_compute(rng):
    assert SSIM is StructuralSimilarityIndexMeasure
    assert MS_SSIM is MultiScaleStructuralSimilarityIndexMeasure
    metric = SSIM(data_range=1.0, reduction="none")
    with pytest.raises(RuntimeError, match="no images yet"):
        metric.compute()
    metric.update(*_pairs(rng, 2))
    metric.reset()
    assert int(metric.num_images) == 0
    assert metric.similarity_sum.item() == 0.0
    assert metric.similarity == []
    assert metric.higher_is_better is True
    assert metric.is_differentiable is True


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, r"pass data_range=1.0 for images in \[0, 1\], 255 for uint8"),
        ({"data_range": 1.0, "kernel_size": 0}, ValueError, "odd positive numbers, got 0"),
        ({"data_range": 1.0, "sigma": 0}, ValueError, "`sigma`"),
        ({"data_range": 1.0, "k1": -0.01}, ValueError, "`k1`"),
        ({"data_range": 1.0, "border": "same"}, ValueError, "`border`"),
        ({"data_range": 1.0, "reduction": "mean"}, ValueError, "`reduction` to be one of"),
        ({"data_range": 1.0, "gaussian_kernel": 1.0}, TypeError, r"pass the range by keyword, `data_range=1.0`"),
    ],
)
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        StructuralSimilarityIndexMeasure(**kwargs)
    with pytest.raises(error, match=match):
        MultiScaleStructuralSimilarityIndexMeasure(**kwargs)


def test_old_positional_range_and_bad_options_are_refused():
    with pytest.raises(TypeError, match=r"`data_range=1.0`"):
        SSIM(1.0)
    with pytest.raises(TypeError, match=r"`data_range=255`"):
        MS_SSIM(255, 11, 1.5)
    with pytest.raises(ValueError, match="at most one of"):
        SSIM(data_range=1.0, return_full_image=True, return_contrast_sensitivity=True)
    with pytest.raises(ValueError, match="betas"):
        MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, betas=())
    with pytest.raises(ValueError, match="`normalize`"):
        MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, normalize="sigmoid")


@pytest.mark.parametrize(("make", "functional", "options"), CASES)
def test_forward_is_differentiable_and_the_state_holds_no_graph(rng, make, functional, options):
    preds, target = _pairs(rng, 3, (3, 44, 47))
    plain, tracked = make(), make()
    plain.update(preds, target)
    tracked_preds = preds.clone().requires_grad_()
    value = tracked(tracked_preds, target)
    assert value.requires_grad
    (1 - value).backward()
    reference_preds = preds.clone().requires_grad_()
    (1 - _call(functional, reference_preds, target, options)).backward()
    torch.testing.assert_close(tracked_preds.grad, reference_preds.grad, rtol=1e-12, atol=1e-15)
    assert not any(value.requires_grad for value in tracked.metric_state.values())
    assert torch.equal(tracked.compute(), plain.compute())
