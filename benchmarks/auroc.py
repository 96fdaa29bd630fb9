"""Binned AUROC: accuracy on confident and unconfident classifiers, and update speed, against torchmetrics.

**Accuracy.** Seeded score families, confident (softmax or sigmoid of logits of scale 20–100, a logistic
regression on noisy scikit-learn digits) and not (logits of scale 1 and 0.1, uniform and narrow
probabilities), binary, multiclass (macro one-vs-rest) and multilabel (macro). For each, the exact AUROC
(scikit-learn's ``roc_auc_score`` of the float64 softmax, of binary and multilabel logits themselves, or of
the probabilities given) and the distance to it of:

- ours, the default ``AUROC(task, ...)``: 2001 thresholds, ``spacing="linear+logit"``, with its
  ``error_bound()``;
- ours with the previous default, ``num_bins=1000, spacing="linear"`` (torchmetrics' thresholds);
- torchmetrics (``BinaryAUROC``/``MulticlassAUROC``/``MultilabelAUROC``) with ``thresholds=1000`` and
  with ``thresholds=None`` (exact, but it ranks ``sigmoid(logits)``, whose float64 values tie at 1 beyond
  a logit of 36.7).

**Speed.** Binary update, N = 10⁶ float32 probabilities (scores of the positives shifted up, AUROC about
0.76): ours (default and ``"linear"``, 1000 thresholds: an O(N) bin lookup or an O(N log T) search, one
``bincount``) against torchmetrics' ``BinaryAUROC(thresholds=1000)`` (compares every score with every
threshold, O(N·T)). The torchmetrics update takes seconds, so it runs ``--anchor-repeats`` times (default
1) and ours ``--repeats`` times; medians are printed and their ratio.

Run: ``PYTHONPATH=. python benchmarks/auroc.py [--samples 1000000 --repeats 7 --seed 0]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchmetrics
from sklearn.metrics import roc_auc_score
from torchmetrics.classification import BinaryAUROC as TorchmetricsBinaryAUROC
from torchmetrics.classification import MulticlassAUROC as TorchmetricsMulticlassAUROC
from torchmetrics.classification import MultilabelAUROC as TorchmetricsMultilabelAUROC

from lightning_genmetrics.metrics.auroc import AUROC

Family = tuple[str, int | None, str, torch.Tensor, torch.Tensor]  # task, classes, input, preds, target


def multiclass(rng: np.random.Generator, n: int, classes: int, scale: float, signal: float, input: str) -> Family:
    target = rng.integers(0, classes, n)
    logits = rng.standard_normal((n, classes))
    logits[np.arange(n), target] += signal
    preds = torch.from_numpy(scale * logits)
    if input == "probs":  # a float32 softmax, as most classifiers hand it over
        preds = torch.softmax(preds.float(), dim=1)
    return "multiclass", classes, input, preds, torch.from_numpy(target)


def binary(rng: np.random.Generator, n: int, scale: float, input: str) -> Family:
    target = rng.integers(0, 2, n)
    logits = torch.from_numpy(scale * (rng.standard_normal(n) + target))
    preds = logits if input == "logits" else torch.sigmoid(logits)
    return "binary", None, "logits" if input == "logits" else "probs", preds, torch.from_numpy(target)


def multilabel(rng: np.random.Generator, n: int, labels: int, scale: float) -> Family:
    target = rng.integers(0, 2, (n, labels))
    logits = torch.from_numpy(scale * (rng.standard_normal((n, labels)) + target))
    return "multilabel", labels, "logits", logits, torch.from_numpy(target)


def probabilities(rng: np.random.Generator, n: int, kind: str) -> Family:
    target = rng.integers(0, 2, n)
    if kind == "uniform":
        scores = rng.random(n) * 0.8 + 0.2 * target
    else:  # every score within [0.45, 0.55]
        scores = 0.5 + 0.05 * np.tanh(rng.standard_normal(n) + 0.5 * target)
    return "binary", None, "probs", torch.from_numpy(scores), torch.from_numpy(target)


def noisy_digits(rng: np.random.Generator, noise: float) -> Family:
    """A confident classifier (logistic regression, hardly regularised) judging noisy 8×8 digits."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    images, labels = load_digits(return_X_y=True)
    images = images / 16.0
    order = rng.permutation(len(labels))
    train, test = order[:1000], order[1000:]
    classifier = LogisticRegression(C=1e4, max_iter=3000).fit(images[train], labels[train])
    shown = np.repeat(images[test], 6, axis=0) + noise * rng.standard_normal((6 * len(test), images.shape[1]))
    logits = torch.from_numpy(classifier.decision_function(shown))
    return "multiclass", 10, "logits", logits, torch.from_numpy(np.repeat(labels[test], 6))


def families(seed: int) -> dict[str, Callable[[], Family]]:
    rng = np.random.default_rng(seed)
    return {
        "10 classes, logits x20 (confident)": lambda: multiclass(rng, 5000, 10, 20.0, 1.0, "logits"),
        "10 classes, float32 softmax x20": lambda: multiclass(rng, 5000, 10, 20.0, 1.0, "probs"),
        "10 classes, logits x50": lambda: multiclass(rng, 5000, 10, 50.0, 1.0, "logits"),
        "100 classes, logits x20": lambda: multiclass(rng, 5000, 100, 20.0, 2.0, "logits"),
        "noisy digits, logistic regression": lambda: noisy_digits(rng, 0.6),
        "binary, logits x20": lambda: binary(rng, 20000, 20.0, "logits"),
        "binary, sigmoid x20 (float64)": lambda: binary(rng, 20000, 20.0, "probs"),
        "binary, logits x100": lambda: binary(rng, 20000, 100.0, "logits"),
        "multilabel 5, logits x20": lambda: multilabel(rng, 5000, 5, 20.0),
        "10 classes, logits x1": lambda: multiclass(rng, 5000, 10, 1.0, 1.0, "logits"),
        "10 classes, logits x0.1 (untrained)": lambda: multiclass(rng, 5000, 10, 0.1, 1.0, "logits"),
        "binary, logits x1": lambda: binary(rng, 20000, 1.0, "logits"),
        "binary, uniform probabilities": lambda: probabilities(rng, 20000, "uniform"),
        "binary, probabilities in [0.45, 0.55]": lambda: probabilities(rng, 20000, "narrow"),
    }


def torchmetrics_auroc(task: str, classes: int | None, thresholds: int | None) -> torchmetrics.Metric:
    if task == "binary":
        return TorchmetricsBinaryAUROC(thresholds=thresholds)
    if task == "multiclass":
        return TorchmetricsMulticlassAUROC(classes, thresholds=thresholds)
    return TorchmetricsMultilabelAUROC(classes, thresholds=thresholds)


def exact_auroc(task: str, classes: int | None, input: str, preds: torch.Tensor, target: torch.Tensor) -> float:
    """scikit-learn's macro AUROC of the scores the exact mode ranks."""
    scores, labels = preds.double().numpy(), target.numpy()
    if task == "multiclass":
        if input == "logits":
            scores = torch.softmax(preds.double(), dim=1).numpy()
        return float(roc_auc_score(labels, scores, multi_class="ovr", labels=list(range(classes or 0))))
    return float(roc_auc_score(labels, scores))


def accuracy_table(seed: int) -> None:
    print(f"\nAccuracy: |value - exact| (exact: scikit-learn roc_auc_score), seed {seed}")
    header = f"{'family':<38} {'exact':>8} {'ours (default)':>15} {'its bound':>10} {'ours linear-1000':>17}"
    print(f"{header} {'tm thresholds=1000':>19} {'tm exact':>9}")
    worst: dict[str, float] = {"confident": 0.0, "other": 0.0}
    for name, make in families(seed).items():
        task, classes, input, preds, target = make()
        exact = exact_auroc(task, classes, input, preds, target)
        ours = AUROC(task, num_classes=classes, num_labels=classes, input=input)
        linear = AUROC(task, num_classes=classes, num_labels=classes, num_bins=1000, input=input, spacing="linear")
        theirs = torchmetrics_auroc(task, classes, 1000)
        theirs_exact = torchmetrics_auroc(task, classes, None)
        for metric in (ours, linear, theirs, theirs_exact):
            metric.update(preds, target)
        error = abs(float(ours.compute()) - exact)
        bound = float(ours.error_bound())
        assert error <= bound + 1e-12, (name, error, bound)
        kind = "other" if ("x1" in name or "x0.1" in name or "probabilities" in name) else "confident"
        worst[kind] = max(worst[kind], error)
        print(
            f"{name:<38} {exact:>8.5f} {error:>15.1e} {bound:>10.1e} {abs(float(linear.compute()) - exact):>17.1e} "
            f"{abs(float(theirs.compute()) - exact):>19.1e} {abs(float(theirs_exact.compute()) - exact):>9.1e}"
        )
    print(
        f"worst |ours - exact|: confident families {worst['confident']:.1e}, the others {worst['other']:.1e}; "
        f"state {16 * 2001} bytes per label (default), {16 * 1000} (linear-1000)"
    )


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return runs


def speed(samples: int, repeats: int, anchor_repeats: int) -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (samples,), generator=generator)
    preds = torch.sigmoid(torch.randn(samples, generator=generator) + 1.0 * target)
    ours = AUROC("binary")
    linear = AUROC("binary", num_bins=1000, spacing="linear")
    theirs = TorchmetricsBinaryAUROC(thresholds=1000)
    exact = AUROC("binary", thresholds=None)
    for metric in (ours, linear, theirs):  # warm-up: first calls load code
        metric.update(preds[:1000], target[:1000])
        metric.reset()
    runs = {
        "ours, AUROC() default (2001, linear+logit)": timed(lambda: ours.update(preds, target), repeats),
        "ours, num_bins=1000, spacing='linear'": timed(lambda: linear.update(preds, target), repeats),
        "torchmetrics BinaryAUROC(thresholds=1000)": timed(lambda: theirs.update(preds, target), anchor_repeats),
        "ours, exact (thresholds=None): keeps scores": timed(lambda: exact.update(preds, target), 1),
    }
    print(f"\nSpeed: binary update with N = {samples:,} float32 probabilities")
    print(f"{'method':<44} {'median s':>9} {'min s':>8}  all runs (s)")
    for name, times in runs.items():
        listed = " ".join(f"{t:.3f}" for t in times)
        print(f"{name:<44} {statistics.median(times):>9.4f} {min(times):>8.4f}  {listed}")
    exact_value = exact.compute().item()
    for name, metric in (("default", ours), ("linear-1000", linear)):
        value = metric.compute().item()
        print(
            f"AUROC {name} {value:.10f}: |binned - exact| = {abs(value - exact_value):.2e} <= error bound "
            f"{metric.error_bound().item():.2e}"
        )
    print(f"torchmetrics thresholds=1000 {theirs.compute().item():.10f}, exact {exact_value:.10f}")
    anchor = statistics.median(runs["torchmetrics BinaryAUROC(thresholds=1000)"])
    for name in list(runs)[:2]:
        print(f"torchmetrics update time / {name}: {anchor / statistics.median(runs[name]):.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of our updates")
    parser.add_argument("--anchor-repeats", type=int, default=1, help="timed runs of torchmetrics' update")
    parser.add_argument("--seed", type=int, default=0, help="seed of the accuracy families")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchmetrics {torchmetrics.__version__}; "
        f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}"
    )
    accuracy_table(args.seed)
    speed(args.samples, args.repeats, args.anchor_repeats)
    print(f"load average at end {os.getloadavg()[0]:.2f} (more than the CPU count means other processes competed)")


if __name__ == "__main__":
    main()
