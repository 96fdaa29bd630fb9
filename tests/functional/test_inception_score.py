import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from lightning_genmetrics.functional import inception_score, logits_to_statistics, statistics_to_inception_score
from lightning_genmetrics.functional.inception_score import (
    contiguous_split_index,
    ids_to_balanced_splits,
    ids_to_keys,
    keys_to_balanced_splits,
)
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


@pytest.mark.parametrize(("n", "splits"), [(0, 3), (5, 5), (23, 10), (101, 7), (40, 1)])
def test_contiguous_chunks_differ_in_size_by_at_most_one(n, splits):
    split_index = contiguous_split_index(n, splits)
    assert torch.equal(split_index, torch.sort(split_index).values)
    bounds = [i * n // splits for i in range(splits + 1)]  # torch-fidelity's chunk boundaries
    assert torch.bincount(split_index, minlength=splits).tolist() == np.diff(bounds).tolist()


def test_balanced_splits_follow_the_key_order(rng):
    keys = torch.from_numpy(rng.integers(-(2**62), 2**62, 57))
    keys[10] = keys[3]  # a tie
    split_index = keys_to_balanced_splits(keys, 6).numpy()
    order = np.argsort(keys.numpy(), kind="stable")
    for i in range(6):
        assert (split_index[order[i * 57 // 6 : (i + 1) * 57 // 6]] == i).all()
    permuted = keys[torch.from_numpy(rng.permutation(57))]
    # Any order of the same keys: the same (key, split) pairs.
    pairs = sorted(zip(keys.tolist(), split_index.tolist(), strict=True))
    assert sorted(zip(permuted.tolist(), keys_to_balanced_splits(permuted, 6).tolist(), strict=True)) == pairs


def _splitmix64(seed, count):
    mask, state, out = 2**64 - 1, seed, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def test_id_keys_are_the_splitmix64_sequence(rng):
    # The reference implementation's published first outputs for seed 1234567.
    published = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431]
    assert [k % 2**64 for k in ids_to_keys(torch.arange(4), seed=1234567).tolist()] == published
    seed, start = int(rng.integers(2**32)), int(rng.integers(-50, 50))
    ids = torch.arange(start, start + 20)
    stream = _splitmix64((seed + start * 0x9E3779B97F4A7C15) & (2**64 - 1), 20)
    assert [k % 2**64 for k in ids_to_keys(ids, seed).tolist()] == stream


def test_id_splits_permute_each_block_and_depend_on_the_id_alone(rng):
    seed = int(rng.integers(1000))
    ids = torch.arange(-30, 70)
    split_index = ids_to_balanced_splits(ids, 10, seed)
    for block in split_index.view(10, 10):
        assert sorted(block.tolist()) == list(range(10))
    subset = torch.from_numpy(rng.choice(100, 17, replace=False))
    assert torch.equal(ids_to_balanced_splits(ids[subset], 10, seed), split_index[subset])
    assert not torch.equal(ids_to_balanced_splits(ids, 10, seed + 1), split_index)
