"""Precision, recall, density and coverage: the papers' definitions in float64, torch-fidelity, the reservoir
metric's batching, merging, caching and bounds, and two gloo processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_genmetrics.functional import prdc as functional_prdc
from lightning_genmetrics.functional.prdc import knn_radii, precision_recall_density_coverage
from lightning_genmetrics.functional.sampling import bottom_k, sample_keys
from lightning_genmetrics.metrics.prdc import PrecisionRecallDensityCoverage
from tests.ddp.harness import run_distributed
from tests.helpers import fresh_seed


def reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """The definitions written out: full float64 distance matrices from explicit differences."""

    def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    real_radii = np.sort(distances(real, real), axis=1)[:, k]  # column 0 is the sample itself
    fake_radii = np.sort(distances(fake, fake), axis=1)[:, k]
    d = distances(fake, real)  # [M, N]
    in_real_ball = d <= real_radii[None, :]
    return {
        "precision": in_real_ball.any(1).mean(),
        "recall": (d <= fake_radii[:, None]).any(0).mean(),
        "density": in_real_ball.sum() / (k * fake.shape[0]),
        "coverage": (d.min(0) <= real_radii).mean(),
    }


def _pair(rng, n=150, m=120, d=6):
    """Generated samples that miss the real tails (recall < 1) and half of them off the real data (precision < 1)."""
    real = rng.standard_normal((n, d))
    fake = rng.standard_normal((m, d)) * 0.5
    fake[: m // 2, 0] += 6.0
    return real, fake


@pytest.mark.parametrize(("k", "block_size"), [(3, 1024), (1, 7), (5, 50)])
def test_equals_the_papers_definitions_in_float64(rng, k, block_size):
    real, fake = _pair(rng, n=int(rng.integers(60, 160)), m=int(rng.integers(40, 140)))
    values = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), k, block_size=block_size)
    expected = reference(real, fake, k)
    for name, value in expected.items():
        assert abs(float(values[name]) - value) <= 1e-12, name
    assert 0 < float(values["precision"]) < 1
    assert 0 < float(values["recall"]) < 1


def test_radii_equal_sorted_distances(rng):
    x = rng.standard_normal((90, 5))
    expected = np.sort(np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)), axis=1)[:, 3]
    np.testing.assert_allclose(knn_radii(torch.from_numpy(x), 3, block_size=13).numpy(), expected, rtol=1e-12)


def test_equals_torch_fidelity_precision_and_recall(rng):
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real, fake = _pair(rng, n=200, m=170, d=16)
    # torch-fidelity's convention: features_1 are the generated samples, features_2 the real ones.
    precision, recall = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), 3, 10000)
    values = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), 3)
    # torch-fidelity averages in float32: equal to its rounding, far below one sample's share (1/200).
    assert float(values["precision"]) == pytest.approx(precision, abs=1e-6)
    assert float(values["recall"]) == pytest.approx(recall, abs=1e-6)


def test_distances_are_computed_in_blocks(rng, monkeypatch):
    shapes = []
    original = functional_prdc._squared_distances

    def recording(a, b, b_norms):
        shapes.append((a.shape[0], b.shape[0]))
        return original(a, b, b_norms)

    monkeypatch.setattr(functional_prdc, "_squared_distances", recording)
    real, fake = _pair(rng, n=300, m=250)
    precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), 3, block_size=32)
    assert shapes
    assert max(rows for rows, _ in shapes) <= 32


def test_identical_sets_are_perfect_and_disjoint_sets_are_zero(rng):
    x = torch.from_numpy(rng.standard_normal((50, 3)))
    same = precision_recall_density_coverage(x, x, 3)
    assert [float(same[name]) for name in ("precision", "recall", "coverage")] == [1.0, 1.0, 1.0]
    far = precision_recall_density_coverage(x, x + 1e3, 3)
    assert all(float(value) == 0.0 for value in far.values())


def test_too_few_samples_say_how_many_are_needed():
    with pytest.raises(RuntimeError, match="at least 4 generated samples, got 3"):
        precision_recall_density_coverage(torch.randn(10, 2), torch.randn(3, 2), 3)
    with pytest.raises(RuntimeError, match="at least 6 real samples, got 5"):
        precision_recall_density_coverage(torch.randn(5, 2), torch.randn(10, 2), 5)
    with pytest.raises(ValueError, match="one dimension"):
        precision_recall_density_coverage(torch.randn(10, 2), torch.randn(10, 3), 3)
    with pytest.raises(ValueError, match="NaN"):
        precision_recall_density_coverage(torch.full((10, 2), float("nan")), torch.randn(10, 2), 3)


# The metric ---------------------------------------------------------------------------------------------------


def _images(rng, n, high=256):
    return torch.from_numpy(rng.integers(0, high, (n, 3, 4, 4), dtype=np.uint8))


def _features(images: torch.Tensor) -> torch.Tensor:
    return images.reshape(images.shape[0], -1).double()


class FlatPixels(nn.Module):
    """uint8 pixels as float features, exactly."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1).float()


def _metric(**kwargs):
    return PrecisionRecallDensityCoverage(FlatPixels(), **kwargs)


def test_metric_equals_the_functional_form_and_any_batching(rng):
    real, fake = _images(rng, 130), _images(rng, 110, high=200)
    one = _metric()
    one.update(real, real=True)
    one.update(fake, real=False)
    split = _metric()
    for chunk in real.split(17):
        split.update(chunk, real=True)
    for chunk in fake.split(50):
        split.update(chunk, real=False)
    expected = reference(_features(real).numpy(), _features(fake).numpy(), 3)
    for metric in (one, split):
        values = metric.compute()
        for name, value in expected.items():
            assert abs(float(values[name]) - value) <= 1e-12, name


def test_reservoir_is_bounded_and_is_the_smallest_keys(rng):
    real, fake = _images(rng, 200), _images(rng, 150, high=200)
    metric = _metric(max_samples=60, seed=5)
    for chunk in real.split(33):
        metric.update(chunk, real=True)
    for chunk in fake.split(40):
        metric.update(chunk, real=False)
    assert metric.real_features.shape[0] == 60
    assert metric.fake_features.shape[0] == 60
    assert metric.samples_used() == {"real_seen": 200, "real_used": 60, "fake_seen": 150, "fake_used": 60}
    kept_real = real[bottom_k(sample_keys(real, 5), 60)]
    kept_fake = fake[bottom_k(sample_keys(fake, 5), 60)]
    expected = reference(_features(kept_real).numpy(), _features(kept_fake).numpy(), 3)
    values = metric.compute()
    for name, value in expected.items():
        assert abs(float(values[name]) - value) <= 1e-12, name


def test_merge_equals_one_stream(rng):
    real, fake = _images(rng, 120), _images(rng, 90, high=200)
    whole, a, b = _metric(max_samples=70), _metric(max_samples=70), _metric(max_samples=70)
    whole.update(real, real=True)
    whole.update(fake, real=False)
    a.update(real[:50], real=True)
    a.update(fake, real=False)
    b.update(real[50:], real=True)
    a.merge_state(b)
    for name, value in whole.compute().items():
        assert float(a.compute()[name]) == float(value), name


def test_real_radii_are_computed_once_per_real_side(rng, monkeypatch):
    import lightning_genmetrics.metrics.prdc as module

    calls = []
    monkeypatch.setattr(module, "knn_radii", lambda *args, **kwargs: calls.append(1) or knn_radii(*args, **kwargs))
    metric = _metric(reset_real_features=False)
    metric.update(_images(rng, 40), real=True)
    metric.update(_images(rng, 30), real=False)
    first = metric.compute()
    metric.reset()  # the real side stays
    metric.update(_images(rng, 30), real=False)
    metric.compute()
    assert len(calls) == 1
    metric.update(_images(rng, 5), real=True)  # a new real side: new radii
    metric.compute()
    assert len(calls) == 2
    assert set(first) == {"precision", "recall", "density", "coverage"}


def test_real_reservoir_round_trip_keeps_radii_and_refuses_bad_ones(rng):
    real, fake = _images(rng, 60), _images(rng, 50, high=200)
    source = _metric()
    source.update(real, real=True)
    state = source.real_reservoir()
    assert state["radii"].dtype == torch.float64
    assert state["radii"].shape == (60,)
    target = _metric()
    target.load_real_reservoir(state)
    target.update(fake, real=False)
    source.update(fake, real=False)
    assert {k: float(v) for k, v in target.compute().items()} == {k: float(v) for k, v in source.compute().items()}

    fresh = _metric()
    for bad, error in (
        ({**state, "radii": state["radii"][:-1]}, ValueError),
        ({**state, "radii": -state["radii"]}, ValueError),
        ({**state, "radii": state["radii"].float()}, TypeError),
    ):
        with pytest.raises(error, match="radii"):
            fresh.load_real_reservoir(bad)
        assert fresh.real_features.shape[0] == 0  # nothing loaded


def test_compute_needs_k_plus_one_samples_per_side(rng):
    metric = _metric(k=3)
    metric.update(_images(rng, 10), real=True)
    metric.update(_images(rng, 3), real=False)
    with pytest.raises(RuntimeError, match="at least 4 generated samples, got 3"):
        metric.compute()


def test_bad_updates_leave_the_state_untouched(rng):
    metric = _metric()
    metric.update(_images(rng, 20), real=True)
    before = {name: value.clone() for name, value in metric.metric_state.items()}
    with pytest.raises(TypeError):
        metric.update(torch.rand(4, 3, 4, 4), real=True)  # float images without input_range
    with pytest.raises(ValueError, match="features per image"):
        metric.update(torch.zeros(4, 3, 5, 5, dtype=torch.uint8), real=True)
    for name, value in metric.metric_state.items():
        assert torch.equal(value, before[name]), name


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="max_samples"):
        PrecisionRecallDensityCoverage(nn.Flatten(), k=3, max_samples=3)
    with pytest.raises(ValueError, match="k"):
        PrecisionRecallDensityCoverage(nn.Flatten(), k=0)


def _data(seed):
    rng = np.random.default_rng(seed)
    return _images(rng, 170), _images(rng, 130, high=200)


def _rank_main(rank: int, world_size: int, seed: int) -> dict:
    real, fake = _data(seed)
    metrics = {"exact": _metric(max_samples=None), "bounded": _metric(max_samples=80)}
    # Uneven shards: 70/30 of the real images; every generated image on rank 0, none on rank 1.
    cut = 119
    for metric in metrics.values():
        for chunk in (real[:cut] if rank == 0 else real[cut:]).split(23):
            metric.update(chunk, real=True)
        if rank == 0:
            for chunk in fake.split(31):
                metric.update(chunk, real=False)
    return {name: {k: float(v) for k, v in metric.compute().items()} for name, metric in metrics.items()}


@pytest.mark.ddp
def test_two_processes_give_the_one_process_values():
    seed = fresh_seed()
    results = run_distributed(_rank_main, world_size=2, timeout=240, seed=seed)
    real, fake = _data(seed)
    for name, max_samples in (("exact", None), ("bounded", 80)):
        metric = _metric(max_samples=max_samples)
        metric.update(real, real=True)
        metric.update(fake, real=False)
        expected = {k: float(v) for k, v in metric.compute().items()}
        for rank, result in enumerate(results):
            assert result[name] == expected, f"{name} on rank {rank}"


def test_merging_a_metric_that_has_seen_nothing_changes_nothing(rng):
    real, fake = _images(rng, 40), _images(rng, 30, high=200)
    full = _metric()
    full.update(real, real=True)
    full.update(fake, real=False)
    expected = {k: float(v) for k, v in full.compute().items()}
    full.merge_state(_metric())  # an empty metric into a full one
    empty = _metric()
    empty.merge_state(full)  # a full one into an empty one
    for metric in (full, empty):
        assert {k: float(v) for k, v in metric.compute().items()} == expected
