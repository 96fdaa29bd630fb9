"""FID∞: the nested subsets chosen by key, the fit against a float64 reference, batching, merging, two processes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from lightning_genmetrics.callbacks import figures
from lightning_genmetrics.callbacks.phases.generation import Generation
from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.functional.sampling import sample_keys
from lightning_genmetrics.metrics.fd_infinity import FrechetInceptionDistanceInfinity
from tests.ddp.harness import run_distributed
from tests.helpers import exact_frechet, fresh_seed


class FlatPixels(nn.Module):
    """uint8 pixels as float features, exactly (D = 12 for 3×2×2 images)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1).float()


def _images(rng, n, high=256):
    return torch.from_numpy(rng.integers(0, high, (n, 3, 2, 2), dtype=np.uint8))


def _metric(**kwargs):
    return FrechetInceptionDistanceInfinity(FlatPixels(), **{"points": 5, "min_fraction": 0.3, **kwargs})


def reference(real: torch.Tensor, fake: torch.Tensor, fractions: list[float], seed: int) -> tuple[list, list, float]:
    """The nested subsets by key written out, FID of each in float64, and the least-squares intercept."""
    keys = sample_keys(fake, seed).numpy()
    real_features = real.flatten(1).double().numpy()
    fake_features = fake.flatten(1).double().numpy()
    sizes, fids = [], []
    for j, fraction in enumerate(fractions):
        chosen = np.ones(len(keys), dtype=bool) if j == len(fractions) - 1 else keys < round(fraction * 2**62)
        sizes.append(int(chosen.sum()))
        fids.append(exact_frechet(real_features, fake_features[chosen]))
    _slope, intercept = np.polyfit(1.0 / np.array(sizes, dtype=np.float64), np.array(fids), 1)
    return sizes, fids, float(intercept)


def test_equals_the_fit_over_the_same_subsets_in_float64(rng):
    real, fake = _images(rng, 300), _images(rng, 400, high=190)
    metric = _metric(seed=7)
    metric.update(real, real=True)
    for chunk in fake.split(37):
        metric.update(chunk, real=False)
    sizes, fids, intercept = reference(real, fake, metric.fractions(), seed=7)
    counts, distances = metric.fid_curve()
    assert counts.tolist() == sizes
    np.testing.assert_allclose(distances.numpy(), fids, rtol=1e-9)
    assert float(metric.compute()) == pytest.approx(intercept, rel=1e-9)
    assert float(metric.fid()) == pytest.approx(fids[-1], rel=1e-9)
    assert sizes[0] < sizes[-1] == 400  # nested subsets of different sizes: a fit that means something


def test_sample_ids_choose_the_subsets(rng):
    real, fake = _images(rng, 100), _images(rng, 200, high=190)
    ids = torch.from_numpy(rng.permutation(10_000)[:200].astype(np.int64))
    metric = _metric()
    metric.update(real, real=True)
    metric.update(fake, real=False, sample_ids=ids)
    keys = sample_keys(ids.reshape(-1, 1), 0)
    expected_first = int((keys < round(0.3 * 2**62)).sum())
    assert int(metric.fid_curve()[0][0]) == expected_first


def test_batching_and_merging_give_the_same_value(rng):
    real, fake = _images(rng, 150), _images(rng, 260, high=190)
    whole, a, b = _metric(), _metric(), _metric()
    whole.update(real, real=True)
    whole.update(fake, real=False)
    a.update(real[:100], real=True)
    a.update(fake[:90], real=False)
    b.update(real[100:], real=True)
    for chunk in fake[90:].split(41):
        b.update(chunk, real=False)
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(whole.compute()), rel=1e-9)


def test_too_few_samples_say_how_many_are_needed(rng):
    metric = _metric(min_fraction=0.1)
    metric.update(_images(rng, 30), real=True)
    metric.update(_images(rng, 5), real=False)
    with pytest.raises(RuntimeError, match=r"smallest subset .* give it some 21 or more"):
        metric.compute()


def test_reset_clears_the_subsets_but_can_keep_the_real_side(rng):
    metric = _metric(reset_real_features=False)
    real = _images(rng, 80)
    metric.update(real, real=True)
    metric.update(_images(rng, 100, high=190), real=False)
    metric.compute()
    metric.reset()
    assert int(metric.band_n.sum()) == 0
    fake = _images(rng, 120, high=150)
    metric.update(fake, real=False)
    assert float(metric.compute()) == pytest.approx(reference(real, fake, metric.fractions(), 0)[2], rel=1e-9)


def test_compute_keeps_the_gaussians_of_all_the_samples(rng):
    metric = _metric(points=4, min_fraction=0.5)
    metric.update(_images(rng, 40), real=True)
    metric.update(_images(rng, 60, high=190), real=False)
    assert metric.computed_gaussians() is None
    metric.compute()
    # Exactly what `gaussians()` gives (the generated side's own moments, not the merged bands).
    for got, expected in zip(metric.computed_gaussians(), metric.gaussians(), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    metric.update(_images(rng, 4, high=190), real=False)
    assert metric.computed_gaussians() is None
    metric.fid_curve()  # not a compute: keeps nothing
    assert metric.computed_gaussians() is None
    metric.compute()
    assert metric.computed_gaussians() is not None
    metric.reset()
    assert metric.computed_gaussians() is None


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="points"):
        _metric(points=1)
    with pytest.raises(ValueError, match="min_fraction"):
        _metric(min_fraction=1.0)
    with pytest.raises(ValueError, match="min_fraction"):
        _metric(min_fraction=0)


def _data(seed):
    rng = np.random.default_rng(seed)
    return _images(rng, 160), _images(rng, 240, high=190)


def _rank_main(rank: int, world_size: int, seed: int) -> dict[str, object]:
    real, fake = _data(seed)
    metric = _metric()
    # Uneven shards: 70/30 of the real images, 100/0 of the generated ones.
    for chunk in (real[:112] if rank == 0 else real[112:]).split(29):
        metric.update(chunk, real=True)
    if rank == 0:
        for chunk in fake.split(50):
            metric.update(chunk, real=False)
    syncs = []
    original = FrechetInceptionDistanceInfinity._sync_states

    def counting(self: FrechetInceptionDistanceInfinity, *args: object) -> None:
        syncs.append(1)
        original(self, *args)

    FrechetInceptionDistanceInfinity._sync_states = counting  # type: ignore[method-assign]
    # The callback's compute then its PCA figure: the figure uses the Gaussians the compute measured.
    plug = MetricPlug("fd_infinity", metric)
    generation = Generation([plug], None, (0.0, 1.0), 0, lambda trainer: True)
    value = float(plug.compute()["fd_infinity"])
    projection = generation._projection(SimpleNamespace(trainer=SimpleNamespace(is_global_zero=rank == 0)))
    return {
        "value": value,
        "syncs": len(syncs),
        "computed": [tensor.clone() for tensor in metric.computed_gaussians()],
        "projection": None if projection is None else projection.fake_mean,
    }


@pytest.mark.ddp
def test_two_processes_give_the_one_process_value():
    seed = fresh_seed()
    results = run_distributed(_rank_main, world_size=2, timeout=240, seed=seed)
    real, fake = _data(seed)
    metric = _metric()
    metric.update(real, real=True)
    metric.update(fake, real=False)
    expected = float(metric.compute())
    gaussians = metric.gaussians()
    for rank, result in enumerate(results):
        assert result["value"] == pytest.approx(expected, rel=1e-8), f"rank {rank}"
        assert result["syncs"] == 1, f"rank {rank}"
        for got, want in zip(result["computed"], gaussians, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert results[1]["projection"] is None
    projected = figures.pca_projection(*results[0]["computed"]).fake_mean
    torch.testing.assert_close(results[0]["projection"], projected, rtol=0, atol=0)
