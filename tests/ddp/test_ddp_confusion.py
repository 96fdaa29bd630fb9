"""Two gloo processes: segmentation and AUROC metrics give the one-process values from uneven shards (and
``MeanIoU`` torchmetrics' one-process value)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.segmentation import MeanIoU as TorchmetricsMeanIoU

from lightning_genmetrics.metrics.auroc import AUROC
from lightning_genmetrics.metrics.segmentation import MeanIoU, SegmentationMetrics
from tests.contract import same_state, state_snapshot
from tests.ddp.harness import count_all_gathers, run_distributed
from tests.helpers import fresh_seed

pytestmark = pytest.mark.ddp

SUM_STATE_METRICS = ("seg", "miou", "miou_classes_read", "auroc_binned", "auroc_multiclass")
# torchmetrics' MeanIoU arguments (num_classes, include_background, per_class, input_format): the same value expected.
MEAN_IOU_ARGUMENTS = {"miou": (6, True, False, "index"), "miou_classes_read": (None, False, True, "mixed")}


def _data(seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 6, (11, 9, 8))
    pred = np.where(rng.random(target.shape) < 0.5, target, rng.integers(0, 6, target.shape))
    target[rng.random(target.shape) < 0.1] = 255
    labels = rng.integers(0, 2, 700)
    scores = np.round(1 / (1 + np.exp(-(rng.standard_normal(700) + labels))), 2)  # ties
    classes = rng.integers(0, 4, 500)
    logits = rng.standard_normal((500, 4))
    logits[np.arange(500), classes] += 1.0
    seg_logits = rng.standard_normal((11, 6, 9, 8))
    seg_logits += 2.0 * (np.arange(6)[None, :, None, None] == pred[:, None])
    return {
        "seg_pred": torch.from_numpy(pred),
        "seg_target": torch.from_numpy(target),
        "seg_clean_target": torch.from_numpy(np.where(target == 255, pred, target)),
        "seg_logits": torch.from_numpy(seg_logits).float(),
        "scores": torch.from_numpy(scores),
        "labels": torch.from_numpy(labels),
        "logits": torch.from_numpy(logits),
        "classes": torch.from_numpy(classes),
        "multilabel_scores": torch.from_numpy(rng.random((300, 3))),
        "multilabel_target": torch.from_numpy(rng.integers(0, 2, (300, 3))),
    }


def _metrics() -> dict[str, torch.nn.Module]:
    return {
        "seg": SegmentationMetrics(6, ignore_index=255, per_image=True),
        **{name: MeanIoU(*arguments) for name, arguments in MEAN_IOU_ARGUMENTS.items()},
        "auroc_binned": AUROC("binary", num_bins=101),
        "auroc_multiclass": AUROC("multiclass", num_classes=4, num_bins=50, input="logits", average="weighted"),
        "auroc_exact": AUROC("binary", thresholds=None),
        "auroc_exact_multilabel": AUROC("multilabel", None, num_labels=3, average="none"),
    }


def _feed(metrics: dict, data: dict, rank: int | None) -> None:
    """``rank=None`` feeds everything; else rank 0 takes the first ``fraction`` of the rows, rank 1 the rest.

    Shards: label maps 8/3 images, binary scores 60/40, logits 70/30; the binned binary AUROC, the
    exact multilabel AUROC and the MeanIoU that reads its number of classes get nothing on rank 1.
    """

    def part(x: torch.Tensor, fraction: float) -> torch.Tensor:
        cut = round(fraction * x.shape[0])
        return x if rank is None else (x[:cut] if rank == 0 else x[cut:])

    for p, t in zip(part(data["seg_pred"], 8 / 11).split(3), part(data["seg_target"], 8 / 11).split(3), strict=True):
        metrics["seg"].update(p, t)
    for p, t in zip(
        part(data["seg_pred"], 8 / 11).split(3), part(data["seg_clean_target"], 8 / 11).split(3), strict=True
    ):
        metrics["miou"].update(p, t)
    for p, t in zip(part(data["seg_logits"], 1.0).split(4), part(data["seg_clean_target"], 1.0).split(4), strict=True):
        metrics["miou_classes_read"].update(p, t)
    for p, t in zip(part(data["scores"], 1.0).split(97), part(data["labels"], 1.0).split(97), strict=True):
        metrics["auroc_binned"].update(p, t)
    for p, t in zip(part(data["scores"], 0.6).split(80), part(data["labels"], 0.6).split(80), strict=True):
        metrics["auroc_exact"].update(p, t)
    for p, t in zip(part(data["logits"], 0.7).split(64), part(data["classes"], 0.7).split(64), strict=True):
        metrics["auroc_multiclass"].update(p, t)
    scores, target = part(data["multilabel_scores"], 1.0), part(data["multilabel_target"], 1.0)
    if scores.shape[0]:
        metrics["auroc_exact_multilabel"].update(scores, target)


def _values(metrics: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, metric in metrics.items():
        out[name] = metric.compute()
        if name.startswith("auroc"):
            out[f"{name}.roc"] = metric.roc()
            out[f"{name}.at_threshold"] = metric.at_threshold(0.5)
    return out


def _rank_main(rank: int, world_size: int, seed: int) -> dict:
    metrics = _metrics()
    _feed(metrics, _data(seed), rank)
    local = {name: state_snapshot(metric) for name, metric in metrics.items()}

    with count_all_gathers() as gathers:
        sum_state_values = _values({name: metrics[name] for name in SUM_STATE_METRICS})
    sum_state_gathers = len(gathers)
    values = {**sum_state_values, **_values({k: m for k, m in metrics.items() if k not in SUM_STATE_METRICS})}
    restored = all(same_state(metrics[name], snapshot) for name, snapshot in local.items())
    return {"values": values, "sum_state_gathers": sum_state_gathers, "local_state_restored": restored}


def test_two_processes_give_the_one_process_values():
    seed = fresh_seed()
    results = run_distributed(_rank_main, world_size=2, timeout=240, seed=seed)

    metrics = _metrics()
    _feed(metrics, _data(seed), None)
    expected = _values(metrics)
    references = {name: TorchmetricsMeanIoU(*arguments) for name, arguments in MEAN_IOU_ARGUMENTS.items()}
    _feed({**_metrics(), **references}, _data(seed), None)
    for name, reference in references.items():
        torch.testing.assert_close(expected[name], reference.compute().double(), rtol=0, atol=1e-6, msg=name)

    for rank, result in enumerate(results):
        assert result["sum_state_gathers"] == 0, "sum states must be all-reduced, not gathered"
        assert result["local_state_restored"], (
            "compute(), roc() and at_threshold() must leave the local state as it was"
        )
        for name, value in expected.items():
            torch.testing.assert_close(
                result["values"][name], value, rtol=1e-12, atol=1e-14, equal_nan=True, msg=f"{name} on rank {rank}"
            )
