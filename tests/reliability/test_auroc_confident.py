"""Confident classifiers: saturated softmax and sigmoid scores, large logits.

With ``linspace(0, 1, 1000)`` bins (the previous default) these scores pile up in the first and last bin and
the AUROC reads far too low. The default ``"linear+logit"`` layout must stay within 1e-3 of scikit-learn's
exact value on them (binary, multiclass, multilabel; functional, class, any batch split), its error bound
must bound the real error on any input, and the callback's ``ClassFidelity`` must be exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from lightning_genmetrics.callbacks.conditional import ClassFidelity
from lightning_genmetrics.functional.auroc import SPACINGS, auroc
from lightning_genmetrics.metrics.auroc import AUROC


def _multiclass(rng, n, classes, scale, input_kind):
    target = rng.integers(0, classes, n)
    target[:classes] = np.arange(classes)
    logits = rng.standard_normal((n, classes))
    logits[np.arange(n), target] += 1.0
    preds = torch.from_numpy(scale * logits)
    if input_kind == "float32 probs":  # a float32 softmax: saturates at 1 and flushes to 0 even sooner
        preds = torch.softmax(preds.float(), dim=1)
    return "multiclass", classes, "logits" if input_kind == "logits" else "probs", preds, torch.from_numpy(target)


def _noisy_digits(rng, scale):
    """A nearest-centroid classifier with logits ``-scale·|x - centroid|²`` judging noisy 8×8 digits."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    images = images / 16.0
    order = rng.permutation(len(labels))
    train, test = order[:900], order[900:]
    centroids = np.stack([images[train][labels[train] == k].mean(axis=0) for k in range(10)])
    shown = images[test] + 0.5 * rng.standard_normal(images[test].shape)
    logits = -scale * ((shown[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    return "multiclass", 10, "logits", torch.from_numpy(logits), torch.from_numpy(labels[test])


def _binary(rng, n, scale, input_kind):
    target = rng.integers(0, 2, n)
    target[:2] = [0, 1]
    logits = torch.from_numpy(scale * (rng.standard_normal(n) + target))
    preds = logits if input_kind == "logits" else torch.sigmoid(logits)
    return "binary", None, input_kind, preds, torch.from_numpy(target)


def _multilabel(rng, n, labels, scale):
    target = rng.integers(0, 2, (n, labels))
    target[:2] = [[0] * labels, [1] * labels]
    logits = torch.from_numpy(scale * (rng.standard_normal((n, labels)) + target))
    return "multilabel", labels, "logits", logits, torch.from_numpy(target)


FAMILIES = {
    "10 classes, logits x20": lambda rng: _multiclass(rng, 4000, 10, 20.0, "logits"),
    "10 classes, float32 softmax x20": lambda rng: _multiclass(rng, 4000, 10, 20.0, "float32 probs"),
    "10 classes, logits x50": lambda rng: _multiclass(rng, 4000, 10, 50.0, "logits"),
    "noisy digits, nearest centroid": lambda rng: _noisy_digits(rng, 10.0),
    "binary, logits x20": lambda rng: _binary(rng, 8000, 20.0, "logits"),
    "binary, logits x100": lambda rng: _binary(rng, 8000, 100.0, "logits"),
    "binary, float64 sigmoid x20": lambda rng: _binary(rng, 8000, 20.0, "probs"),
    "multilabel 4, logits x20": lambda rng: _multilabel(rng, 4000, 4, 20.0),
}


def _exact(task, classes, input_kind, preds, target):
    """scikit-learn's macro AUROC of the scores the exact mode ranks (float64 softmax; binary/multilabel logits)."""
    if task == "multiclass":
        scores = torch.softmax(preds.double(), dim=1) if input_kind == "logits" else preds.double()
        return roc_auc_score(target.numpy(), scores.numpy(), multi_class="ovr", labels=list(range(classes)))
    return roc_auc_score(target.numpy(), preds.double().numpy())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_default_binned_auroc_is_within_1e3_of_exact_on_confident_scores(rng, family):
    task, classes, input_kind, preds, target = FAMILIES[family](rng)
    exact = _exact(task, classes, input_kind, preds, target)
    value = auroc(preds, target, task, "binned", classes, classes, input=input_kind).item()
    assert abs(value - exact) <= 1e-3, (value, exact)
    # The class (its default configuration) fed in uneven batches holds the same histograms: the same value.
    metric = AUROC(task, num_classes=classes, num_labels=classes, input=input_kind)
    assert (metric.num_bins, metric.spacing) == (2001, "linear+logit")
    cuts = np.sort(rng.choice(np.arange(1, preds.shape[0]), size=5, replace=False))
    for p, t in zip(np.split(preds.numpy(), cuts), np.split(target.numpy(), cuts), strict=True):
        metric.update(torch.from_numpy(p), torch.from_numpy(t))
    assert metric.compute().item() == pytest.approx(value, abs=1e-15)
    assert abs(value - exact) <= metric.error_bound().item() + 1e-15


@pytest.mark.parametrize("family", ["10 classes, logits x20", "noisy digits, nearest centroid", "binary, logits x20"])
def test_linear_bins_read_low_on_these_scores(rng, family):
    # The families are confident indeed: the previous default (torchmetrics' thresholds) misses by more than 1e-2.
    task, classes, input_kind, preds, target = FAMILIES[family](rng)
    exact = _exact(task, classes, input_kind, preds, target)
    linear = auroc(preds, target, task, "binned", classes, classes, num_bins=1000, input=input_kind, spacing="linear")
    linear = linear.item()
    assert exact - linear > 1e-2


@pytest.mark.parametrize("spacing", SPACINGS)
def test_error_bound_bounds_the_error_on_random_inputs(rng, spacing):
    for _ in range(12):
        task = str(rng.choice(["binary", "multiclass", "multilabel"]))
        classes = None if task == "binary" else int(rng.integers(2, 6))
        n = int(rng.integers(20, 1500))
        scale = float(np.exp(rng.uniform(np.log(0.01), np.log(300))))
        num_bins = int(rng.integers(4, 3000))
        width = 1 if task == "binary" else classes
        target = rng.integers(0, width if task == "multiclass" else 2, n if task != "multilabel" else (n, width))
        logits = scale * (rng.standard_normal((n, width)) + rng.uniform(0, 2) * rng.standard_normal(width))
        input_kind = str(rng.choice(["probs", "logits"]))
        if input_kind == "probs":
            if task == "multiclass":
                probabilities = np.exp(logits - logits.max(1)[:, None])
                probabilities /= probabilities.sum(1, keepdims=True)
            else:
                probabilities = 1 / (1 + np.exp(-logits))
            if rng.random() < 0.5:  # ties, exact zeros and ones
                probabilities = np.round(probabilities, int(rng.integers(1, 4)))
            preds = probabilities
        else:
            preds = np.round(logits, 1) if rng.random() < 0.3 else logits
        preds = torch.from_numpy(preds.reshape(-1) if task == "binary" else preds)
        target = torch.from_numpy(target)
        metric = AUROC(task, "binned", classes, classes, "none", num_bins=num_bins, input=input_kind, spacing=spacing)
        metric.update(preds, target)
        exact = AUROC(task, None, classes, classes, "none", input=input_kind)
        exact.update(preds, target)
        error = (metric.compute() - exact.compute()).abs()
        bound = metric.error_bound()
        defined = ~torch.isnan(error)
        assert bool((error[defined] <= bound[defined] + 1e-12).all()), (task, n, scale, num_bins, input_kind)


class PrototypeClassifier(nn.Module):
    """Logits ``scale·(x·p_c - |p_c|²/2)`` (float64): the nearest class prototype, very confidently."""

    def __init__(self, prototypes: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(prototypes.shape[1], prototypes.shape[0], dtype=torch.float64)
        with torch.no_grad():
            self.linear.weight.copy_(scale * prototypes)
            self.linear.bias.copy_(-scale * 0.5 * (prototypes**2).sum(dim=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


def confident_images(rng, n, classes):
    """uint8 images ``[n, 3, 4, 4]`` (class prototype plus noise), their labels, and the prototypes."""
    prototypes = torch.from_numpy(rng.random((classes, 48)))
    labels = torch.from_numpy(rng.integers(0, classes, n))
    noisy = prototypes[labels] + 1.2 * torch.from_numpy(rng.standard_normal((n, 48)))
    images = (noisy.clamp(0, 1) * 255).round().to(torch.uint8).reshape(n, 3, 4, 4)
    return images, labels, prototypes


@pytest.mark.parametrize("auroc_bins", [None, 2001])
def test_class_fidelity_auroc_on_a_confident_classifier(rng, auroc_bins):
    images, labels, prototypes = confident_images(rng, 3000, 10)
    classifier = PrototypeClassifier(prototypes, scale=20.0)
    fidelity = ClassFidelity(classifier, 10, (0.0, 1.0), auroc_bins=auroc_bins)
    for chunk_images, chunk_labels in zip(images.split(700), labels.split(700), strict=True):
        fidelity.update(chunk_images, chunk_labels)
    values = fidelity.compute()

    with torch.no_grad():
        logits = classifier(images.double() / 255)
    probabilities = torch.softmax(logits, dim=1).numpy()
    exact = roc_auc_score(labels.numpy(), probabilities, multi_class="ovr")
    linear = auroc(logits, labels, "multiclass", "binned", 10, num_bins=1000, input="logits", spacing="linear").item()
    assert exact - linear > 1e-2  # confident enough to defeat the previous default's bins
    if auroc_bins is None:
        assert sorted(values) == ["accuracy", "auroc", "balanced_accuracy"]  # exact: no bound to log
        assert values["auroc"] == pytest.approx(exact, abs=1e-12)
    else:
        assert sorted(values) == ["accuracy", "auroc", "auroc_error_bound", "balanced_accuracy"]
        assert abs(values["auroc"] - exact) <= min(values["auroc_error_bound"] + 1e-12, 1e-3)
        assert values["auroc_error_bound"] > 0
    assert values["accuracy"] == pytest.approx(float((logits.argmax(1) == labels).double().mean()), abs=1e-12)
