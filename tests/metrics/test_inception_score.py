import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from lightning_genmetrics import InceptionScore
from lightning_genmetrics.functional import sample_keys
from tests.helpers import TinyFeatureNet, exact_inception_score


def _images(rng, n, size=8):
    return torch.from_numpy(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))


def _logits(net, uint8):
    with torch.no_grad():
        return net(uint8.float() / 255).double().numpy()


def test_matches_definition_with_documented_split_assignment(rng):
    net = TinyFeatureNet(num_features=10, seed=4)
    images = _images(rng, 300)
    metric = InceptionScore(net, splits=5)
    for chunk in images.split(64):
        metric.update(chunk)
    split_index = (sample_keys(images, seed=0) % 5).numpy()
    expected = exact_inception_score(_logits(net, images), split_index, 5)
    mean, std = metric.compute()
    assert (mean.item(), std.item()) == pytest.approx(expected, rel=1e-10)


def test_same_value_in_any_order_and_batching(rng):
    net = TinyFeatureNet(num_features=6, seed=5)
    images = _images(rng, 200)
    a, b = InceptionScore(net, splits=7), InceptionScore(net, splits=7)
    for chunk in images.split(50):
        a.update(chunk)
    for chunk in images[torch.from_numpy(rng.permutation(200))].split(23):
        b.update(chunk)
    torch.testing.assert_close(torch.stack(a.compute()), torch.stack(b.compute()), rtol=1e-12, atol=0)


def test_one_split_matches_torch_fidelity(rng):
    net = TinyFeatureNet(num_features=12, seed=6)
    images = _images(rng, 150)
    metric = InceptionScore(net, splits=1)
    metric.update(images)
    reference = isc_features_to_metric(torch.from_numpy(_logits(net, images)), splits=1)
    assert metric.compute()[0].item() == pytest.approx(reference["inception_score_mean"], rel=1e-10)


def test_sample_ids_decide_the_splits(rng):
    net = TinyFeatureNet(num_features=5, seed=7)
    images = _images(rng, 120)
    ids = torch.from_numpy(rng.permutation(10_000)[:120])
    metric = InceptionScore(net, splits=3, seed=11)
    metric.update(images[:70], sample_ids=ids[:70])
    metric.update(images[70:], sample_ids=ids[70:])
    split_index = (sample_keys(ids.reshape(-1, 1), seed=11) % 3).numpy()
    expected = exact_inception_score(_logits(net, images), split_index, 3)
    assert tuple(v.item() for v in metric.compute()) == pytest.approx(expected, rel=1e-10)


def test_state_size_does_not_grow(rng):
    metric = InceptionScore(TinyFeatureNet(num_features=9), splits=4)
    metric.update(_images(rng, 10))
    sizes = {name: value.numel() for name, value in metric.metric_state.items()}
    for _ in range(5):
        metric.update(_images(rng, 100))
    assert sizes == {name: value.numel() for name, value in metric.metric_state.items()}
    assert sum(sizes.values()) == 4 * (9 + 2)


def test_float_input_in_declared_range(rng):
    net = TinyFeatureNet(num_features=4, seed=8)
    uint8 = _images(rng, 40)
    a, b = InceptionScore(net, splits=2), InceptionScore(net, splits=2, input_range=(0, 1))
    a.update(uint8)
    b.update(uint8.double() / 255)
    assert a.compute() == b.compute()


def test_merge_state(rng):
    net = TinyFeatureNet(num_features=4)
    images = _images(rng, 90)
    whole, left, right = (InceptionScore(net, splits=3) for _ in range(3))
    whole.update(images)
    left.update(images[:20])
    right.update(images[20:])
    left.merge_state(right)
    torch.testing.assert_close(torch.stack(left.compute()), torch.stack(whole.compute()), rtol=1e-12, atol=0)


def test_not_enough_images():
    metric = InceptionScore(TinyFeatureNet(4), splits=50)
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(RuntimeError, match="no images yet"):
        metric.compute()
    metric.update(torch.zeros(3, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="at least one sample in each of its 50 splits"):
        metric.compute()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"images": torch.rand(4, 3, 8, 8)}, TypeError, "input_range"),
        ({"images": torch.zeros(4, 2, 8, 8, dtype=torch.uint8)}, ValueError, "1 or 3 channels"),
        ({"images": torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "sample_ids": torch.arange(3)}, ValueError, r"\[4\]"),
        ({"images": torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "sample_ids": torch.ones(4)}, TypeError, "integer"),
    ],
)
def test_bad_update_leaves_state_untouched(rng, kwargs, error, match):
    metric = InceptionScore(TinyFeatureNet(4), splits=2)
    metric.update(_images(rng, 6))
    before = {k: v.clone() for k, v in metric.metric_state.items()}
    with pytest.raises(error, match=match):
        metric.update(**kwargs)
    assert all(torch.equal(before[k], v) for k, v in metric.metric_state.items())


@pytest.mark.parametrize(("kwargs", "match"), [({"splits": 0}, "splits"), ({"feature": "2048"}, "feature")])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InceptionScore(**{"feature": TinyFeatureNet(4), **kwargs})
