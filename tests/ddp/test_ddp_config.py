"""Two gloo processes: ranks whose metrics were built with different arguments raise a Python error, all of them.

Without the configuration check these cases abort the process inside gloo or hang until the process-group
timeout; here every rank must raise the same ``ValueError`` naming the class, the argument and both values,
leave its local state as it was, and carry on (later collectives in the same processes still match).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score

from lightning_genmetrics import InceptionScore, KernelInceptionDistance
from lightning_genmetrics.metrics.auroc import AUROC
from lightning_genmetrics.metrics.lpips import LearnedPerceptualImagePatchSimilarity
from lightning_genmetrics.metrics.segmentation import SegmentationMetrics
from tests.contract import same_state, state_snapshot
from tests.ddp.harness import run_distributed
from tests.helpers import TinyFeatureNet, fresh_seed

pytestmark = pytest.mark.ddp


def _data(seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    return {
        "label_maps": torch.from_numpy(rng.integers(0, 5, (6, 7, 8))),
        "scores": torch.from_numpy(np.round(1 / (1 + np.exp(-(rng.standard_normal(300) + labels))), 2)),
        "labels": torch.from_numpy(labels),
        "probs": torch.from_numpy(rng.dirichlet(np.ones(3), 90)),
        "classes": torch.from_numpy(rng.integers(0, 3, 90)),
        "images": torch.from_numpy(rng.random((24, 3, 8, 8))).float(),
    }


def _half(x: torch.Tensor, rank: int) -> torch.Tensor:
    cut = round(0.6 * x.shape[0])
    return x[:cut] if rank == 0 else x[cut:]


def _mismatch_cases(rank: int, data: dict, group: Any) -> dict[tuple[str, str], tuple[Any, Callable[[Any], Any]]]:
    """Expected error -> (a metric built with a rank-dependent argument and fed this rank's data, how to sync it).

    The expected error is the class and the argument with both ranks' values; arguments derived from it may be
    named too (the message names every public setting that differs).

    The syncs cover every path: ``compute()``, torchmetrics' ``sync()`` and ``_sync_dist``, with the
    default group, a ``process_group`` given to the constructor and one given to the call.
    """
    net = TinyFeatureNet(num_features=6, seed=1)
    seg = SegmentationMetrics(6 if rank == 0 else 5, process_group=group)
    seg.update(_half(data["label_maps"], rank), _half(data["label_maps"], rank))
    binned = AUROC("binary", num_bins=101 if rank == 0 else 50)
    binned.update(_half(data["scores"], rank), _half(data["labels"], rank))
    exact_or_binned = AUROC("multiclass", None if rank == 0 else "binned", 3, num_bins=2001 if rank == 0 else 100)
    exact_or_binned.update(_half(data["probs"], rank), _half(data["classes"], rank))
    inception = InceptionScore(net, splits=10 if rank == 0 else 5, input_range=(0, 1))
    if rank == 0:  # rank 1 has seen nothing: its class count is still unknown
        inception.update(data["images"])
    kid = KernelInceptionDistance(net, subsets=2, subset_size=4, degree=3 if rank == 0 else 2, input_range=(0, 1))
    kid.update(_half(data["images"], rank), real=True)
    kid.update(_half(data["images"], rank), real=False)
    return {
        ("SegmentationMetrics", "`num_classes`: 6 on rank 0, 5 on rank 1"): (seg, lambda m: m.compute()),
        ("AUROC", "`num_bins`: 101 on rank 0, 50 on rank 1"): (binned, lambda m: m._sync_dist(process_group=group)),
        ("AUROC", "`num_bins`: None on rank 0, 100 on rank 1"): (exact_or_binned, lambda m: m.compute()),
        ("InceptionScore", "`splits`: 10 on rank 0, 5 on rank 1"): (inception, lambda m: m.compute()),
        ("KernelInceptionDistance", "`degree`: 3 on rank 0, 2 on rank 1"): (kid, lambda m: m.sync()),
    }


@contextmanager
def _count_all_reduces() -> Iterator[list[int]]:
    calls: list[int] = []
    original = dist.all_reduce

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    dist.all_reduce = counting
    try:
        yield calls
    finally:
        dist.all_reduce = original


def _rank_main(rank: int, world_size: int, seed: int) -> dict:
    data = _data(seed)
    group = dist.new_group(list(range(world_size)))
    singletons = [dist.new_group([r]) for r in range(world_size)]  # every rank creates every group, in order

    errors: dict[tuple[str, str], str | None] = {}
    restored: dict[tuple[str, str], bool] = {}
    for expected, (metric, sync) in _mismatch_cases(rank, data, group).items():
        before = state_snapshot(metric)
        try:
            sync(metric)
            errors[expected] = None
        except ValueError as error:  # anything else (a gloo error, a timeout) fails the test
            errors[expected] = str(error)
        restored[expected] = not metric._is_synced and same_state(metric, before)

    # A check on a group of one rank costs nothing and finds nothing to disagree with.
    alone = SegmentationMetrics(3 + rank)
    with _count_all_reduces() as alone_calls:
        alone.sync(process_group=singletons[rank])
    alone.unsync()
    # Matching configurations: one all-reduce for the check, one for the confusion matrix.
    matching = SegmentationMetrics(5)
    matching.update(_half(data["label_maps"], rank), _half(data["label_maps"], rank))
    with _count_all_reduces() as matching_calls:
        matching.sync()
    matching.unsync()

    # The ranks still work together after the errors: an exact AUROC split 60/40, and a lazily sized
    # InceptionScore that only rank 0 fed (rank 1 is empty).
    auroc = AUROC("binary", thresholds=None)
    auroc.update(_half(data["scores"], rank), _half(data["labels"], rank))
    inception = InceptionScore(TinyFeatureNet(num_features=6, seed=1), splits=3, input_range=(0, 1))
    if rank == 0:
        inception.update(data["images"])
    return {
        "errors": errors,
        "restored": restored,
        "alone_all_reduces": len(alone_calls),
        "matching_all_reduces": len(matching_calls),
        "auroc": auroc.compute(),
        "inception": torch.stack(inception.compute()),
    }


def test_mismatched_configurations_raise_on_every_rank_and_matching_ones_still_merge():
    seed = fresh_seed()
    # A hang would be killed at the timeout and a gloo abort would end a process: both fail here.
    results = run_distributed(_rank_main, world_size=2, timeout=150, seed=seed)

    data = _data(seed)
    expected_auroc = roc_auc_score(data["labels"].numpy(), data["scores"].numpy())
    one_process = InceptionScore(TinyFeatureNet(num_features=6, seed=1), splits=3, input_range=(0, 1))
    one_process.update(data["images"])
    expected_inception = torch.stack(one_process.compute())
    for rank, result in enumerate(results):
        for expected, message in result["errors"].items():
            assert message is not None, f"rank {rank} did not raise: {expected}"
            owner, disagreement = expected
            assert message.startswith(f"{owner}: ranks disagree on "), f"rank {rank}: {message}"
            assert disagreement in message, f"rank {rank}: {message}"
            assert result["restored"][expected], f"rank {rank} changed its local state: {expected}"
        assert result["alone_all_reduces"] == 1, "a one-rank group must not run the check"
        assert result["matching_all_reduces"] == 2, "the check must cost one all-reduce"
        torch.testing.assert_close(result["auroc"].item(), float(expected_auroc), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(result["inception"], expected_inception, rtol=1e-12, atol=1e-14)


def test_configuration_holds_the_arguments_but_not_states_nor_torchmetrics_options():
    net = TinyFeatureNet(num_features=6, seed=1, declare=True)
    arguments = {"subsets": 3, "subset_size": 4, "degree": 2, "gamma": 0.5, "coef": 2.0, "max_samples": 9, "seed": 7}
    kid = KernelInceptionDistance(net, **arguments, input_range=(-1, 1))
    configuration = kid._configuration()
    assert configuration["class"] == "lightning_genmetrics.metrics.kid.KernelInceptionDistance"
    assert {name: configuration[name] for name in arguments} == arguments
    assert configuration["extractor.input_range"] == (-1.0, 1.0)
    assert "extractor.module.num_features" not in configuration, "a user's network is not the metric's configuration"

    # Per-process torchmetrics options and the (lazily sized) states may differ between ranks.
    other = KernelInceptionDistance(net, **arguments, input_range=(-1, 1), compute_on_cpu=True, sync_on_compute=False)
    other.update(torch.rand(5, 3, 8, 8) * 2 - 1, real=True)
    assert other._configuration() == configuration

    auroc_arguments = {"task": "multilabel", "num_labels": 3, "thresholds": None, "input": "logits", "average": "none"}
    auroc = AUROC(**auroc_arguments)._configuration()
    assert {name: auroc[name] for name in auroc_arguments} == auroc_arguments
    # The library's own modules inside a metric hold settings too.
    lpips = LearnedPerceptualImagePatchSimilarity("squeeze", normalize=True, pretrained=False)._configuration()
    assert (lpips["normalize"], lpips["network.net"]) == (True, "squeeze")
