"""Two real gloo processes: SSIM, MS-SSIM, PSNR and LPIPS from uneven shards give the one-process values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_genmetrics.metrics.lpips import LearnedPerceptualImagePatchSimilarity
from lightning_genmetrics.metrics.psnr import PeakSignalNoiseRatio
from lightning_genmetrics.metrics.ssim import (
    MultiScaleStructuralSimilarityIndexMeasure,
    StructuralSimilarityIndexMeasure,
)
from tests.contract import same_state, state_snapshot
from tests.ddp.harness import count_all_gathers, run_distributed
from tests.helpers import fresh_seed, seeded_lpips_state

pytestmark = pytest.mark.ddp


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    target = rng.random((21, 3, 44, 46))
    preds = np.clip(target + 0.15 * rng.standard_normal(target.shape), 0, 1)
    return torch.from_numpy(preds).float(), torch.from_numpy(target).float()


def _metrics() -> dict[str, torch.nn.Module]:
    lpips = LearnedPerceptualImagePatchSimilarity("squeeze", normalize=True, pretrained=False)
    lpips.network.load_state_dict(seeded_lpips_state("squeeze", seed=5))
    return {
        "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        "ms_ssim": MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, betas=(0.3, 0.3, 0.4)),
        "psnr_image": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
        "psnr_pixel": PeakSignalNoiseRatio(data_range=1.0),
        "lpips": lpips,
        "ssim_one_rank": StructuralSimilarityIndexMeasure(data_range=1.0, border="symmetric"),
    }


def _feed(metrics: dict, preds: torch.Tensor, target: torch.Tensor, rank: int | None) -> None:
    """``rank=None`` feeds everything; else rank 0 takes the first 15 pairs and rank 1 the last 6.

    ``ssim_one_rank`` sees data on rank 0 only.
    """
    if rank is not None:
        preds, target = (preds[:15], target[:15]) if rank == 0 else (preds[15:], target[15:])
    for name, metric in metrics.items():
        if name == "ssim_one_rank" and rank == 1:
            continue
        for p, t in zip(preds.split(4), target.split(4), strict=True):
            metric.update(p, t)


def _rank_main(rank: int, world_size: int, seed: int) -> dict:
    metrics = _metrics()
    _feed(metrics, *_data(seed), rank)
    local = {name: state_snapshot(metric) for name, metric in metrics.items()}
    with count_all_gathers() as gathers:
        values = {name: metric.compute() for name, metric in metrics.items()}
    restored = all(same_state(metrics[name], snapshot) for name, snapshot in local.items())
    return {"values": values, "gathers": len(gathers), "local_state_restored": restored}


def test_two_processes_give_the_one_process_values():
    seed = fresh_seed()
    results = run_distributed(_rank_main, world_size=2, timeout=180, seed=seed)

    metrics = _metrics()
    _feed(metrics, *_data(seed), None)
    expected = {name: metric.compute() for name, metric in metrics.items()}
    # ssim_one_rank only ever saw rank 0's pairs, the first 15.
    only_rank0 = {"ssim_one_rank": StructuralSimilarityIndexMeasure(data_range=1.0, border="symmetric")}
    _feed(only_rank0, *(x[:15] for x in _data(seed)), None)
    expected["ssim_one_rank"] = only_rank0["ssim_one_rank"].compute()
    for rank, result in enumerate(results):
        assert result["gathers"] == 0, "sum states must be all-reduced, not gathered"
        assert result["local_state_restored"], "compute() must leave each rank's local state as it was"
        for name, value in expected.items():
            # LPIPS runs a float32 network: each rank's batches (and thread count) may change the last bits of
            # its features, so it gets float32 rounding; the sums themselves merge exactly.
            rtol = 1e-6 if name == "lpips" else 1e-12
            torch.testing.assert_close(result["values"][name], value, rtol=rtol, atol=0, msg=f"{name} on rank {rank}")


def _kept_metrics() -> dict[str, torch.nn.Module]:
    lpips = LearnedPerceptualImagePatchSimilarity("squeeze", "none", True, pretrained=False)
    lpips.network.load_state_dict(seeded_lpips_state("squeeze", seed=5))
    return {
        "psnr_none": PeakSignalNoiseRatio(1.0, reduction="none", dim=(1, 2, 3)),
        "psnr_none_one_rank": PeakSignalNoiseRatio(1.0, reduction="none", dim=1),
        "lpips_none": lpips,
    }


def _kept_rank_main(rank: int, world_size: int, seed: int) -> dict:
    """Rank 0 takes the first 15 pairs, rank 1 the last 6 (``psnr_none_one_rank``: rank 0 only)."""
    torch.set_num_threads(1)  # two processes share the cores
    preds, target = _data(seed)
    metrics = _kept_metrics()
    shard = slice(0, 15) if rank == 0 else slice(15, None)
    for name, metric in metrics.items():
        if name == "psnr_none_one_rank" and rank == 1:
            continue
        for p, t in zip(preds[shard].split(4), target[shard].split(4), strict=True):
            metric.update(p, t)
    values = {name: metric.compute() for name, metric in metrics.items()}
    local = {name: len(torch.cat(metric.values)) for name, metric in metrics.items() if metric.values}
    return {"values": values, "local": local}


def test_two_processes_gather_every_value_of_reduction_none_in_rank_order():
    """``reduction="none"`` keeps one value per slice: gathered (uneven shards, one rank empty), rank 0's first."""
    seed = fresh_seed()
    results = run_distributed(_kept_rank_main, world_size=2, timeout=180, seed=seed)
    preds, target = _data(seed)
    expected = {}
    for name, metric in _kept_metrics().items():
        # The ranks' batches, in rank order: LPIPS's float32 network rounds differently in other batches, and
        # the test is of the gather, not of that rounding.
        shards = [slice(0, 15)] if name == "psnr_none_one_rank" else [slice(0, 15), slice(15, None)]
        for shard in shards:
            for p, t in zip(preds[shard].split(4), target[shard].split(4), strict=True):
                metric.update(p, t)
        expected[name] = metric.compute()
    for rank, result in enumerate(results):
        assert result["local"]["psnr_none"] == (15 if rank == 0 else 6), "compute() must keep the local values"
        for name, value in expected.items():
            rtol = 1e-6 if name == "lpips_none" else 1e-12
            torch.testing.assert_close(result["values"][name], value, rtol=rtol, atol=0, msg=f"{name} on rank {rank}")
