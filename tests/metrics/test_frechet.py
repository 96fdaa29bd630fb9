import numpy as np
import pytest
import torch

import lightning_genmetrics.metrics.frechet as frechet_module
from lightning_genmetrics import FrechetDistance, FrechetInceptionDistance
from tests.contract import Call, check_metric_contract, unchanged_state
from tests.helpers import PixelLogits, TinyFeatureNet, exact_frechet


def _feed(metric, features, real, rng):
    cuts = np.sort(rng.choice(np.arange(1, len(features)), size=min(4, len(features) - 1), replace=False))
    for part in np.split(features, cuts):
        metric.update(torch.from_numpy(part), real=real)


@pytest.mark.parametrize(("n", "m", "d", "shift"), [(60, 45, 96, 0.0), (800, 600, 24, 1e4), (5, 4, 64, 0.0)])
def test_batched_stream_matches_exact_reference(rng, n, m, d, shift):
    real = shift + rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) / np.sqrt(d)
    fake = shift + 0.5 + rng.standard_normal((m, d)) * 1.2
    metric = FrechetDistance(num_features=d)
    _feed(metric, real, True, rng)
    _feed(metric, fake.astype(np.float32), False, rng)
    expected = exact_frechet(real, fake.astype(np.float32))
    value = metric.compute()
    assert value.dtype == torch.float64
    assert abs(value.item() - expected) <= 1e-10 * expected


def test_identical_streams_give_zero(rng):
    x = rng.standard_normal((50, 80)) + 7.0
    metric = FrechetDistance(80)
    _feed(metric, x, True, rng)
    _feed(metric, x[::-1].copy(), False, rng)
    assert 0.0 <= metric.compute().item() <= 1e-9


def test_num_features_fixed_by_first_update(rng):
    metric = FrechetDistance()
    assert metric.num_features is None
    metric.update(torch.from_numpy(rng.standard_normal((10, 6))), real=True)
    assert metric.num_features == 6
    with pytest.raises(ValueError, match="6 features per row"):
        metric.update(torch.randn(3, 5), real=False)
    metric.reset()
    assert metric.num_features == 6


def test_real_root_is_cached_while_real_side_is_fixed(rng, monkeypatch):
    calls = []
    original = frechet_module.psd_sqrt
    monkeypatch.setattr(frechet_module, "psd_sqrt", lambda s, **kw: calls.append(1) or original(s, **kw))
    metric = FrechetDistance(8, reset_real_features=False)
    metric.update(torch.from_numpy(rng.standard_normal((40, 8))), real=True)
    values = []
    for _ in range(3):
        metric.update(torch.from_numpy(rng.standard_normal((30, 8))), real=False)
        values.append(metric.compute())
        metric.reset()
    assert len(calls) == 1
    metric.update(torch.from_numpy(rng.standard_normal((30, 8))), real=False)
    metric.update(torch.from_numpy(rng.standard_normal((5, 8))), real=True)
    metric.compute()
    assert len(calls) == 2


@pytest.mark.parametrize("loaded", [False, True])
def test_a_saved_real_root_spares_the_decomposition_and_changes_nothing(rng, monkeypatch, loaded):
    real, fake = rng.standard_normal((50, 12)) @ rng.standard_normal((12, 12)), rng.standard_normal((40, 12))
    first = FrechetDistance(12)
    first.update(torch.from_numpy(real), real=True)
    first.update(torch.from_numpy(fake), real=False)
    expected, root = first.compute(), first.real_sqrt()
    torch.testing.assert_close(root @ root, first.real_statistics().sigma, rtol=0, atol=1e-10)

    calls = []
    original = frechet_module.psd_sqrt
    monkeypatch.setattr(frechet_module, "psd_sqrt", lambda s, **kw: calls.append(1) or original(s, **kw))
    second = FrechetDistance(12)
    if loaded:
        second.load_real_statistics(first.real_statistics())
    else:
        second.update(torch.from_numpy(real), real=True)
    second.update(torch.from_numpy(fake), real=False)
    with unchanged_state(second):
        for bad, error, match in [
            (torch.eye(12, dtype=torch.float64), ValueError, "square root of the real covariance"),
            (root[:3], ValueError, r"shape \(12, 12\)"),
            (root.long(), TypeError, "floating point"),
            (root * float("nan"), ValueError, "NaN"),
        ]:
            with pytest.raises(error, match=match):
                second.load_real_sqrt(bad)
    second.load_real_sqrt(root)
    assert second.compute() == expected
    assert calls == []
    torch.testing.assert_close(second.real_sqrt(), root, rtol=0, atol=0)


def test_reset_real_features(rng):
    real = torch.from_numpy(rng.standard_normal((20, 4)))
    keep = FrechetDistance(4, reset_real_features=False)
    drop = FrechetDistance(4)
    for metric in (keep, drop):
        metric.update(real, real=True)
        metric.update(real + 1, real=False)
        metric.reset()
    assert int(keep.real_n) == 20
    assert int(keep.fake_n) == 0
    torch.testing.assert_close(keep.real_mean, real.mean(0))
    assert int(drop.real_n) == 0


@pytest.mark.parametrize("num_features", [5, None])
def test_metric_contract(rng, num_features):
    # Features far from the origin: the merge of the moments must not lose them to cancellation.
    a, b = rng.standard_normal((70, 5)) + 100, rng.standard_normal((30, 5)) + 100
    batches = [
        Call(torch.from_numpy(a[:40]), real=True),
        Call(torch.from_numpy(b * 2), real=False),
        Call(torch.from_numpy(a[40:]), real=True),
        Call(torch.from_numpy(b), real=True),
    ]
    bad = [
        (Call(torch.randn(4, 5), real=1), TypeError, "`real` to be a bool"),
        (Call([[1.0, 2.0, 3.0, 4.0, 5.0]], real=True), TypeError, "`features` to be a torch.Tensor"),
        (Call(torch.ones(4, 5, dtype=torch.int64), real=True), TypeError, "floating point"),
        (Call(torch.randn(4, 5, 1), real=True), ValueError, r"shape \[N, D\]"),
        (Call(torch.randn(4, 3), real=True), ValueError, "5 features per row"),
        (Call(torch.tensor([[0.0, float("inf"), 1.0, 2.0, 3.0]]), real=False), ValueError, "NaN/Inf"),
    ]
    check_metric_contract(lambda: FrechetDistance(num_features), batches, bad)


def test_compute_needs_two_samples_per_side():
    metric = FrechetDistance(3)
    metric.update(torch.randn(5, 3), real=True)
    metric.update(torch.randn(1, 3), real=False)
    with pytest.raises(RuntimeError, match="at least 2 real and 2 generated samples, got 5 real and 1 generated"):
        metric.compute()


@pytest.mark.parametrize("num_features", [None, 3])
def test_feature_vectors_of_no_features_are_refused(rng, num_features):
    # [N, 0] would otherwise count N samples of nothing and change the distance (or fix D = 0).
    metric = FrechetDistance(num_features)
    if num_features is not None:
        metric.update(torch.from_numpy(rng.standard_normal((6, 3))), real=True)
    with unchanged_state(metric):
        for real in (True, False):
            with pytest.raises(ValueError, match=r"`features` to have .*\(5, 0\)"):
                metric.update(torch.zeros(5, 0), real=real)
    assert metric.num_features == num_features


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_features(bad):
    with pytest.raises((TypeError, ValueError), match="num_features"):
        FrechetDistance(bad)


def test_forward_accumulates_without_a_batch_value(rng):
    metric = FrechetDistance(3)
    assert metric(torch.from_numpy(rng.standard_normal((4, 3))), real=True) is None
    assert int(metric.real_n) == 4


# --- images ---------------------------------------------------------------------------------------


def _net_features(net, uint8):
    with torch.no_grad():
        return net(uint8.float() / 255).double().numpy()


def test_fid_on_images_matches_reference(rng):
    net = TinyFeatureNet(num_features=10, seed=1)
    real = torch.from_numpy(rng.integers(0, 256, (40, 3, 12, 12), dtype=np.uint8))
    fake = torch.from_numpy(rng.integers(0, 128, (30, 3, 12, 12), dtype=np.uint8))
    fid = FrechetInceptionDistance(feature=net, feature_input="float")
    assert fid.num_features is None  # found at the first update, without a dummy forward pass
    for chunk in real.split(13):
        fid.update(chunk, real=True)
    for chunk in fake.split(7):
        fid.update(chunk, real=False)
    expected = exact_frechet(_net_features(net, real), _net_features(net, fake))
    assert fid.compute().item() == pytest.approx(expected, rel=1e-8)


def test_float_and_uint8_images_agree_and_grayscale_is_repeated(rng):
    net = TinyFeatureNet(num_features=6, seed=2, declare=True)
    uint8 = torch.from_numpy(rng.integers(0, 256, (24, 1, 9, 9), dtype=np.uint8))
    as_float = uint8.double() / 127.5 - 1.0  # exact grid values in (-1, 1)
    by_uint8 = FrechetInceptionDistance(feature=net, feature_input="float")
    by_float = FrechetInceptionDistance(feature=net, feature_input="float", input_range=(-1, 1))
    assert by_float.num_features == 6  # declared by the module
    for metric, images in ((by_uint8, uint8), (by_float, as_float)):
        metric.update(images, real=True)
        metric.update(images.flip(-1), real=False)
    assert by_uint8.compute() == by_float.compute()
    expected = exact_frechet(
        _net_features(net, uint8.repeat(1, 3, 1, 1)), _net_features(net, uint8.flip(-1).repeat(1, 3, 1, 1))
    )
    assert by_uint8.compute().item() == pytest.approx(expected, rel=1e-8)


def test_metric_contract_on_images(rng):
    real = torch.from_numpy(rng.integers(0, 256, (19, 3, 8, 8), dtype=np.uint8))
    fake = torch.from_numpy(rng.integers(0, 200, (14, 3, 8, 8), dtype=np.uint8))
    batches = [
        Call(real[:9], real=True),
        Call(fake[:5], real=False),
        Call(real[9:], real=True),
        Call(fake[5:], real=False),
    ]
    bad = [
        (Call(torch.rand(2, 3, 8), real=False), ValueError, r"\[N, C, H, W\]"),
        (Call(torch.rand(2, 4, 8, 8), real=False), ValueError, "1 or 3 channels"),
        (
            Call(torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.int32), real=False),
            TypeError,
            "uint8 or floating point",
        ),
        (Call(torch.rand(2, 3, 8, 8) * 1.5, real=False), ValueError, r"declared input_range \(0.0, 1.0\)"),
        (Call(torch.full((2, 3, 8, 8), float("nan")), real=False), ValueError, "NaN/Inf"),
    ]
    # Features of each image alone, whatever its batch, and cheap: the contract feeds the stream about ten times.
    check_metric_contract(
        lambda: FrechetInceptionDistance(feature=PixelLogits(4), feature_input="float", input_range=(0, 1)),
        batches,
        bad,
    )


def test_float_images_need_a_declared_range():
    fid = FrechetInceptionDistance(feature=TinyFeatureNet(4), feature_input="float")
    with pytest.raises(TypeError, match="no `input_range`"):
        fid.update(torch.rand(2, 3, 8, 8), real=True)


def test_extractor_returning_nan_is_rejected():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 3), float("nan"))

    fid = FrechetInceptionDistance(feature=Broken(), feature_input="float")
    with pytest.raises(ValueError, match="features from the extractor"):
        fid.update(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), real=True)
    assert fid.num_features is None


def test_extractor_mode_is_restored():
    net = TinyFeatureNet(4)
    net.train()
    fid = FrechetInceptionDistance(feature=net, feature_input="float")
    fid.update(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), real=True)
    assert net.training


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"input_range": (0, 255)}, "input_range"), ({"feature": 1000}, "feature")]
)
def test_bad_configuration(kwargs, match):
    kwargs = {"feature": TinyFeatureNet(4), **kwargs}
    with pytest.raises(ValueError, match=match):
        FrechetInceptionDistance(**kwargs)


def test_merge_state_refuses_another_dimension(rng):
    a, b = FrechetDistance(3), FrechetDistance()
    b.update(torch.from_numpy(rng.standard_normal((4, 5))), real=True)
    with pytest.raises(ValueError, match="feature dimension 5 with one of 3"):
        a.merge_state(b)
    lazy = FrechetDistance()
    lazy.merge_state(b)
    assert lazy.num_features == 5
    assert int(lazy.real_n) == 4


def test_loaded_reference_statistics_are_part_of_the_configuration_ranks_agree_on(rng):
    # Ranks agree on `_configuration()` before every sync; a rank holding other (or no) reference statistics
    # would report another distance from the same merged generated state.
    source = FrechetDistance(6)
    source.update(torch.from_numpy(rng.standard_normal((20, 6))), real=True)
    other = FrechetDistance(6)
    other.update(torch.from_numpy(rng.standard_normal((20, 6))), real=True)
    configurations = []
    for statistics in (None, source.real_statistics(), source.real_statistics(), other.real_statistics()):
        metric = FrechetDistance(6)
        if statistics is not None:
            metric.load_real_statistics(statistics)
        configurations.append(metric._configuration())
    assert configurations[1] == configurations[2]
    assert configurations[0] != configurations[1] != configurations[3]
