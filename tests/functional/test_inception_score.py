import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from lightning_genmetrics.functional import inception_score, logits_to_statistics, statistics_to_inception_score
from tests.helpers import exact_inception_score


@pytest.mark.parametrize(("n", "c", "splits"), [(100, 10, 10), (37, 1008, 3), (500, 5, 1)])
def test_contiguous_splits_match_torch_fidelity(rng, n, c, splits):
    logits = torch.from_numpy(rng.standard_normal((n, c)) * 3)
    mean, std = inception_score(logits, splits=splits)
    reference = isc_features_to_metric(logits, splits=splits, shuffle=False)
    assert mean.item() == pytest.approx(reference["inception_score_mean"], rel=1e-12)
    assert std.item() == pytest.approx(reference["inception_score_std"], rel=1e-9, abs=1e-12)


def test_given_split_index_matches_definition(rng):
    logits = rng.standard_normal((300, 7)) * 4
    split_index = rng.integers(0, 6, 300)
    mean, std = inception_score(torch.from_numpy(logits), splits=6, split_index=torch.from_numpy(split_index))
    expected = exact_inception_score(logits, split_index, 6)
    assert (mean.item(), std.item()) == pytest.approx(expected, rel=1e-11)


def test_statistics_merge_by_addition(rng):
    logits = torch.from_numpy(rng.standard_normal((90, 4)) * 2)
    split_index = torch.from_numpy(rng.integers(0, 3, 90))
    whole = logits_to_statistics(logits, split_index, 3)
    parts = [logits_to_statistics(logits[s], split_index[s], 3) for s in (slice(0, 31), slice(31, 90))]
    summed = tuple(a + b for a, b in zip(*parts, strict=True))
    for got, want in zip(summed, whole, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(statistics_to_inception_score(summed)[0], statistics_to_inception_score(whole)[0])


def test_confident_distinct_classes_score_the_class_count():
    logits = torch.eye(8, dtype=torch.float64) * 1000
    mean, std = inception_score(logits, splits=1)
    assert mean.item() == pytest.approx(8.0, rel=1e-12)
    assert std.item() == 0.0


def test_empty_split_is_an_error():
    with pytest.raises(RuntimeError, match=r"split sizes \[2, 0\]"):
        inception_score(torch.randn(2, 3), splits=2, split_index=torch.tensor([0, 0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"logits": torch.randn(4, 3), "split_index": torch.tensor([0.0, 1.0, 0.0, 1.0])}, TypeError, "integer"),
        ({"logits": torch.randn(4, 3), "split_index": torch.tensor([0, 1, 2, 1])}, ValueError, r"\[0, 2\)"),
        ({"logits": torch.randn(4, 3), "split_index": torch.tensor([0, 1])}, ValueError, r"shape \[4\]"),
        ({"logits": torch.tensor([[0.0, float("nan")]])}, ValueError, "NaN/Inf"),
        ({"logits": torch.randn(4)}, ValueError, r"\[N, D\]"),
    ],
)
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        inception_score(splits=2, **kwargs)
