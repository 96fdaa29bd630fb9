import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torchmetrics.classification import BinaryAUROC as TorchmetricsBinaryAUROC
from torchmetrics.classification import MulticlassAUROC as TorchmetricsMulticlassAUROC

from lightning_genmetrics.functional.auroc import binned_thresholds
from lightning_genmetrics.metrics.auroc import AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC
from tests.contract import MetricContract


def _mode(num_bins):
    """The exact mode for ``None``, else the library's binned mode with ``num_bins`` thresholds."""
    return {"thresholds": None} if num_bins is None else {"num_bins": num_bins}


def _binary(rng, n):
    target = rng.integers(0, 2, n)
    target[:2] = [0, 1]
    scores = np.round(1 / (1 + np.exp(-(rng.standard_normal(n) + target))), 3).astype(np.float32)
    return torch.from_numpy(scores), torch.from_numpy(target)


def _multiclass(rng, n, num_classes):
    target = rng.integers(0, num_classes, n)
    target[:num_classes] = np.arange(num_classes)
    logits = rng.standard_normal((n, num_classes))
    logits[np.arange(n), target] += 1.0
    return torch.from_numpy(logits), torch.from_numpy(target)


def _feed(metric, preds, target, rng):
    cuts = np.sort(rng.choice(np.arange(1, len(preds)), size=4, replace=False))
    for p, t in zip(np.split(preds.numpy(), cuts), np.split(target.numpy(), cuts), strict=True):
        metric.update(torch.from_numpy(p), torch.from_numpy(t))


@pytest.mark.parametrize("num_bins", [None, 1000])
def test_binary_batches_match_sklearn_and_torchmetrics(rng, num_bins):
    preds, target = _binary(rng, 3000)
    metric = AUROC("binary", **_mode(num_bins), **({} if num_bins is None else {"spacing": "linear"}))
    _feed(metric, preds, target, rng)
    value = metric.compute()
    if num_bins is None:
        assert abs(value.item() - roc_auc_score(target.numpy(), preds.numpy())) <= 1e-12
        assert metric.error_bound().item() == 0.0
        fpr, tpr, thresholds = metric.roc()
        ref_fpr, ref_tpr, ref_thresholds = roc_curve(target.numpy(), preds.numpy(), drop_intermediate=False)
        np.testing.assert_allclose(fpr.numpy(), ref_fpr, rtol=1e-15)
        np.testing.assert_allclose(tpr.numpy(), ref_tpr, rtol=1e-15)
        np.testing.assert_array_equal(thresholds.numpy(), ref_thresholds.astype(np.float64))
    else:
        reference = TorchmetricsBinaryAUROC(thresholds=num_bins)
        reference.update(preds, target)
        assert value.item() == pytest.approx(reference.compute().item(), abs=1e-6)
        assert abs(value.item() - roc_auc_score(target.numpy(), preds.numpy())) <= metric.error_bound().item() + 1e-15
        fpr, tpr, thresholds = metric.roc()
        assert fpr.shape == tpr.shape == thresholds.shape == (num_bins + 1,)
        assert (fpr[0].item(), tpr[0].item(), thresholds[0].item()) == (0.0, 0.0, float("inf"))


@pytest.mark.parametrize("num_bins", [None, 1001])
def test_at_threshold_matches_sklearn(rng, num_bins):
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    preds, target = _binary(rng, 800)
    metric = BinaryAUROC(**_mode(num_bins))
    metric.update(preds, target)
    out = metric.at_threshold(0.5)
    # On the grid of 1001 thresholds, up to float32 rounding (torch.linspace gives 0.49999997).
    assert out["threshold"].item() == pytest.approx(0.5, abs=1e-7)
    y, predicted = target.numpy(), preds.double().numpy() >= out["threshold"].item()
    assert out["sensitivity"].item() == pytest.approx(recall_score(y, predicted), rel=1e-14)
    assert out["specificity"].item() == pytest.approx(recall_score(y, predicted, pos_label=0), rel=1e-14)
    assert out["precision"].item() == pytest.approx(precision_score(y, predicted), rel=1e-14)
    assert out["accuracy"].item() == pytest.approx(accuracy_score(y, predicted), rel=1e-14)
    assert out["f1"].item() == pytest.approx(f1_score(y, predicted), rel=1e-14)


def test_binned_at_threshold_uses_the_nearest_grid_threshold(rng):
    preds, target = _binary(rng, 200)
    metric = BinaryAUROC(num_bins=11, spacing="linear")
    metric.update(preds, target)
    out = metric.at_threshold(0.52)
    assert out["threshold"].item() == pytest.approx(0.5, abs=1e-7)
    predicted = preds.double() >= out["threshold"]
    assert out["sensitivity"].item() == pytest.approx(predicted[target == 1].double().mean().item(), rel=1e-14)


@pytest.mark.parametrize("average", ["macro", "weighted", "micro", "none"])
def test_multiclass_logits_match_sklearn(rng, average):
    logits, target = _multiclass(rng, 900, 5)
    metric = MulticlassAUROC(5, average, None, input="logits")
    _feed(metric, logits, target, rng)
    probs = torch.softmax(logits, dim=1).numpy()
    expected = roc_auc_score(target.numpy(), probs, multi_class="ovr", average=None if average == "none" else average)
    np.testing.assert_allclose(metric.compute().numpy(), expected, rtol=0, atol=1e-12)


def test_multiclass_binned_matches_torchmetrics(rng):
    logits, target = _multiclass(rng, 900, 4)
    probs = torch.softmax(logits.float(), dim=1)
    metric = AUROC("multiclass", num_classes=4, num_bins=200, average="none", spacing="linear")
    metric.update(probs, target)
    reference = TorchmetricsMulticlassAUROC(4, thresholds=200, average="none")
    reference.update(probs, target)
    torch.testing.assert_close(metric.compute(), reference.compute().double(), rtol=0, atol=1e-6)
    fpr, tpr, thresholds = metric.roc()
    assert fpr.shape == tpr.shape == (4, 201)
    assert thresholds.shape == (201,)


def test_multilabel_exact_roc_is_per_label(rng):
    scores = torch.from_numpy(np.round(rng.random((300, 3)), 2))
    target = torch.from_numpy((rng.random((300, 3)) < scores.numpy()).astype(np.int64))
    metric = MultilabelAUROC(3, "none", None)
    metric.update(scores, target)
    np.testing.assert_allclose(
        metric.compute().numpy(), roc_auc_score(target.numpy(), scores.numpy(), average=None), atol=1e-12
    )
    fprs, tprs, thresholds = metric.roc()
    assert len(fprs) == len(tprs) == len(thresholds) == 3
    ref_fpr, ref_tpr, _ = roc_curve(target[:, 2].numpy(), scores[:, 2].numpy(), drop_intermediate=False)
    np.testing.assert_allclose(fprs[2].numpy(), ref_fpr, rtol=1e-15)
    np.testing.assert_allclose(tprs[2].numpy(), ref_tpr, rtol=1e-15)
    assert metric.at_threshold(0.5)["f1"].shape == (3,)


def test_binary_logits_thresholds_are_probabilities(rng):
    logits = torch.tensor([-2.0, 0.0, 3.0, 60.0])
    target = torch.tensor([0, 1, 0, 1])
    metric = BinaryAUROC(thresholds=None, input="logits")
    metric.update(logits, target)
    _, _, thresholds = metric.roc()
    torch.testing.assert_close(thresholds[1:], torch.sigmoid(logits.double()).flip(0))
    assert metric.at_threshold(0.5)["sensitivity"].item() == 1.0
    binned = BinaryAUROC(num_bins=101, input="logits")
    binned.update(logits, target)
    assert binned.compute().item() == metric.compute().item() == 0.75


def test_merge_state_refuses_other_settings():
    with pytest.raises(ValueError, match="Cannot merge histograms of shape"):
        BinaryAUROC(num_bins=10).merge_state(BinaryAUROC(num_bins=20).metric_state)
    for other in (
        BinaryAUROC(num_bins=20),
        BinaryAUROC(num_bins=10, spacing="linear"),
        BinaryAUROC(thresholds=None),
        BinaryAUROC(thresholds=10),
    ):
        with pytest.raises(ValueError, match=r"Cannot merge an AUROC state with \(thresholds, num_bins, spacing\)"):
            BinaryAUROC(num_bins=10).merge_state(other)


def test_state_size(rng):
    binned = AUROC("multiclass", num_classes=3, num_bins=50)
    exact = AUROC("multiclass", None, 3)
    for _ in range(3):
        logits, target = _multiclass(rng, 100, 3)
        binned.update(torch.softmax(logits, 1), target)
        exact.update(torch.softmax(logits, 1), target)
    assert {k: (v.dtype, tuple(v.shape)) for k, v in binned.metric_state.items()} == {
        "negative_hist": (torch.int64, (3, 50)),
        "positive_hist": (torch.int64, (3, 50)),
    }
    assert int(binned.positive_hist.sum()) == 300
    assert sum(s.shape[0] for s in exact.metric_state["scores"]) == 300  # O(n): documented


@pytest.mark.parametrize("thresholds", ["binned", None, 20])
def test_forward_returns_the_batch_value_and_accumulates(rng, thresholds):
    metric = AUROC("binary", thresholds)
    preds, target = _binary(rng, 300)
    whole = AUROC("binary", thresholds)
    for p, t in zip(preds.split(100), target.split(100), strict=True):
        alone = AUROC("binary", thresholds)
        alone.update(p, t)
        assert metric(p, t).item() == alone.compute().item()
        whole.update(p, t)
    assert metric.compute().item() == whole.compute().item()
    assert metric.update_count == 3
    metric.reset()
    with pytest.raises(RuntimeError, match="no samples yet"):
        metric.compute()
    with pytest.raises(RuntimeError, match="no samples yet"):
        metric.roc()


@pytest.mark.parametrize("thresholds", ["binned", None, 10])
def test_undefined_auroc_is_nan_with_a_warning_or_the_given_value(thresholds):
    metric = AUROC("binary", thresholds)
    metric.update(torch.rand(5), torch.ones(5, dtype=torch.int64))
    with pytest.warns(UserWarning, match="undefined"):
        assert torch.isnan(metric.compute())
    zero = AUROC("binary", thresholds, undefined=0.0)  # torchmetrics' value
    with pytest.warns(UserWarning, match="undefined"):
        assert zero(torch.rand(5), torch.zeros(5, dtype=torch.int64)).item() == 0.0
    # Every target of the batch ignored: seen, and undefined.
    ignored = AUROC("binary", thresholds, ignore_index=-1)
    with pytest.warns(UserWarning, match="undefined"):
        assert torch.isnan(ignored(torch.rand(3), torch.full((3,), -1)))


_BAD = [
    ((torch.tensor([[0.2, float("nan"), 0.7]]), torch.tensor([0])), ValueError, "NaN/Inf"),
    ((torch.tensor([[0.2, 1.2, 0.7]]), torch.tensor([0])), ValueError, r"probabilities in \[0, 1\]"),
    ((torch.tensor([[0.2, 0.1, 0.7]]), torch.tensor([3])), ValueError, r"`target` labels in \[0, 2\]"),
    ((torch.tensor([[0.2, 0.1, 0.7]]), torch.tensor([[0, 0, 1]])), ValueError, r"\[N, 3, ...\] and \[N, ...\]"),
    ((torch.tensor([[0.2, 0.1]]), torch.tensor([0])), ValueError, "shapes"),
    ((torch.tensor([[0.2, 0.1, 0.7]]), torch.tensor([0.0])), TypeError, "integer or bool"),
    ((torch.tensor([[0.2, 0.1, 0.7]], dtype=torch.complex64), torch.tensor([0])), TypeError, "real tensor"),
]


@pytest.mark.parametrize("num_bins", [None, 100])
def test_metric_contract(rng, num_bins):
    binary_preds, binary_target = _binary(rng, 500)
    binary = MetricContract(
        lambda: BinaryAUROC(**_mode(num_bins)),
        [(binary_preds[:100], binary_target[:100]), (binary_preds[100:], binary_target[100:])],
        rtol=0,
    )
    binary.check_batch_split()
    binary.check_merge()
    logits, labels = _multiclass(rng, 60, 3)
    probs = torch.softmax(logits, 1)
    multiclass = MetricContract(
        lambda: AUROC("multiclass", num_classes=3, input="probs", **_mode(num_bins)),
        [(probs[:10], labels[:10]), (probs[10:25], labels[10:25]), (probs[25:], labels[25:])],
        rtol=1e-12,  # the one-vs-rest areas, then their (macro) mean
    )
    multiclass.check_batch_split()
    multiclass.check_merge()
    if num_bins is not None:  # the exact mode keeps every score: O(n), documented (test_state_size)
        binary.check_state_size()
        multiclass.check_state_size()
    multiclass.check_rejected_updates(_BAD)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("binary",), {"num_bins": 3}, ValueError, r"`num_bins` to be an int >= 4 for spacing='linear\+logit', got 3"),
        (("binary",), {"num_bins": 1, "spacing": "linear"}, ValueError, "`num_bins` to be an int >= 2"),
        (("binary",), {"spacing": "logit"}, ValueError, r"`spacing` to be one of 'linear', 'linear\+logit'"),
        (("binary",), {"num_bins": 10.0}, TypeError, "`num_bins` to be an int"),
        (("multiclass",), {}, ValueError, "`num_classes`"),
        (("binary",), {"input": "scores"}, ValueError, "`input` to be one of 'auto', 'probs', 'logits'; got 'scores'"),
        (("multilabel",), {"num_labels": 3, "average": "samples"}, ValueError, "`average`"),
        (("regression",), {}, ValueError, "`task`"),
    ],
)
def test_bad_configuration(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        AUROC(*args, **kwargs)


def test_bad_threshold():
    metric = BinaryAUROC(num_bins=10)
    metric.update(torch.tensor([0.1, 0.9]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"`threshold` to be a probability in \[0, 1\], got 1.5"):
        metric.at_threshold(1.5)
    with pytest.raises(TypeError, match="`threshold` to be a float"):
        metric.at_threshold("0.5")


def test_default_is_2001_linear_logit_thresholds(rng):
    metric = MulticlassAUROC(3)
    assert (metric.num_bins, metric.spacing, metric.exact) == (2001, "linear+logit", False)
    assert {k: tuple(v.shape) for k, v in metric.metric_state.items()} == {
        "negative_hist": (3, 2001),
        "positive_hist": (3, 2001),
    }
    preds, target = _binary(rng, 400)
    binary = BinaryAUROC()
    binary.update(preds, target)
    out = binary.at_threshold(0.5)
    assert out["threshold"].item() == 0.5  # on the default grid exactly
    predicted = preds.double() >= 0.5
    assert out["sensitivity"].item() == pytest.approx(predicted[target == 1].double().mean().item(), rel=1e-14)


@pytest.mark.parametrize("input_kind", ["probs", "logits"])
def test_binned_roc_counts_the_scores_at_each_threshold(rng, input_kind):
    logits = torch.from_numpy(20 * (rng.standard_normal(3000) + rng.integers(0, 2, 3000)))
    target = torch.from_numpy(rng.integers(0, 2, 3000))
    preds = logits if input_kind == "logits" else torch.sigmoid(logits)
    metric = BinaryAUROC(num_bins=301, input=input_kind)
    metric.update(preds, target)
    fpr, tpr, thresholds = metric.roc()
    assert thresholds[0].item() == float("inf")
    assert bool((thresholds[1:].diff() <= 0).all())
    # Point i: the rates of the scores at or above threshold i (the log-odds thresholds for logits).
    cut = binned_thresholds(301, log_odds=input_kind == "logits").flip(0).numpy()
    scores, y = preds.numpy(), target.numpy().astype(bool)
    expected_tpr = (scores[y][None, :] >= cut[:, None]).mean(axis=1)
    expected_fpr = (scores[~y][None, :] >= cut[:, None]).mean(axis=1)
    np.testing.assert_allclose(tpr[1:].numpy(), expected_tpr, rtol=1e-14, atol=0)
    np.testing.assert_allclose(fpr[1:].numpy(), expected_fpr, rtol=1e-14, atol=0)
    np.testing.assert_allclose(thresholds[1:].numpy(), binned_thresholds(301).flip(0).numpy(), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("build", "curves"),
    [
        (lambda: BinaryAUROC(), 1),
        (lambda: BinaryAUROC(thresholds=[0.2, 0.5, 0.8]), 1),
        (lambda: MulticlassAUROC(3, thresholds=None), 3),
        (lambda: MultilabelAUROC(3, thresholds=20), 3),
    ],
)
def test_plot_draws_the_value_or_the_roc_curves(rng, build, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = build()
    if metric.task == "binary":
        preds, target = _binary(rng, 200)
    elif metric.task == "multiclass":
        preds, target = _multiclass(rng, 200, 3)
    else:
        target = torch.from_numpy(rng.integers(0, 2, (200, 3)))
        preds = torch.from_numpy(rng.random((200, 3))) * 0.5 + 0.5 * target
    metric.update(preds, target)
    figure, axes = metric.plot(curve=True)
    assert len(axes.get_lines()) == curves
    fpr = metric.roc()[0]
    first = fpr[0] if isinstance(fpr, list) else (fpr if fpr.ndim == 1 else fpr[0])
    np.testing.assert_allclose(axes.get_lines()[0].get_xdata(), first.numpy())
    assert "AUC=" in axes.get_legend().get_texts()[0].get_text()
    plt.close(figure)
    figure, _ = metric.plot()  # the value, as every metric
    plt.close(figure)
    with pytest.raises(ValueError, match="`val` to be None with curve=True"):
        metric.plot(metric.compute(), curve=True)


def test_plot_without_matplotlib_names_the_install(monkeypatch):
    import sys

    metric = BinaryAUROC()
    metric.update(torch.tensor([0.2, 0.7]), torch.tensor([0, 1]))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ModuleNotFoundError, match="pip install matplotlib"):
        metric.plot(curve=True)


@pytest.mark.parametrize("thresholds", [7, [0.3, 0.5, 0.6, 0.9], "binned"])
@pytest.mark.parametrize("max_fpr", [None, 0.3])
def test_error_bound_holds_for_every_binned_mode(rng, thresholds, max_fpr):
    if max_fpr is not None and thresholds != "binned":
        with pytest.raises(ValueError, match="thresholds='binned' or None"):
            BinaryAUROC(max_fpr, thresholds).error_bound()
        return
    preds, target = _binary(rng, 2000)
    metric = BinaryAUROC(max_fpr, thresholds, num_bins=50 if thresholds == "binned" else 2001)
    exact = BinaryAUROC(max_fpr, None)
    metric.update(preds, target)
    exact.update(preds, target)
    assert abs(metric.compute().item() - exact.compute().item()) <= metric.error_bound().item() + 1e-12
    assert exact.error_bound().item() == 0.0


def test_auto_input_decides_per_batch_as_torchmetrics(rng):
    logits = torch.from_numpy(rng.standard_normal(300) * 3)
    probs = torch.from_numpy(rng.random(300))
    target = torch.from_numpy(rng.integers(0, 2, 600))
    metric = BinaryAUROC(thresholds=None)
    metric.update(logits, target[:300])  # values outside [0, 1]: logits, a sigmoid
    metric.update(probs, target[300:])  # values inside: probabilities as they are
    expected = roc_auc_score(target.numpy(), np.concatenate([torch.sigmoid(logits).numpy(), probs.numpy()]))
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)
    declared = BinaryAUROC(thresholds=None, input="logits")
    declared.update(probs, target[300:])  # declared once: these are logits too
    assert declared.compute().item() == pytest.approx(roc_auc_score(target[300:].numpy(), probs.numpy()), abs=1e-12)


def test_configuration_names_the_thresholds():
    assert BinaryAUROC()._configuration()["thresholds"] == "binned"
    assert BinaryAUROC(thresholds=None)._configuration()["thresholds"] is None
    assert BinaryAUROC(thresholds=[0.25, 0.5])._configuration()["thresholds"] == (0.25, 0.5)
    assert BinaryAUROC(thresholds=3)._configuration()["thresholds"] == (0.0, 0.5, 1.0)
