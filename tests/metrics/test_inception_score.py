import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from lightning_genmetrics import InceptionScore
from lightning_genmetrics.functional import sample_keys
from tests.contract import Call, MetricContract
from tests.helpers import PixelLogits, TinyFeatureNet, exact_inception_score


def _images(rng, n, size=8):
    return torch.from_numpy(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))


def _logits(net, uint8):
    with torch.no_grad():
        return net(uint8.float() / 255).double().numpy()


def _documented_splits(keys: np.ndarray, splits: int, balanced_limit: int) -> np.ndarray:
    """The class docstring's rule for images without ids, written independently of the library's helpers."""
    n = keys.shape[0]
    if n >= balanced_limit:
        return keys % splits
    order = np.argsort(keys, kind="stable")
    split_index = np.empty(n, dtype=np.int64)
    for i in range(splits):
        split_index[order[i * n // splits : (i + 1) * n // splits]] = i
    return split_index


def _splitmix64_output(seed: int, index: int) -> int:
    """Output ``index`` (from 0) of SplitMix64 seeded with ``seed``, in Python integers."""
    mask = 2**64 - 1
    z = (seed + (index + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def _documented_id_splits(ids: np.ndarray, splits: int, seed: int) -> np.ndarray:
    """Rank of each id's SplitMix64 key among the keys of its block of ``splits`` consecutive ids, one id at a time."""
    out = []
    for i in ids.tolist():
        start = i // splits * splits
        keys = [_splitmix64_output(seed, start + j) for j in range(splits)]
        out.append(sorted(keys).index(keys[i - start]))
    return np.array(out)


@pytest.mark.parametrize("n", [300, 90])  # beyond balanced_limit = 160 (key mod splits), and below it (key rank)
def test_matches_definition_with_documented_split_assignment(rng, n):
    net = TinyFeatureNet(num_features=10, seed=4)
    images = _images(rng, n)
    metric = InceptionScore(net, feature_input="float", splits=5)
    assert metric.balanced_limit == 160
    for chunk in images.split(64):
        metric.update(chunk)
    split_index = _documented_splits(sample_keys(images, seed=0).numpy(), 5, 160)
    expected = exact_inception_score(_logits(net, images), split_index, 5)
    mean, std = metric.compute()
    assert (mean.item(), std.item()) == pytest.approx(expected, rel=1e-10)


def test_same_value_in_any_order_and_batching(rng):
    net = TinyFeatureNet(num_features=6, seed=5)
    images = _images(rng, 200)
    a, b = InceptionScore(net, feature_input="float", splits=7), InceptionScore(net, feature_input="float", splits=7)
    for chunk in images.split(50):
        a.update(chunk)
    for chunk in images[torch.from_numpy(rng.permutation(200))].split(23):
        b.update(chunk)
    torch.testing.assert_close(torch.stack(a.compute()), torch.stack(b.compute()), rtol=1e-12, atol=0)


def test_one_split_matches_torch_fidelity(rng):
    net = TinyFeatureNet(num_features=12, seed=6)
    images = _images(rng, 150)
    metric = InceptionScore(net, feature_input="float", splits=1)
    metric.update(images)
    reference = isc_features_to_metric(torch.from_numpy(_logits(net, images)), splits=1)
    assert metric.compute()[0].item() == pytest.approx(reference["inception_score_mean"], rel=1e-10)


def test_sample_ids_decide_the_splits(rng):
    net = TinyFeatureNet(num_features=5, seed=7)
    images = _images(rng, 120)
    ids = torch.from_numpy(rng.permutation(10_000)[:120])
    metric = InceptionScore(net, feature_input="float", splits=3, seed=11)
    metric.update(images[:70], sample_ids=ids[:70])
    metric.update(images[70:], sample_ids=ids[70:])
    split_index = _documented_id_splits(ids.numpy(), 3, seed=11)
    expected = exact_inception_score(_logits(net, images), split_index, 3)
    assert tuple(v.item() for v in metric.compute()) == pytest.approx(expected, rel=1e-10)


class _LabelFromPixel(torch.nn.Module):
    """Confident logits for the class written into the first pixel (class k: value 20·k)."""

    def forward(self, x):
        label = torch.round(x[:, 0, 0, 0] * 255 / 20).long()
        return torch.nn.functional.one_hot(label, 10).float() * 50


@pytest.mark.parametrize("n", [20, 57, 1000])
def test_consecutive_ids_balance_the_splits_without_lining_up_with_cycling_labels(rng, n):
    # The callback conditions sample i on class i mod num_classes and passes ids 0..N-1: splits by `id mod splits`
    # would give each split a single class (a score of 1); the block permutations mix the classes.
    ids = torch.arange(n)
    images = torch.from_numpy(rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8))
    images[:, :, 0, 0] = (ids % 10 * 20).to(torch.uint8)[:, None]
    metric = InceptionScore(_LabelFromPixel(), feature_input="float", splits=10, seed=int(rng.integers(1000)))
    for chunk in torch.from_numpy(rng.permutation(n)).split(7):
        metric.update(images[chunk], sample_ids=ids[chunk])
    sizes = metric.split_n.tolist()
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == n
    split_index = _documented_id_splits(ids.numpy(), 10, metric.seed)
    labels_per_split = [len(set((ids.numpy() % 10)[split_index == s].tolist())) for s in range(10)]
    mean, _ = metric.compute()
    expected = exact_inception_score(np.eye(10)[ids.numpy() % 10] * 50, split_index, 10)
    assert mean.item() == pytest.approx(expected[0], rel=1e-10)
    if n == 1000:
        assert min(labels_per_split) >= 8
        assert mean.item() > 8


def test_state_size_is_bounded(rng):
    metric = InceptionScore(PixelLogits(9), feature_input="float", splits=4)
    sums = 4 * (9 + 2) + 1
    for n in (10, 100):  # below balanced_limit = 128: the rows are kept, at most 127 of 9 + 2 numbers
        metric.update(_images(rng, n, size=4))
        assert sum(v.numel() for v in metric.metric_state.values()) == sums + metric.pending_keys.shape[0] * (9 + 2)
    assert metric.pending_keys.shape[0] == 110
    for _ in range(2):
        metric.update(_images(rng, 100, size=4))
        assert sum(v.numel() for v in metric.metric_state.values()) == sums


def test_float_input_in_declared_range(rng):
    net = TinyFeatureNet(num_features=4, seed=8)
    uint8 = _images(rng, 40)
    a, b = (
        InceptionScore(net, feature_input="float", splits=2),
        InceptionScore(net, feature_input="float", splits=2, input_range=(0, 1)),
    )
    a.update(uint8)
    b.update(uint8.double() / 255)
    assert a.compute() == b.compute()


@pytest.mark.parametrize(("n", "cut"), [(90, 20), (150, 20), (150, 90), (300, 200)])  # balanced_limit = 96
def test_metric_contract(rng, n, cut):
    images = _images(rng, n)
    ids = torch.from_numpy(rng.permutation(10 * n)[:n])
    contract = MetricContract(
        lambda: InceptionScore(PixelLogits(4), feature_input="float", splits=3),
        [images[:cut], images[cut:]],
        # Below balanced_limit the rows themselves are kept until the limit folds them: at most 95 of 4 + 2 numbers.
        bounded_by=3 * (4 + 2) * 8 + 8 + 95 * (4 + 2) * 8,
    )
    contract.check_batch_split()
    # Not cut 0 (an empty metric merged into a fed one): see test_merging_in_a_metric_that_has_seen_nothing.
    for merged in contract.check_merge(cuts=(1, 2)):
        assert merged.pending_keys.shape[0] == (n if n < 96 else 0)
    contract.check_state_size(passes=3)
    contract.check_rejected_updates(
        [
            (Call(imgs=torch.rand(4, 3, 8, 8)), TypeError, "input_range"),
            (Call(imgs=torch.zeros(4, 2, 8, 8, dtype=torch.uint8)), ValueError, "1 or 3 channels"),
            (Call(imgs=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), sample_ids=torch.arange(3)), ValueError, r"\[4\]"),
            (Call(imgs=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), sample_ids=torch.ones(4)), TypeError, "integer"),
        ]
    )
    with_ids = MetricContract(
        lambda: InceptionScore(PixelLogits(4), feature_input="float", splits=3, seed=7),
        [Call(images[:cut], sample_ids=ids[:cut]), Call(images[cut:], sample_ids=ids[cut:])],
    )
    with_ids.check_batch_split()
    with_ids.check_merge(cuts=(1, 2))


def test_merging_in_a_metric_that_has_seen_nothing(rng):
    MetricContract(
        lambda: InceptionScore(PixelLogits(4), feature_input="float", splits=3), [_images(rng, 5)] * 2
    ).check_merge(cuts=(0,))


def test_not_enough_images():
    metric = InceptionScore(TinyFeatureNet(4), feature_input="float", splits=50)
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(RuntimeError, match="no images yet"):
        metric.compute()
    metric.update(torch.zeros(3, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="at least one sample in each of its 50 splits"):
        metric.compute()


@pytest.mark.parametrize(("kwargs", "match"), [({"splits": 0}, "splits"), ({"feature": "2049"}, "feature")])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InceptionScore(**{"feature": TinyFeatureNet(4), **kwargs})
