import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import trapezoid
from sklearn.metrics import roc_auc_score, roc_curve
from torchmetrics.classification import BinaryAUROC as TorchmetricsBinaryAUROC
from torchmetrics.classification import BinaryROC as TorchmetricsBinaryROC

from lightning_genmetrics.functional.auroc import (
    SPACINGS,
    auroc,
    auroc_inputs_to_scores,
    binned_thresholds,
    counts_to_threshold_metrics,
    histograms_to_auroc,
    histograms_to_auroc_error_bound,
    histograms_to_roc,
    probabilities_to_bins,
    scores_to_bins,
    scores_to_histograms,
    scores_to_tied_groups,
)


def _binary_data(rng, n, ties=True, separation=0.8):
    target = rng.integers(0, 2, n)
    target[:2] = [0, 1]
    scores = 1 / (1 + np.exp(-(rng.standard_normal(n) + separation * target)))
    if ties:
        scores = np.round(scores * 40) / 40  # many exact ties, some at 0 and 1
    return scores, target


@pytest.mark.parametrize("ties", [True, False])
def test_exact_matches_sklearn_to_1e12(rng, ties):
    scores, target = _binary_data(rng, 3000, ties)
    value = auroc(torch.from_numpy(scores), torch.from_numpy(target))
    assert value.dtype == torch.float64
    assert abs(value.item() - roc_auc_score(target, scores)) <= 1e-12


def test_exact_roc_curve_matches_sklearn(rng):
    scores, target = _binary_data(rng, 500)
    neg, pos, values = scores_to_tied_groups(torch.from_numpy(scores), torch.from_numpy(target.astype(bool)))
    fpr, tpr, thresholds = histograms_to_roc(neg, pos, values)
    ref_fpr, ref_tpr, ref_thresholds = roc_curve(target, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), ref_fpr, rtol=1e-15, atol=0)
    np.testing.assert_allclose(tpr.numpy(), ref_tpr, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(thresholds.numpy(), ref_thresholds)
    # scipy's trapezoid rule: numpy's is `trapz` before numpy 2 and `trapezoid` after, and both versions are tested.
    assert abs(trapezoid(tpr.numpy(), fpr.numpy()) - histograms_to_auroc(neg, pos).item()) <= 1e-12


@pytest.mark.parametrize("num_bins", [2, 7, 100, 1000])
def test_binned_matches_torchmetrics_for_the_same_thresholds(rng, num_bins):
    scores, target = _binary_data(rng, 4000, ties=False)
    preds, labels = torch.from_numpy(scores.astype(np.float32)), torch.from_numpy(target)
    reference_roc = TorchmetricsBinaryROC(thresholds=num_bins)
    reference_roc.update(preds, labels)
    neg, pos = scores_to_histograms(preds.double().reshape(-1, 1), labels.bool().reshape(-1, 1), num_bins, "linear")
    # The same counts at every threshold as torchmetrics' [T, 2, 2] confusion matrices.
    confmat = reference_roc.confmat
    np.testing.assert_array_equal(pos[0].flip(0).cumsum(0).flip(0).numpy(), confmat[:, 1, 1].numpy())
    np.testing.assert_array_equal(neg[0].flip(0).cumsum(0).flip(0).numpy(), confmat[:, 0, 1].numpy())
    fpr, tpr, thresholds = histograms_to_roc(neg[0], pos[0], binned_thresholds(num_bins, "linear"))
    ref_fpr, ref_tpr, ref_thresholds = reference_roc.compute()
    # Ours starts at (0, 0) with threshold +inf; the rest are torchmetrics' points.
    torch.testing.assert_close(fpr[1:], ref_fpr.double(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(tpr[1:], ref_tpr.double(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(thresholds[1:], ref_thresholds.double(), rtol=0, atol=0)
    reference = TorchmetricsBinaryAUROC(thresholds=num_bins)
    reference.update(preds, labels)
    value = auroc(preds, labels, thresholds="binned", num_bins=num_bins, spacing="linear")
    assert value.item() == pytest.approx(reference.compute().item(), abs=1e-6)
    # thresholds=T: torchmetrics' own binned value (its curve starts at the threshold 1), to float32 rounding.
    assert auroc(preds, labels, thresholds=num_bins).item() == pytest.approx(reference.compute().item(), abs=1e-6)


def test_binned_and_torchmetrics_differ_only_by_the_start_at_score_one():
    preds = torch.tensor([1.0, 1.0, 1.0, 0.2, 0.6])
    target = torch.tensor([1, 0, 1, 0, 1])
    reference = TorchmetricsBinaryAUROC(thresholds=5)
    reference.update(preds, target)
    neg, pos = scores_to_histograms(preds.double().reshape(-1, 1), target.bool().reshape(-1, 1), 5, "linear")
    # torchmetrics' curve starts at the threshold 1, (1/2, 2/3): it leaves out the triangle from (0, 0).
    triangle = 0.5 * (1 / 2) * (2 / 3)
    assert histograms_to_auroc(neg[0], pos[0]).item() == pytest.approx(reference.compute().item() + triangle, abs=1e-6)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("num_bins", [5, 50, 1000])
def test_binned_error_is_within_the_documented_bound(rng, num_bins, spacing):
    scores, target = _binary_data(rng, 2000, ties=False, separation=1.5)
    exact = roc_auc_score(target, scores)
    neg, pos = scores_to_histograms(
        torch.from_numpy(scores).reshape(-1, 1), torch.from_numpy(target).bool()[:, None], num_bins, spacing
    )
    binned = histograms_to_auroc(neg[0], pos[0]).item()
    bound = histograms_to_auroc_error_bound(neg[0], pos[0]).item()
    assert abs(binned - exact) <= bound + 1e-15
    assert bound <= 0.5 * (neg[0].max() / neg[0].sum()).item() + 1e-15  # the data-free form


def test_error_bound_is_attained_when_every_shared_bin_is_ordered_one_way():
    # Within each bin all positives score above all negatives: the exact value exceeds the binned one by the bound.
    scores = torch.tensor([0.01, 0.02, 0.51, 0.52, 0.005, 0.7], dtype=torch.float64)
    positives = torch.tensor([False, True, False, True, False, True])
    neg, pos = scores_to_histograms(scores.reshape(-1, 1), positives.reshape(-1, 1), 3, "linear")
    exact = roc_auc_score(positives.numpy(), scores.numpy())
    binned = histograms_to_auroc(neg[0], pos[0]).item()
    assert exact - binned == pytest.approx(histograms_to_auroc_error_bound(neg[0], pos[0]).item(), abs=1e-15)


@pytest.mark.parametrize("num_bins", [2, 3, 11, 999, 1000, 1001, 65537])
def test_bins_equal_bucketize_including_threshold_neighbours(rng, num_bins):
    thresholds = binned_thresholds(num_bins, "linear")
    below = torch.nextafter(thresholds, torch.tensor(-1.0, dtype=torch.float64)).clamp(0, 1)
    above = torch.nextafter(thresholds, torch.tensor(2.0, dtype=torch.float64)).clamp(0, 1)
    probabilities = torch.cat([torch.from_numpy(rng.random(5000)), thresholds, below, above])
    expected = torch.bucketize(probabilities, thresholds, right=True) - 1
    assert torch.equal(probabilities_to_bins(probabilities, num_bins), expected)


@pytest.mark.parametrize("num_bins", [4, 5, 200, 2001])
def test_linear_logit_thresholds_are_the_documented_layout(num_bins):
    from scipy.special import expit

    probabilities = binned_thresholds(num_bins).numpy()
    log_odds = binned_thresholds(num_bins, log_odds=True).numpy()
    assert probabilities.shape == log_odds.shape == (num_bins,)
    assert (probabilities[0], probabilities[-1], log_odds[0], log_odds[-1]) == (0.0, 1.0, -np.inf, np.inf)
    assert np.all(np.diff(probabilities) >= 0)
    assert np.all(np.diff(log_odds) > 0)
    # One order on both axes. Below z = -40, sigmoid(z) = exp(z) in float64 (scipy's expit flushes subnormals to 0).
    with np.errstate(over="ignore"):
        reference = np.where(log_odds < -40, np.exp(log_odds), expit(log_odds))
    np.testing.assert_allclose(probabilities, reference, rtol=1e-14, atol=5e-324)
    # The linear grid of T // 2 thresholds (torchmetrics' float32 linspace) is kept exactly ...
    linear = torch.linspace(0, 1, num_bins // 2, dtype=torch.float32).double()
    assert np.isin(linear.numpy(), probabilities).all()
    # ... and the rest are evenly spaced in asinh(z / 0.1) from -745 to 745.
    with np.errstate(divide="ignore"):
        linear_log_odds = np.log(linear.numpy()) - np.log1p(-linear.numpy())
    grid = log_odds[~np.isclose(log_odds[:, None], linear_log_odds[None, :], rtol=1e-12, atol=0).any(axis=1)]
    assert grid.shape == (num_bins - num_bins // 2,)
    steps = np.diff(np.arcsinh(grid / 0.1))
    np.testing.assert_allclose(steps, 2 * np.arcsinh(7450) / (grid.size - 1), rtol=1e-9)
    np.testing.assert_allclose(grid[[0, -1]], [-745, 745], rtol=1e-12)
    if grid.size % 2:
        assert 0.0 in grid
        assert 0.5 in probabilities


@pytest.mark.parametrize("num_bins", [4, 7, 2001])
@pytest.mark.parametrize("log_odds", [False, True])
def test_linear_logit_bins_equal_a_search_including_threshold_neighbours(rng, num_bins, log_odds):
    thresholds = binned_thresholds(num_bins, log_odds=log_odds)
    finite = thresholds[torch.isfinite(thresholds)]
    below = torch.nextafter(finite, torch.tensor(-np.inf, dtype=torch.float64))
    above = torch.nextafter(finite, torch.tensor(np.inf, dtype=torch.float64))
    if log_odds:
        spread = torch.from_numpy(np.sinh(rng.uniform(-8, 8, 5000)))
        scores = torch.cat([spread, finite, below, above, torch.tensor([-1e6, 1e6], dtype=torch.float64)])
    else:
        spread = torch.from_numpy(1 / (1 + np.exp(-np.sinh(rng.uniform(-7, 7, 5000)))))
        scores = torch.cat([spread, finite, below.clamp(0, 1), above.clamp(0, 1)])
    expected = np.searchsorted(thresholds.numpy(), scores.numpy(), side="right") - 1
    np.testing.assert_array_equal(scores_to_bins(scores, num_bins, log_odds=log_odds).numpy(), expected)


@pytest.mark.parametrize("num_bins", [6, 2001])
def test_linear_logit_refines_linear_with_half_the_thresholds(rng, num_bins):
    scores, target = _binary_data(rng, 3000, ties=False, separation=3.0)
    scores = torch.from_numpy(scores).reshape(-1, 1)
    positives = torch.from_numpy(target).bool()[:, None]
    fine_neg, fine_pos = scores_to_histograms(scores, positives, num_bins)
    coarse_neg, coarse_pos = scores_to_histograms(scores, positives, num_bins // 2, "linear")
    # Each fine bin lies inside one coarse bin: folding the fine counts gives the coarse ones.
    coarse = binned_thresholds(num_bins // 2, "linear").numpy()
    fold = torch.from_numpy(np.searchsorted(coarse, binned_thresholds(num_bins).numpy(), side="right") - 1)
    folded_neg = torch.zeros_like(coarse_neg[0]).index_add_(0, fold, fine_neg[0])
    folded_pos = torch.zeros_like(coarse_pos[0]).index_add_(0, fold, fine_pos[0])
    assert torch.equal(folded_neg, coarse_neg[0])
    assert torch.equal(folded_pos, coarse_pos[0])
    fine_bound = histograms_to_auroc_error_bound(fine_neg[0], fine_pos[0]).item()
    assert fine_bound <= histograms_to_auroc_error_bound(coarse_neg[0], coarse_pos[0]).item()


def test_binned_binary_logits_keep_their_order_beyond_sigmoid_saturation():
    logits = torch.tensor([40.0, 45.0, 50.0, -3.0], dtype=torch.float64)  # sigmoid is 1.0 for the first three
    target = torch.tensor([0, 1, 1, 0])
    assert auroc(logits, target, thresholds="binned", input="logits").item() == 1.0
    # The linear layout bins sigmoid(logits): the three share the bin of p = 1.
    assert auroc(logits, target, thresholds="binned", input="logits", spacing="linear").item() == 0.75


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
@pytest.mark.parametrize("input_kind", ["probs", "logits"])
def test_multiclass_one_vs_rest_matches_sklearn(rng, average, input_kind):
    logits = rng.standard_normal((600, 4)) * 2
    target = rng.integers(0, 4, 600)
    logits[np.arange(600), target] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    preds = torch.from_numpy(logits if input_kind == "logits" else probs)
    value = auroc(preds, torch.from_numpy(target), "multiclass", num_classes=4, input=input_kind, average=average)
    expected = roc_auc_score(target, probs, multi_class="ovr", average=average, labels=range(4))
    assert abs(value.item() - expected) <= 1e-12


@pytest.mark.parametrize("average", ["macro", "weighted", "micro", None])
def test_multilabel_matches_sklearn(rng, average):
    scores = np.round(rng.random((500, 3)), 2)
    target = (rng.random((500, 3)) < scores * 0.8 + 0.1).astype(np.int64)
    value = auroc(torch.from_numpy(scores), torch.from_numpy(target), "multilabel", num_labels=3, average=average)
    np.testing.assert_allclose(value.numpy(), roc_auc_score(target, scores, average=average), rtol=0, atol=1e-12)


def test_labels_without_both_classes_are_left_out_of_averages(rng):
    scores = torch.from_numpy(rng.random((50, 3)))
    target = torch.from_numpy(rng.integers(0, 2, (50, 3)))
    target[:, 1] = 1  # no negatives for label 1
    with pytest.warns(UserWarning, match=r"undefined \(NaN\) for label\(s\) \[1\]"):
        per_label = auroc(scores, target, "multilabel", num_labels=3, average="none")
    assert torch.isnan(per_label[1])
    with pytest.warns(UserWarning, match="torchmetrics reports 0"):
        macro = auroc(scores, target, "multilabel", num_labels=3)
    assert macro.item() == pytest.approx(per_label[[0, 2]].mean().item(), rel=1e-14)
    with pytest.warns(UserWarning, match="undefined"):
        assert torch.isnan(auroc(scores[:, 1], target[:, 1]))
    with pytest.warns(UserWarning, match="undefined"):  # undefined=0.0: torchmetrics' 0, counted in the mean
        zero = auroc(scores, target, "multilabel", num_labels=3, undefined=0.0)
    assert zero.item() == pytest.approx(per_label[[0, 2]].sum().item() / 3, rel=1e-14)


def test_binary_logits_are_ranked_without_sigmoid_saturation():
    logits = torch.tensor([40.0, 45.0, 50.0, -3.0], dtype=torch.float64)  # sigmoid is 1.0 for the first three
    target = torch.tensor([0, 1, 1, 0])
    assert auroc(logits, target, input="logits").item() == 1.0
    assert auroc(logits, target, input="logits").item() == roc_auc_score(target.numpy(), logits.numpy())


def test_threshold_metrics_match_sklearn(rng):
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    scores, target = _binary_data(rng, 300)
    predicted = scores >= 0.5
    tp, fp = np.sum(predicted & (target == 1)), np.sum(predicted & (target == 0))
    fn, tn = np.sum(~predicted & (target == 1)), np.sum(~predicted & (target == 0))
    out = counts_to_threshold_metrics(*(torch.tensor(int(v)) for v in (tp, fp, fn, tn)))
    assert out["sensitivity"].item() == pytest.approx(recall_score(target, predicted), rel=1e-14)
    assert out["specificity"].item() == pytest.approx(recall_score(target, predicted, pos_label=0), rel=1e-14)
    assert out["precision"].item() == pytest.approx(precision_score(target, predicted), rel=1e-14)
    assert out["accuracy"].item() == pytest.approx(accuracy_score(target, predicted), rel=1e-14)
    assert out["f1"].item() == pytest.approx(f1_score(target, predicted), rel=1e-14)
    assert torch.isnan(counts_to_threshold_metrics(*torch.tensor([0, 0, 0, 4]))["precision"])


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(2, 80),
    levels=st.integers(1, 12),
    num_bins=st.integers(4, 30),
    spacing=st.sampled_from(SPACINGS),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_exact_and_binned_against_sklearn(n, levels, num_bins, spacing, seed):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, n)
    target[:2] = [0, 1]
    scores = rng.integers(0, levels + 1, n) / levels  # ties and the end points 0 and 1 are frequent
    preds, labels = torch.from_numpy(scores), torch.from_numpy(target)
    exact = auroc(preds, labels).item()
    assert abs(exact - roc_auc_score(target, scores)) <= 1e-12
    neg, pos = scores_to_histograms(preds.reshape(-1, 1), labels.bool().reshape(-1, 1), num_bins, spacing)
    binned = histograms_to_auroc(neg[0], pos[0]).item()
    assert abs(binned - exact) <= histograms_to_auroc_error_bound(neg[0], pos[0]).item() + 1e-12
    # Binned is the exact AUROC of the scores rounded down to their threshold.
    thresholds = binned_thresholds(num_bins, spacing).numpy()
    rounded = thresholds[np.searchsorted(thresholds, scores, side="right") - 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert abs(binned - roc_auc_score(target, rounded)) <= 1e-12


@pytest.mark.parametrize(
    ("preds", "target", "kwargs", "error", "match"),
    [
        (torch.tensor([0.2, float("nan")]), torch.tensor([0, 1]), {}, ValueError, "NaN/Inf"),
        (torch.tensor([0.2, float("nan")]), torch.tensor([0, 1]), {"input": "logits"}, ValueError, "NaN/Inf"),
        (
            torch.tensor([0.2, 1.5]),
            torch.tensor([0, 1]),
            {"input": "probs"},
            ValueError,
            r"probabilities in \[0, 1\] \(input='probs'\), got 1 value\(s\) outside, in \[0.2, 1.5\]",
        ),
        (torch.tensor([-0.1, 0.5]), torch.tensor([0, 1]), {"input": "probs"}, ValueError, "input='logits'"),
        (
            torch.tensor([0.2, 0.5]),
            torch.tensor([0, 2]),
            {},
            ValueError,
            r"`target` labels in \[0, 1\] for task='binary', got values in \[0, 2\]",
        ),
        (torch.tensor([0.2, 0.5]), torch.tensor([0.0, 1.0]), {}, TypeError, "`target` to be an integer or bool"),
        (torch.tensor([0, 1], dtype=torch.complex64), torch.tensor([0, 1]), {}, TypeError, "`preds` to be a real"),
        (
            torch.tensor([0.2, 0.5]),
            torch.tensor([0, 1, 1]),
            {},
            ValueError,
            r"same shape for task='binary', got shapes \[2\] and \[3\]",
        ),
        (
            torch.rand(4, 3),
            torch.tensor([0, 1, 2, 3]),
            {"task": "multiclass", "num_classes": 3},
            ValueError,
            r"`target` labels in \[0, 2\]",
        ),
        (
            torch.rand(4, 2),
            torch.tensor([0, 1, 1, 0]),
            {"task": "multiclass", "num_classes": 3},
            ValueError,
            r"\[N, 3, ...\] and \[N, ...\]",
        ),
        (
            torch.rand(4, 3),
            torch.zeros(4, 2, dtype=torch.int64),
            {"task": "multilabel", "num_labels": 3},
            ValueError,
            r"\[N, 3, ...\] both",
        ),
        (
            torch.rand(4),
            torch.zeros(4, dtype=torch.int64),
            {"task": "multilabel", "num_classes": 3},
            ValueError,
            "`num_labels` \\(an int >= 2\\) for task='multilabel', got None; `num_classes` counts the classes",
        ),
        (
            torch.rand(4, 3),
            torch.zeros(4, dtype=torch.int64),
            {"task": "multiclass"},
            ValueError,
            "`num_classes` \\(an int >= 2\\)",
        ),
        (torch.rand(4), torch.zeros(4, dtype=torch.int64), {"task": "ternary"}, ValueError, "`task` to be one of"),
        (
            torch.rand(4),
            torch.zeros(4, dtype=torch.int64),
            {"input": "probabilities"},
            ValueError,
            "`input` to be one of",
        ),
        (
            torch.rand(4),
            torch.zeros(4, dtype=torch.int64),
            {"thresholds": "binned", "num_bins": 3},
            ValueError,
            "`num_bins` to be an int >= 4 for spacing='linear\\+logit', got 3",
        ),
        (
            torch.rand(4),
            torch.zeros(4, dtype=torch.int64),
            {"thresholds": "binned", "num_bins": 1, "spacing": "linear"},
            ValueError,
            "`num_bins` to be an int >= 2 for spacing='linear', got 1",
        ),
        (
            torch.rand(4),
            torch.zeros(4, dtype=torch.int64),
            {"thresholds": "binned", "num_bins": 10, "spacing": "log"},
            ValueError,
            "`spacing` to be one of 'linear', 'linear\\+logit'; got 'log'",
        ),
        (
            torch.rand(4),
            torch.zeros(4, dtype=torch.int64),
            {"thresholds": "binned", "num_bins": 10.0},
            TypeError,
            "`num_bins` to be an int",
        ),
    ],
)
def test_bad_inputs(preds, target, kwargs, error, match):
    with pytest.raises(error, match=match):
        auroc(preds, target, **kwargs)


def test_inputs_to_scores_keeps_logits_for_binary_and_softmaxes_multiclass():
    scores, positives = auroc_inputs_to_scores(torch.tensor([[2.0, 0.0]]), torch.tensor([0]), "multiclass", 2, "logits")
    torch.testing.assert_close(scores, torch.softmax(torch.tensor([[2.0, 0.0]], dtype=torch.float64), dim=1))
    assert positives.tolist() == [[True, False]]
    scores, _ = auroc_inputs_to_scores(torch.tensor([50.0]), torch.tensor([True]), "binary", 1, "logits")
    assert scores.tolist() == [[50.0]]
