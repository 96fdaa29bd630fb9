"""Two real gloo processes on CPU: every metric gives the one-process value from uneven shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_genmetrics import FrechetDistance, FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from tests.contract import same_state, state_snapshot
from tests.ddp.harness import count_all_gathers, record_all_reduces, run_distributed
from tests.helpers import TinyFeatureNet, fresh_seed

pytestmark = pytest.mark.ddp

D = 12


def _data(seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((D, D))
    return {
        "real_features": torch.from_numpy(1e3 + rng.standard_normal((1000, D)) @ mixing),
        "fake_features": torch.from_numpy(1e3 + 0.3 + rng.standard_normal((400, D)) @ mixing * 1.1),
        "real_images": torch.from_numpy(rng.integers(0, 256, (260, 3, 10, 10), dtype=np.uint8)),
        "fake_images": torch.from_numpy(rng.integers(0, 200, (190, 3, 10, 10), dtype=np.uint8)),
    }


def _shard(x: torch.Tensor, rank: int, fraction: float) -> torch.Tensor:
    """Rank 0 takes the first ``fraction`` of the rows, rank 1 the rest (uneven by design)."""
    cut = round(fraction * x.shape[0])
    return x[:cut] if rank == 0 else x[cut:]


def _metrics() -> dict[str, torch.nn.Module]:
    net = TinyFeatureNet(num_features=8, seed=3)
    return {
        "fd": FrechetDistance(D),
        "fd_lazy": FrechetDistance(),
        "fid": FrechetInceptionDistance(net, feature_input="float"),
        "is": InceptionScore(net, splits=4, feature_input="float"),
        "kid_exact": KernelInceptionDistance(net, subsets=6, subset_size=50, max_samples=None, feature_input="float"),
        "kid_reservoir": KernelInceptionDistance(net, subsets=6, subset_size=50, max_samples=80, feature_input="float"),
    }


def _feed(metrics: dict, data: dict, rank: int | None) -> None:
    """Feed this rank's shard; ``rank=None`` feeds both shards into one process (the reference).

    The reference sees the same batches as the ranks, so the float32 feature extractor gives
    bit-identical features (its last bits depend on the batch it runs in) and the comparison
    tests the merge of the statistics alone. Shards: features 70/30 on the real side, and the whole
    generated side on rank 0 only; images 65/35 and 100/0; ``fd_lazy`` gets nothing on rank 1.
    """
    if rank is None:
        for each in (0, 1):
            _feed(metrics, data, each)
        return

    def part(x: torch.Tensor, fraction: float) -> torch.Tensor:
        return _shard(x, rank, fraction)

    for chunk in part(data["real_features"], 0.7).split(97):
        metrics["fd"].update(chunk, real=True)
    for chunk in part(data["fake_features"], 1.0).split(55):
        metrics["fd"].update(chunk, real=False)
    if rank == 0:
        metrics["fd_lazy"].update(data["real_features"][:300], real=True)
        metrics["fd_lazy"].update(data["fake_features"][:200], real=False)
    for name in ("fid", "kid_exact", "kid_reservoir"):
        for chunk in part(data["real_images"], 0.65).split(40):
            metrics[name].update(chunk, real=True)
        for chunk in part(data["fake_images"], 1.0).split(33):
            metrics[name].update(chunk, real=False)
    for chunk in part(data["fake_images"], 0.35).split(29):
        metrics["is"].update(chunk)


def _values(metrics: dict) -> dict[str, torch.Tensor]:
    out = {}
    for name, metric in metrics.items():
        value = metric.compute()
        out[name] = torch.stack(value) if isinstance(value, tuple) else value
    return out


def _statistics(metrics: dict) -> dict[str, torch.Tensor]:
    """The merged Gaussian statistics themselves: what the all-reduce must reproduce to rounding."""
    out = {}
    for name in ("fd", "fid"):
        real = metrics[name].real_statistics()
        out[f"{name}_real_mu"], out[f"{name}_real_sigma"] = real.mu, real.sigma
    return out


# The statistics merge to float64 rounding (1e-12 here). A Fréchet distance of two close Gaussians with
# ill-conditioned covariances (the random mixing below) amplifies that rounding by orders of magnitude:
# even one process feeding the data in other batches moves it by ~1e-10, so the distances are compared
# at the accuracy the metric promises against the exact reference, 1e-8.
TOLERANCES = {"fd": 1e-8, "fd_lazy": 1e-8, "fid": 1e-8}


def _rank_main(rank: int, world_size: int, seed: int) -> dict:
    metrics = _metrics()
    _feed(metrics, _data(seed), rank)
    local = {name: state_snapshot(metric) for name, metric in metrics.items()}

    with count_all_gathers() as gathers:
        sum_state_values = _values({k: metrics[k] for k in ("fd", "fd_lazy", "fid", "is")})
    sum_state_gathers = len(gathers)
    values = {**sum_state_values, **_values({k: metrics[k] for k in ("kid_exact", "kid_reservoir")})}
    values.update(_statistics(metrics))

    restored = all(same_state(metrics[name], snapshot) for name, snapshot in local.items())
    return {"values": values, "sum_state_gathers": sum_state_gathers, "local_state_restored": restored}


def test_two_processes_give_the_one_process_values():
    seed = fresh_seed()
    results = run_distributed(_rank_main, world_size=2, timeout=240, seed=seed)

    metrics = _metrics()
    _feed(metrics, _data(seed), None)
    expected = _values(metrics)
    expected.update(_statistics(metrics))

    for rank, result in enumerate(results):
        assert result["sum_state_gathers"] == 0, "sum states must be all-reduced, not gathered"
        assert result["local_state_restored"], "compute() must leave each rank's local state as it was"
        for name, value in expected.items():
            rtol = TOLERANCES.get(name, 1e-12)
            atol = 1e-12 * max(1.0, float(value.abs().max()))  # entries near 0 of a matrix: rounding of its scale
            torch.testing.assert_close(
                result["values"][name], value, rtol=rtol, atol=atol, msg=f"{name} on rank {rank}"
            )
    assert int(metrics["kid_reservoir"].real_features.shape[0]) == 80  # the reservoir really was full


def _reference_rank_main(rank: int, world_size: int, seed: int) -> dict:
    # As the callback does: the real side accumulated over the ranks, fixed as reference statistics, then each
    # evaluation's generated side (uneven: rank 1 has none).
    data = _data(seed)
    metric = FrechetDistance(D, reset_real_features=False)  # the callback's: reset() keeps the real state
    metric.update(_shard(data["real_features"], rank, 0.7), real=True)
    statistics = metric.real_statistics()
    metric.load_real_statistics(statistics)
    values = []
    with record_all_reduces() as sizes:
        for evaluation in range(2):
            metric.reset()
            metric.update(
                _shard(data["fake_features"][evaluation * 200 : (evaluation + 1) * 200], rank, 1.0), real=False
            )
            values.append(metric.compute())
    return {"values": torch.stack(values), "sizes": sizes}


def test_loaded_reference_statistics_are_not_synchronised_again():
    seed = fresh_seed()
    results = run_distributed(_reference_rank_main, world_size=2, timeout=240, seed=seed)
    data = _data(seed)
    expected = []
    for evaluation in range(2):
        metric = FrechetDistance(D)
        metric.update(data["real_features"], real=True)
        metric.update(data["fake_features"][evaluation * 200 : (evaluation + 1) * 200], real=False)
        expected.append(metric.compute())
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["values"], torch.stack(expected), rtol=1e-8, atol=0, msg=f"rank {rank}")
        # One covariance-sized all-reduce per compute: the generated side's. The real one is not sent again.
        assert sum(size >= D * D for size in result["sizes"]) == 2, result["sizes"]
