import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

from lightning_genmetrics import KernelInceptionDistance
from lightning_genmetrics.functional import kernel_inception_distance, sample_keys
from tests.contract import Call, MetricContract
from tests.helpers import PixelLogits, TinyFeatureNet, exact_mmd2


def _images(rng, n, high=256):
    return torch.from_numpy(rng.integers(0, high, (n, 3, 8, 8), dtype=np.uint8))


def _features(net, uint8):
    with torch.no_grad():
        return net(uint8.float() / 255)


def _in_key_order(net, images, seed=0, k=None):
    order = torch.sort(sample_keys(images, seed)).indices[:k]
    return _features(net, images[order])


def test_exact_mode_matches_references(rng):
    net = TinyFeatureNet(num_features=8, seed=1)
    real, fake = _images(rng, 90), _images(rng, 70, high=180)
    kid = KernelInceptionDistance(net, feature_input="float", subsets=5, subset_size=30)
    for chunk in real.split(25):
        kid.update(chunk, real=True)
    for chunk in fake.split(16):
        kid.update(chunk, real=False)
    mean, std = kid.compute()
    # The documented subsets: drawn from the features in key order.
    r, f = _in_key_order(net, real).double().numpy(), _in_key_order(net, fake).double().numpy()
    generator = torch.Generator().manual_seed(0)
    values = []
    for _ in range(5):
        i = torch.randperm(90, generator=generator)[:30].numpy()
        j = torch.randperm(70, generator=generator)[:30].numpy()
        values.append(exact_mmd2(r[i], f[j]))
    assert (mean.item(), std.item()) == pytest.approx((np.mean(values), np.std(values)), rel=1e-9)


def test_full_subset_matches_torch_fidelity(rng):
    net = TinyFeatureNet(num_features=8, seed=2)
    real, fake = _images(rng, 60), _images(rng, 60, high=200)
    kid = KernelInceptionDistance(net, feature_input="float", subsets=2, subset_size=60)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    reference = kid_features_to_metric(
        _features(net, real).double(),
        _features(net, fake).double(),
        kid_subsets=1,
        kid_subset_size=60,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        verbose=False,
        rng_seed=0,
    )
    assert kid.compute()[0].item() == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-10)


def test_reservoir_keeps_smallest_keys_whatever_the_batching(rng):
    net = TinyFeatureNet(num_features=6, seed=3)
    real, fake = _images(rng, 300), _images(rng, 250)
    a = KernelInceptionDistance(net, feature_input="float", subsets=4, subset_size=40, max_samples=100, seed=5)
    b = KernelInceptionDistance(net, feature_input="float", subsets=4, subset_size=40, max_samples=100, seed=5)
    for chunk in real.split(64):
        a.update(chunk, real=True)
    for chunk in fake.split(33):
        a.update(chunk, real=False)
    for chunk in real[torch.from_numpy(rng.permutation(300))].split(17):
        b.update(chunk, real=True)
    for chunk in fake.flip(0).split(100):
        b.update(chunk, real=False)
    assert a.real_features.shape == (100, 6)
    assert int(a.real_n) == 300
    order = torch.sort(a.real_keys).indices
    torch.testing.assert_close(a.real_features[order], _in_key_order(net, real, seed=5, k=100), rtol=1e-6, atol=1e-6)
    assert torch.equal(a.real_keys.sort().values, b.real_keys.sort().values)
    assert torch.equal(a.fake_keys.sort().values, b.fake_keys.sort().values)
    torch.testing.assert_close(torch.stack(a.compute()), torch.stack(b.compute()), rtol=1e-9, atol=1e-12)
    expected = kernel_inception_distance(
        _in_key_order(net, real, 5, 100), _in_key_order(net, fake, 5, 100), subsets=4, subset_size=40, seed=5
    )
    torch.testing.assert_close(torch.stack(a.compute()), torch.stack(expected), rtol=1e-9, atol=1e-12)


def test_reservoir_is_a_uniform_sample():
    # With ids as keys, the kept ids are a uniform sample of 0..9999: their mean is 4999.5 ± 91.
    kid = KernelInceptionDistance(TinyFeatureNet(2), feature_input="float", subsets=1, subset_size=10, max_samples=1000)
    images = torch.zeros(1000, 3, 4, 4, dtype=torch.uint8)
    for start in range(0, 10_000, 1000):
        kid.update(images, real=True, sample_ids=torch.arange(start, start + 1000))
    kept_ids = torch.sort(sample_keys(torch.arange(10_000).reshape(-1, 1))).indices[:1000]
    assert torch.equal(torch.sort(sample_keys(kept_ids.reshape(-1, 1))).values, kid.real_keys.sort().values)
    assert abs(kept_ids.double().mean().item() - 4999.5) < 400


def test_reset_real_features(rng):
    kid = KernelInceptionDistance(
        TinyFeatureNet(4), feature_input="float", subsets=2, subset_size=5, reset_real_features=False
    )
    kid.update(_images(rng, 10), real=True)
    kid.update(_images(rng, 10), real=False)
    kid.reset()
    assert kid.real_features.shape == (10, 4)
    assert kid.fake_features.shape == (0, 4)
    assert int(kid.real_n) == 10


def test_too_few_images(rng):
    kid = KernelInceptionDistance(TinyFeatureNet(4), feature_input="float", subsets=2, subset_size=20)
    kid.update(_images(rng, 30), real=True)
    kid.update(_images(rng, 12), real=False)
    with pytest.raises(RuntimeError, match="subset_size=20 samples on each side, got 30 real and 12 generated"):
        kid.compute()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_samples": 10, "subset_size": 20}, "max_samples"),
        ({"subset_size": 1}, "subset_size"),
        ({"gamma": -1.0}, "gamma"),
        ({"degree": 0}, "degree"),
        ({"coef0": float("nan")}, "`coef0` to be a finite number, got nan"),
        ({"coef0": float("inf")}, "`coef0` to be a finite number, got inf"),
        ({"coef0": -float("inf")}, "`coef0` to be a finite number, got -inf"),
        ({"coef": float("nan")}, "`coef` to be a finite number, got nan"),
        ({"gamma": float("nan")}, "`gamma` to be a positive finite number, got nan"),
        ({"gamma": float("inf")}, "`gamma` to be a positive finite number, got inf"),
        ({"gamma": 0}, "`gamma` to be a positive finite number, got 0"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KernelInceptionDistance(TinyFeatureNet(4), feature_input="float", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coef0": "1"}, "`coef0` to be a finite number, got '1' of type str"),
        ({"coef": None}, "`coef` to be a finite number, got None"),
        ({"coef": "1"}, "`coef` to be a finite number, got '1' of type str"),
        ({"coef0": True}, "`coef0` to be a finite number, got True of type bool"),
        ({"gamma": "0.5"}, "`gamma` to be a positive number, got '0.5' of type str"),
        ({"gamma": True}, "`gamma` to be a positive number, got True"),
        ({"degree": 3.0}, "`degree` to be an int, got 3.0"),
    ],
)
def test_bad_configuration_type(kwargs, match):
    with pytest.raises(TypeError, match=match):
        KernelInceptionDistance(TinyFeatureNet(4), feature_input="float", **kwargs)


@pytest.mark.parametrize("coef0", [0, -2.5, 3])
def test_any_finite_coef0_is_accepted_and_used(rng, coef0):
    kid = KernelInceptionDistance(
        TinyFeatureNet(4), feature_input="float", subsets=2, subset_size=5, coef0=coef0, gamma=0.5, degree=2
    )
    assert (kid.coef0, kid.gamma, kid.degree) == (float(coef0), 0.5, 2)
    kid.update(_images(rng, 6), real=True)
    kid.update(_images(rng, 6), real=False)
    assert all(torch.isfinite(value) for value in kid.compute())


@pytest.mark.parametrize("max_samples", [None, 30])
def test_metric_contract(rng, max_samples):
    real, fake = _images(rng, 26), _images(rng, 21, high=180)
    ids = torch.from_numpy(rng.permutation(1000)[:21])
    batches = [
        Call(real[:11], real=True),
        Call(fake[:8], real=False, sample_ids=ids[:8]),
        Call(real[11:], real=True),
        Call(fake[8:], real=False, sample_ids=ids[8:]),
    ]
    bad = [
        (Call(torch.rand(4, 3, 8, 8), True), TypeError, "input_range"),
        (Call(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "yes"), TypeError, "`real` to be a bool"),
        (Call(torch.zeros(4, 3, 8, dtype=torch.uint8), True), ValueError, r"\[N, C, H, W\]"),
    ]
    options = {} if max_samples is None else {"max_samples": max_samples}
    # The reservoir holds at most max_samples rows of 5 float32 features and an int64 key a side, and two counts.
    bound = None if max_samples is None else 2 * max_samples * (5 * 4 + 8) + 2 * 8
    contract = MetricContract(
        lambda: KernelInceptionDistance(PixelLogits(5), feature_input="float", subsets=3, subset_size=8, **options),
        batches,
        rtol=1e-9,
        atol=1e-12,
        bounded_by=bound,
    )
    contract.check_batch_split()
    contract.check_merge(cuts=(2, 4))  # not cut 0: see test_merging_in_a_metric_that_has_seen_nothing
    if max_samples is not None:  # without it, the exact mode keeps every feature vector (documented)
        contract.check_state_size()
    contract.check_rejected_updates(bad)


def test_merging_in_a_metric_that_has_seen_nothing(rng):
    MetricContract(
        lambda: KernelInceptionDistance(PixelLogits(5), feature_input="float", subsets=2, subset_size=4),
        [Call(_images(rng, 6), real=True), Call(_images(rng, 6), real=False)],
    ).check_merge(cuts=(0,))


def test_empty_batch_is_a_no_op(rng):
    kid = KernelInceptionDistance(TinyFeatureNet(4), feature_input="float", subsets=2, subset_size=5)
    kid.update(_images(rng, 8), real=True)
    kid.update(_images(rng, 0), real=True)
    assert int(kid.real_n) == 8
    assert kid.real_features.shape == (8, 4)
