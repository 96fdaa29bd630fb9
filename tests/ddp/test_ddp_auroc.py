"""Two gloo processes: the confident-classifier AUROC paths give the one-process values from uneven shards.

``ClassFidelity``'s exact AUROC (kept scores, gathered) equals scikit-learn's; its binned AUROC and the
default ``"linear+logit"`` histograms (binary and multilabel logits binned on the log-odds axis) are
all-reduced (no gather) and equal the one-process values and error bounds. In the same processes, the options
torchmetrics users pass (``max_fpr``, ``ignore_index``, explicit ``thresholds``, extra dimensions, micro average),
sharded 70/30 or all on rank 0, give the one-process value and torchmetrics' one-process value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torchmetrics.classification import BinaryAUROC as TMBinaryAUROC
from torchmetrics.classification import MulticlassAUROC as TMMulticlassAUROC
from torchmetrics.classification import MultilabelAUROC as TMMultilabelAUROC

from lightning_genmetrics.callbacks.conditional import ClassFidelity
from lightning_genmetrics.metrics.auroc import AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC
from tests.ddp.harness import count_all_gathers, run_distributed
from tests.helpers import fresh_seed

pytestmark = pytest.mark.ddp

NUM_CLASSES = 6


class PrototypeClassifier(nn.Module):
    """Logits ``20·(x·p_c - |p_c|²/2)`` (float64): the nearest of seeded class prototypes, very confidently."""

    def __init__(self) -> None:
        super().__init__()
        prototypes = torch.rand(NUM_CLASSES, 48, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
        self.linear = nn.Linear(48, NUM_CLASSES, dtype=torch.float64)
        with torch.no_grad():
            self.linear.weight.copy_(20 * prototypes)
            self.linear.bias.copy_(-10 * (prototypes**2).sum(dim=1))
        self.prototypes = prototypes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


def _data(seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, 900))
    noisy = PrototypeClassifier().prototypes[labels] + 1.2 * torch.from_numpy(rng.standard_normal((900, 48)))
    binary_target = rng.integers(0, 2, 1200)
    multilabel_target = rng.integers(0, 2, (500, 3))
    return {
        "images": (noisy.clamp(0, 1) * 255).round().to(torch.uint8).reshape(900, 3, 4, 4),
        "labels": labels,
        "binary_logits": torch.from_numpy(60 * (rng.standard_normal(1200) + binary_target)),
        "binary_target": torch.from_numpy(binary_target),
        "multilabel_logits": torch.from_numpy(20 * (rng.standard_normal((500, 3)) + multilabel_target)),
        "multilabel_target": torch.from_numpy(multilabel_target),
    }


def _modules() -> dict[str, nn.Module]:
    return {
        "fidelity_exact": ClassFidelity(PrototypeClassifier(), NUM_CLASSES, (0.0, 1.0)),
        "fidelity_binned": ClassFidelity(PrototypeClassifier(), NUM_CLASSES, (0.0, 1.0), auroc_bins=2001),
        "binary_logits": AUROC("binary", input="logits"),
        "multilabel_logits": AUROC("multilabel", num_labels=3, input="logits", average="none"),
    }


def _feed(modules: dict, data: dict, rank: int | None) -> None:
    """``rank=None`` feeds everything; else rank 0 takes the first 60 % of the rows (the multilabel ones: all)."""

    def part(x: torch.Tensor, fraction: float) -> torch.Tensor:
        cut = round(fraction * x.shape[0])
        return x if rank is None else (x[:cut] if rank == 0 else x[cut:])

    for name in ("fidelity_exact", "fidelity_binned"):
        images, labels = part(data["images"], 0.6), part(data["labels"], 0.6)
        for chunk, chunk_labels in zip(images.split(128), labels.split(128), strict=True):
            modules[name].update(chunk, chunk_labels)
    for preds, target in zip(
        part(data["binary_logits"], 0.6).split(300), part(data["binary_target"], 0.6).split(300), strict=True
    ):
        modules["binary_logits"].update(preds, target)
    logits, target = part(data["multilabel_logits"], 1.0), part(data["multilabel_target"], 1.0)
    if logits.shape[0]:
        modules["multilabel_logits"].update(logits, target)


def _values(modules: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, module in modules.items():
        if isinstance(module, ClassFidelity):
            out[name] = module.compute()
        else:
            out[name] = module.compute()
            out[f"{name}.error_bound"] = module.error_bound()
            out[f"{name}.roc"] = module.roc()
    return out


def _option_metrics() -> dict:
    return {
        "exact, max_fpr, ignore_index": BinaryAUROC(0.4, None, -1),
        "thresholds list": BinaryAUROC(thresholds=[0.1, 0.3, 0.5, 0.7, 0.9], ignore_index=-1),
        "multiclass exact, extra dims": MulticlassAUROC(4, "weighted", None, -1),
        "multilabel binned, ignore_index": MultilabelAUROC(3, "none", ignore_index=-1),
        "multilabel int thresholds, micro (rank 1 empty)": MultilabelAUROC(3, "micro", 30, -1),
    }


TORCHMETRICS_OPTIONS = {
    "exact, max_fpr, ignore_index": lambda: TMBinaryAUROC(0.4, None, -1),
    "thresholds list": lambda: TMBinaryAUROC(thresholds=[0.1, 0.3, 0.5, 0.7, 0.9], ignore_index=-1),
    "multiclass exact, extra dims": lambda: TMMulticlassAUROC(4, "weighted", None, -1),
    "multilabel int thresholds, micro (rank 1 empty)": lambda: TMMultilabelAUROC(3, "micro", 30, -1),
}


def _option_data(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed + 1)
    binary_target = rng.integers(0, 2, 500)
    multilabel_target = rng.integers(0, 2, (300, 3))
    classes = rng.integers(0, 4, (90, 5))
    return {
        "binary": (
            torch.from_numpy((rng.standard_normal(500) + binary_target).astype(np.float32)),
            torch.from_numpy(np.where(rng.random(500) < 0.1, -1, binary_target)),
        ),
        "multiclass": (  # [N, C, 5] logits, [N, 5] targets
            torch.from_numpy(rng.standard_normal((90, 4, 5)) + 2 * np.moveaxis(np.eye(4)[classes], -1, 1)),
            torch.from_numpy(np.where(rng.random((90, 5)) < 0.1, -1, classes)),
        ),
        "multilabel": (
            torch.from_numpy(rng.random((300, 3)) * 0.6 + 0.4 * multilabel_target),
            torch.from_numpy(np.where(rng.random((300, 3)) < 0.1, -1, multilabel_target)),
        ),
    }


def _option_feed(metrics: dict, data: dict, rank: int | None) -> None:
    """``rank=None`` feeds everything; else rank 0 takes the first 70 % (the "rank 1 empty" metric: everything)."""
    for name, metric in metrics.items():
        preds, target = data[metric.task]
        cut = round((1.0 if "rank 1 empty" in name else 0.7) * preds.shape[0])
        if rank is not None:
            preds, target = (preds[:cut], target[:cut]) if rank == 0 else (preds[cut:], target[cut:])
        for p, t in zip(preds.split(64), target.split(64), strict=True):
            metric.update(p, t)


def _rank_main(rank: int, world_size: int, seed: int) -> dict:
    modules = _modules()
    _feed(modules, _data(seed), rank)
    binned = {name: module for name, module in modules.items() if name != "fidelity_exact"}
    with count_all_gathers() as gathers:
        values = _values(binned)
    values.update(_values({"fidelity_exact": modules["fidelity_exact"]}))
    options = _option_metrics()
    _option_feed(options, _option_data(seed), rank)
    return {
        "values": values,
        "binned_gathers": len(gathers),
        "options": {name: metric.compute() for name, metric in options.items()},
    }


def test_two_processes_give_the_one_process_values():
    seed = fresh_seed()
    results = run_distributed(_rank_main, world_size=2, timeout=240, seed=seed)

    data = _data(seed)
    modules = _modules()
    _feed(modules, data, None)
    expected = _values(modules)
    with torch.no_grad():
        logits = PrototypeClassifier()(data["images"].double() / 255)
    exact = roc_auc_score(data["labels"].numpy(), torch.softmax(logits, 1).numpy(), multi_class="ovr")
    assert expected["fidelity_exact"]["auroc"] == pytest.approx(exact, abs=1e-12)
    assert "auroc_error_bound" in expected["fidelity_binned"]

    for rank, result in enumerate(results):
        assert result["binned_gathers"] == 0, "histogram states must be all-reduced, not gathered"
        assert result["values"]["fidelity_exact"]["auroc"] == pytest.approx(exact, abs=1e-12), f"rank {rank}"
        for name, value in expected.items():
            torch.testing.assert_close(
                result["values"][name], value, rtol=1e-12, atol=1e-14, equal_nan=True, msg=f"{name} on rank {rank}"
            )

    option_data = _option_data(seed)
    options = _option_metrics()
    _option_feed(options, option_data, None)
    for name, metric in options.items():
        expected = metric.compute()
        if name in TORCHMETRICS_OPTIONS:  # the exact and explicit-threshold modes: torchmetrics' number
            reference = TORCHMETRICS_OPTIONS[name]()(*option_data[metric.task]).double()
            torch.testing.assert_close(expected, reference, rtol=0, atol=1e-6, msg=name)
        for rank, result in enumerate(results):
            torch.testing.assert_close(
                result["options"][name], expected, rtol=1e-12, atol=1e-14, msg=f"{name} on rank {rank}"
            )
