"""CMMD: the reference code's estimator in float64, batching, bounded reservoirs, caching, two gloo processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_genmetrics.functional.cmmd import cmmd, gaussian_kernel_sum
from lightning_genmetrics.functional.sampling import bottom_k, sample_keys
from lightning_genmetrics.metrics.cmmd import CLIPMaximumMeanDiscrepancy
from tests.ddp.harness import run_distributed
from tests.helpers import fresh_seed


def reference(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """The reference code's computation written out in float64: means over all pairs, diagonal included."""

    def kernel_mean(a: np.ndarray, b: np.ndarray) -> float:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return float(np.exp(-d2 / (2 * sigma**2)).mean())

    return scale * (kernel_mean(x, x) + kernel_mean(y, y) - 2 * kernel_mean(x, y))


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize(("sigma", "block_size"), [(10.0, 1024), (0.7, 9)])
def test_equals_the_reference_estimator_in_float64(rng, sigma, block_size):
    x = _unit(rng.standard_normal((int(rng.integers(20, 90)), 8)))
    y = _unit(rng.standard_normal((int(rng.integers(20, 90)), 8)) + 0.3)
    value = cmmd(torch.from_numpy(x), torch.from_numpy(y), sigma=sigma, block_size=block_size)
    expected = reference(x, y, sigma)
    assert abs(float(value) - expected) <= 1e-9 * max(1.0, abs(expected))
    assert expected > 1e-3  # the two sets differ: a value that tests something


def test_kernel_sum_equals_the_full_matrix(rng):
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((17, 5))
    expected = np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / 200.0).sum()
    assert float(gaussian_kernel_sum(torch.from_numpy(a), torch.from_numpy(b), block_size=4)) == pytest.approx(
        expected, rel=1e-13
    )


class FlatPixels(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1).float()


def _images(rng, n, high=256):
    return torch.from_numpy(rng.integers(0, high, (n, 3, 4, 4), dtype=np.uint8))


def _unit_features(images: torch.Tensor) -> np.ndarray:
    return _unit(images.reshape(images.shape[0], -1).double().numpy())


def _metric(**kwargs):
    return CLIPMaximumMeanDiscrepancy(FlatPixels(), **kwargs)


def test_metric_normalises_and_equals_the_reference_under_any_batching(rng):
    real, fake = _images(rng, 70), _images(rng, 50, high=128)
    one, split = _metric(), _metric()
    one.update(real, real=True)
    one.update(fake, real=False)
    for chunk in real.split(9):
        split.update(chunk, real=True)
    for chunk in fake.split(20):
        split.update(chunk, real=False)
    expected = reference(_unit_features(real), _unit_features(fake))
    assert float(one.compute()) == pytest.approx(expected, rel=1e-9)
    assert float(split.compute()) == float(one.compute())


def test_reservoir_is_bounded_and_is_the_smallest_keys(rng):
    real, fake = _images(rng, 150), _images(rng, 120, high=128)
    metric = _metric(max_samples=40, seed=2)
    for chunk in real.split(31):
        metric.update(chunk, real=True)
    metric.update(fake, real=False)
    assert metric.real_features.shape[0] == 40
    kept_real = real[bottom_k(sample_keys(real, 2), 40)]
    kept_fake = fake[bottom_k(sample_keys(fake, 2), 40)]
    expected = reference(_unit_features(kept_real), _unit_features(kept_fake))
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-9)


@pytest.fixture
def real_kernel_sums(monkeypatch) -> list[int]:
    """The sizes of the real sides whose real-real kernel CMMD sums, one entry per sum."""
    import lightning_genmetrics.metrics.cmmd as module

    calls = []
    original = module.gaussian_kernel_sum

    def counting(a, b, *args, **kwargs):
        if a is b:
            calls.append(a.shape[0])
        return original(a, b, *args, **kwargs)

    monkeypatch.setattr(module, "gaussian_kernel_sum", counting)
    return calls


def test_real_kernel_is_computed_once_per_real_side(rng, real_kernel_sums):
    calls = real_kernel_sums
    metric = _metric(reset_real_features=False)
    metric.update(_images(rng, 30), real=True)
    metric.update(_images(rng, 20), real=False)
    metric.compute()
    metric.reset()
    metric.update(_images(rng, 20), real=False)
    metric.compute()
    assert calls == [30]
    metric.update(_images(rng, 3), real=True)
    metric.compute()
    assert calls == [30, 33]


def test_loaded_reservoir_brings_its_real_kernel_mean(rng, tmp_path, real_kernel_sums):
    from lightning_genmetrics.stats import Provenance, load_artifact, save_artifact

    calls = real_kernel_sums
    real, fake = _images(rng, 30), _images(rng, 20, high=128)
    made = _metric(max_samples=25)
    made.update(real, real=True)
    reservoir = made.real_reservoir()
    assert calls == [25]  # summed once for the file, and not again by the metric that made it
    made.update(fake, real=False)
    expected = made.compute()
    assert calls == [25]
    assert reservoir["real_kernel_mean"].dtype == torch.float64
    assert float(reservoir["real_kernel_sigma"]) == 10.0
    assert bool(reservoir["real_kernel_normalized"])
    # Through the artifact the callback caches it in.
    path = save_artifact(tmp_path / "r.npz", reservoir, kind="cmmd", provenance=Provenance(num_samples=30))
    loaded_state = load_artifact(path, kind="cmmd").arrays
    loaded = _metric(max_samples=25)
    loaded.load_real_reservoir(loaded_state)
    loaded.update(fake, real=False)
    assert float(loaded.compute()) == float(expected)
    assert calls == [25]
    # Another bandwidth or normalisation than the file's: its mean is not used, the value is still right.
    for kwargs in ({"sigma": 3.0}, {"normalize_embeddings": False}):
        other, fresh = _metric(max_samples=25, **kwargs), _metric(max_samples=25, **kwargs)
        other.load_real_reservoir(loaded_state)
        fresh.update(real, real=True)
        for metric in (other, fresh):
            metric.update(fake, real=False)
        assert float(other.compute()) == float(fresh.compute())
    # An older reservoir without the mean still loads, and computes it once.
    calls.clear()
    older = _metric(max_samples=25)
    older.load_real_reservoir({name: reservoir[name] for name in ("n", "features", "keys")})
    older.update(fake, real=False)
    assert float(older.compute()) == float(expected)
    assert calls == [25]
    # Malformed means are refused, leaving the real side as it was.
    bad = {
        "partial": ({"real_kernel_sigma": None}, ValueError, "all or none"),
        "dtype": ({"real_kernel_mean": reservoir["real_kernel_mean"].float()}, TypeError, "float64"),
        "shape": ({"real_kernel_mean": reservoir["real_kernel_mean"].view(1)}, ValueError, "scalar"),
        "range": ({"real_kernel_mean": torch.tensor(1.5, dtype=torch.float64)}, ValueError, r"in \(0, 1\]"),
    }
    for edit, error, match in bad.values():
        state = {**reservoir, **edit}
        state = {name: value for name, value in state.items() if value is not None}
        with pytest.raises(error, match=match):
            older.load_real_reservoir(state)
    assert torch.equal(older.real_keys, reservoir["keys"])


def test_errors_name_the_problem(rng):
    with pytest.raises(TypeError, match="CLIP"):
        CLIPMaximumMeanDiscrepancy(2048)
    metric = _metric()
    metric.update(_images(rng, 5), real=True)
    with pytest.raises(RuntimeError, match="at least 1 generated sample"):
        metric.compute()
    metric.update(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), real=False)
    with pytest.raises(RuntimeError, match="zero embedding"):
        metric.compute()
    with pytest.raises(ValueError, match="sigma"):
        _metric(sigma=0.0)


def _data(seed):
    rng = np.random.default_rng(seed)
    return _images(rng, 110), _images(rng, 80, high=128)


def _rank_main(rank: int, world_size: int, seed: int) -> dict:
    real, fake = _data(seed)
    metrics = {"exact": _metric(max_samples=None), "bounded": _metric(max_samples=50)}
    for metric in metrics.values():
        for chunk in (real[:80] if rank == 0 else real[80:]).split(21):
            metric.update(chunk, real=True)
        if rank == 0:
            metric.update(fake, real=False)
    return {name: float(metric.compute()) for name, metric in metrics.items()}


@pytest.mark.ddp
def test_two_processes_give_the_one_process_values():
    seed = fresh_seed()
    results = run_distributed(_rank_main, world_size=2, timeout=240, seed=seed)
    real, fake = _data(seed)
    for name, max_samples in (("exact", None), ("bounded", 50)):
        metric = _metric(max_samples=max_samples)
        metric.update(real, real=True)
        metric.update(fake, real=False)
        expected = float(metric.compute())
        for rank, result in enumerate(results):
            # The same reservoir in the same key order: the same float64 sums, up to summation order of blocks.
            assert result[name] == pytest.approx(expected, rel=1e-12, abs=1e-12), f"{name} on rank {rank}"
