r"""AUROC, the ROC curve and threshold metrics from score histograms, binned or exact.

Everything here works on *tied groups*: per label, the counts of negatives ``neg[k]`` and
positives ``pos[k]`` whose score falls in group ``k``, groups in increasing score order. In the
exact mode a group is one distinct score value; in the binned mode it is a bin
``[t_k, t_{k+1})`` of ``T`` increasing thresholds ``t`` (``t_0 = 0``; the last bin holds the scores
equal to 1). With ``P = Σ pos`` and ``N = Σ neg``,

.. math:: \mathrm{AUROC} = \frac{1}{PN}\sum_k neg_k\Big(\sum_{j>k} pos_j + \tfrac12 pos_k\Big),

the Mann–Whitney statistic with ties counted one half. It equals the trapezoid area under the ROC
curve through the points (FPR, TPR) at every group boundary, starting at (0, 0). In the exact mode
this is scikit-learn's ``roc_auc_score``; in the binned mode it is the exact AUROC of the scores
rounded down to their threshold.

**Threshold layouts** (``spacing``, see :func:`binned_thresholds`):

- ``"linear"``: ``t = linspace(0, 1, T)``, torchmetrics' ``thresholds=T`` (float32); the binned AUROC is
  what torchmetrics' ``BinaryAUROC(thresholds=T)`` computes (torchmetrics starts its binned curve at the
  threshold 1 instead of (0, 0), so the two differ only when both classes have scores exactly equal to 1).
  A confident classifier's probabilities pile up in the first and last bins, where every
  positive–negative pair counts ½: a 10-class classifier with logits of scale 20 reads 0.68 for an exact 0.77.
- ``"linear+logit"`` (the default): the ``T // 2`` thresholds of ``"linear"`` plus ``T - T // 2`` thresholds
  evenly spaced in ``asinh(z / 0.1)`` of the log-odds ``z = log(p / (1 - p))`` over ``|z| <= 745`` (every
  float64 probability: the smallest positive one, 4.9e-324, has ``z = -744.4``). The log-odds thresholds are
  about ``0.002`` apart near ``p = 1/2`` and 1.9% of ``|z|`` apart beyond ``|z| = 1`` at ``T = 2001``, so
  saturated probabilities (``1 - 1e-12``, ``1e-30``) and large logits keep their order; with an odd
  ``T - T // 2`` the middle one is ``p = 1/2``. It refines ``"linear"`` with ``T // 2`` thresholds: pairs
  sharing a bin shared one there. Binary and multilabel logits (``input="logits"``) are binned on the
  log-odds axis (the logits against the log-odds thresholds), so scores beyond ``sigmoid``'s float64
  saturation (``|z| > 36.7``) stay apart; logits beyond ±745 share the end bins.

**Error bound of the binned mode.** A positive–negative pair in different bins is ordered the
same way by the bins and by the scores; a pair in the same bin counts ½ in the binned value and
0, ½ or 1 in the exact one. Hence, from the state alone, for any layout,

.. math:: |\mathrm{AUROC}_{\text{binned}} - \mathrm{AUROC}_{\text{exact}}|
          \le \frac{1}{2PN}\sum_k pos_k\, neg_k \le \frac12 \max_k \frac{neg_k}{N},

half the largest fraction of the negatives that share a bin (:func:`histograms_to_auroc_error_bound`).
For negative probabilities with a density at most ``f`` on [0, 1] this is about ``f / (2(T' - 1))``, with
``T' = T`` (``"linear"``) or ``T // 2`` (``"linear+logit"``, which refines that grid). The bound holds
because the bins are intervals of the score the exact mode ranks (the probability, or the logit for binary
and multilabel logits), found by comparing each score with the thresholds themselves.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_finite, check_positive_int, check_tensor

Task = Literal["binary", "multiclass", "multilabel"]
InputKind = Literal["probs", "logits"]
Average = Literal["macro", "weighted", "micro", "none"]
Spacing = Literal["linear", "linear+logit"]
TASKS = ("binary", "multiclass", "multilabel")
INPUT_KINDS = ("probs", "logits")
AVERAGES = ("macro", "weighted", "micro", "none")
SPACINGS = ("linear", "linear+logit")

# The log-odds thresholds of "linear+logit": evenly spaced in asinh(z / LOGIT_SCALE) over |z| <= LOGIT_RANGE.
# 745 covers every float64 probability (log-odds of the smallest subnormal, 4.9e-324, is -744.4); the scale
# 0.1 makes the spacing linear (0.002 at T = 2001) for |z| < 0.1 and relative (1.9% of |z|) beyond |z| = 1.
LOGIT_RANGE = 745.0
LOGIT_SCALE = 0.1


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` naming ``name``."""
    if value not in choices:
        raise ValueError(f"Expected `{name}` to be one of {', '.join(repr(c) for c in choices)}; got {value!r}.")
    return value  # type: ignore[return-value]


def check_num_labels(task: str, num_classes: object) -> int:
    """The number of score columns ``L``: 1 for a binary task, else ``num_classes`` (required, >= 2)."""
    if task == "binary":
        if num_classes is not None:
            raise ValueError(f"Expected `num_classes` to be None for task='binary', got {num_classes!r}.")
        return 1
    if num_classes is None:
        raise ValueError(f"Expected `num_classes` (an int >= 2) for task={task!r}, got None.")
    return check_positive_int(num_classes, "num_classes", minimum=2)


def check_num_bins(num_bins: object, spacing: str) -> int:
    """Return ``num_bins`` if it is an int of at least 2 (``"linear"``) or 4 (``"linear+logit"``: two of each kind).

    Example:
        >>> check_num_bins(3, "linear+logit")
        Traceback (most recent call last):
        ...
        ValueError: Expected `num_bins` to be an int >= 4 for spacing='linear+logit', got 3.
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int):
        raise TypeError(f"Expected `num_bins` to be an int, got {num_bins!r} of type {type(num_bins).__name__}.")
    minimum = 2 if spacing == "linear" else 4
    if num_bins < minimum:
        raise ValueError(f"Expected `num_bins` to be an int >= {minimum} for spacing={spacing!r}, got {num_bins}.")
    return num_bins


def _log_odds(probability: float) -> float:
    if probability in (0.0, 1.0):
        return math.inf if probability else -math.inf
    return math.log(probability) - math.log1p(-probability)


def _probability(log_odds: float) -> float:
    # exp(z) / (1 + exp(z)) for z < 0 keeps subnormal results that 1 / (1 + exp(-z)) would overflow to 0.
    small = math.exp(-abs(log_odds))
    return 1.0 / (1.0 + small) if log_odds >= 0 else small / (1.0 + small)


@functools.lru_cache(maxsize=16)
def _threshold_grid(num_bins: int, spacing: str) -> tuple[Tensor, Tensor]:
    """The thresholds as ``(probabilities, log_odds)`` ``[T]`` float64, in one increasing order (cached).

    The log-odds grid is computed with Python's scalar ``math`` (the platform's libm), not torch's vectorised
    kernels, whose last bit may depend on the CPU: every process computes the same thresholds.
    """
    linear_count = num_bins if spacing == "linear" else num_bins // 2
    linear = torch.linspace(0, 1, linear_count, dtype=torch.float32).tolist()
    pairs = [(_log_odds(p), p) for p in linear]
    if spacing != "linear":
        count = num_bins - linear_count
        step = 2 * math.asinh(LOGIT_RANGE / LOGIT_SCALE) / (count - 1)
        # Integer offsets from the middle: an odd count puts z = 0 (p = 1/2) exactly on the grid.
        grid = [LOGIT_SCALE * math.sinh(step * (j - (count - 1) / 2)) for j in range(count)]
        pairs = sorted(pairs + [(z, _probability(z)) for z in grid], key=lambda pair: pair[0])
    log_odds = torch.tensor([z for z, _ in pairs], dtype=torch.float64)
    # Both axes must increase together; a one-ulp inversion of the sigmoid where two thresholds nearly meet is
    # closed by the running maximum (a threshold equal to its neighbour only leaves a bin empty).
    probabilities = torch.cummax(torch.tensor([p for _, p in pairs], dtype=torch.float64), dim=0).values
    return probabilities, log_odds


def binned_thresholds(num_bins: int, spacing: Spacing = "linear+logit", *, log_odds: bool = False) -> Tensor:
    """The ``T`` increasing thresholds of the binned mode (float64): probabilities, or with ``log_odds=True`` the
    same thresholds on the log-odds axis (``-inf`` for 0, ``+inf`` for 1).

    ``"linear"``: ``torch.linspace(0, 1, T)`` in float32, as torchmetrics' ``thresholds=T``.
    ``"linear+logit"``: those of ``"linear"`` with ``T // 2`` thresholds, plus ``T - T // 2`` log-odds
    ``z = 0.1·sinh(u)`` for ``u`` evenly spaced over ``±asinh(7450)`` (``|z| <= 745``), merged in order. Where
    ``sigmoid`` rounds to 1 in float64 (``z > 36.7``) several probability thresholds equal 1; the bins between
    them only receive logits. Raises ``ValueError`` for ``T`` below 2 (``"linear"``) or 4.

    Example:
        >>> binned_thresholds(5, "linear").tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
        >>> binned_thresholds(5).tolist()
        [0.0, 5e-324, 0.5, 1.0, 1.0]
        >>> [round(z, 9) for z in binned_thresholds(5, log_odds=True).tolist()]
        [-inf, -745.0, 0.0, 745.0, inf]
    """
    check_choice(spacing, "spacing", SPACINGS)
    check_num_bins(num_bins, spacing)
    probabilities, log_odds_axis = _threshold_grid(num_bins, spacing)
    return (log_odds_axis if log_odds else probabilities).clone()


def _is_integer_or_bool(x: Tensor) -> bool:
    return not (x.dtype.is_floating_point or x.is_complex())


def auroc_inputs_to_scores(
    preds: Tensor, target: Tensor, task: Task, num_labels: int, input: InputKind
) -> tuple[Tensor, Tensor]:
    """Validate a batch; return float64 ranking scores ``[n, L]`` and boolean positives ``[n, L]``.

    The scores are the probabilities (``input="probs"``), the logits themselves for binary and
    multilabel logits (the sigmoid is monotone, and keeping logits avoids ties from its saturation
    near 1), or the float64 softmax for multiclass logits. :func:`scores_to_probabilities` maps them
    to probabilities.

    Args:
        preds: binary: scores of any shape; multiclass: ``[N, C]``; multilabel: ``[N, L]``.
        target: integer or bool; binary: ``preds``' shape, in {0, 1}; multiclass: ``[N]`` in
            ``[0, C)``; multilabel: ``[N, L]`` in {0, 1}.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        num_labels: 1 (binary) or the number of classes or labels.
        input: ``"probs"`` (values must lie in [0, 1]) or ``"logits"`` (any finite value).

    Raises:
        TypeError: not tensors, floating ``target`` or non-floating ``preds``.
        ValueError: wrong shapes, NaN/Inf, probabilities outside [0, 1], labels out of range.

    Example:
        >>> import torch
        >>> preds, target = torch.tensor([0.25, 0.75]), torch.tensor([0, 1])
        >>> scores, positives = auroc_inputs_to_scores(preds, target, "binary", 1, "probs")
        >>> scores.tolist(), positives.tolist()
        ([[0.25], [0.75]], [[False], [True]])
    """
    check_tensor(preds, "preds")
    check_tensor(target, "target")
    if not preds.is_floating_point():
        raise TypeError(f"Expected `preds` to be a floating point tensor of scores, got dtype {preds.dtype}.")
    if not _is_integer_or_bool(target):
        raise TypeError(f"Expected `target` to be an integer or bool tensor of labels, got dtype {target.dtype}.")
    if task == "binary":
        shapes_fit = preds.shape == target.shape
    else:
        rows = preds.shape[:1]
        shapes_fit = preds.ndim == 2 and preds.shape[1] == num_labels
        shapes_fit = shapes_fit and target.shape == (rows if task == "multiclass" else preds.shape)
    if not shapes_fit:
        layout = {"binary": "the same shape", "multiclass": f"[N, {num_labels}] and [N]"}.get(
            task, f"[N, {num_labels}]"
        )
        raise ValueError(
            f"Expected `preds` and `target` of {layout} for task={task!r}, got shapes {list(preds.shape)} and "
            f"{list(target.shape)}."
        )
    scores = preds.detach().to(torch.float64).reshape(-1, num_labels if task != "binary" else 1)
    if input == "probs":
        if scores.numel():
            low, high = (float(v) for v in torch.aminmax(scores))
            if not (low >= 0.0 and high <= 1.0):  # also false for NaN
                check_finite(preds, "preds")
                outside = int(((scores < 0) | (scores > 1)).sum())
                raise ValueError(
                    f"Expected `preds` probabilities in [0, 1] (input='probs'), got {outside} value(s) outside, in "
                    f"[{low:.8g}, {high:.8g}]; declare input='logits' for unnormalised scores."
                )
    else:
        check_finite(preds, "preds")
        if task == "multiclass":
            scores = torch.softmax(scores, dim=1)
    labels = target.detach().to(torch.int64)
    if labels.numel():
        low_label, high_label = (int(v) for v in torch.aminmax(labels))
        top = num_labels - 1 if task == "multiclass" else 1
        if low_label < 0 or high_label > top:
            raise ValueError(
                f"Expected `target` labels in [0, {top}] for task={task!r}, got values in [{low_label}, {high_label}]."
            )
    if task == "multiclass":
        positives = torch.nn.functional.one_hot(labels, num_labels).to(torch.bool)
    else:
        positives = labels.reshape(scores.shape).to(torch.bool)
    return scores, positives


def scores_are_log_odds(task: Task, input: InputKind) -> bool:
    """Whether :func:`auroc_inputs_to_scores` keeps the logits themselves as scores (binary and multilabel logits).

    Example:
        >>> scores_are_log_odds("binary", "logits"), scores_are_log_odds("multiclass", "logits")
        (True, False)
    """
    return input == "logits" and task != "multiclass"


def scores_to_probabilities(scores: Tensor, task: Task, input: InputKind) -> Tensor:
    """Map the ranking scores of :func:`auroc_inputs_to_scores` to probabilities (sigmoid of binary/multilabel logits).

    Example:
        >>> scores_to_probabilities(torch.tensor([0.0]), "binary", "logits").tolist()
        [0.5]
    """
    return torch.sigmoid(scores) if scores_are_log_odds(task, input) else scores


def probabilities_to_bins(probabilities: Tensor, num_bins: int) -> Tensor:
    """The ``"linear"`` bin ``k`` of a probability, ``t_k <= p < t_{k+1}`` of ``t = linspace(0, 1, T)`` (int64, O(n)).

    The grid is uniform up to float32 rounding, so ``floor(p·(T - 1))`` is the bin or a neighbour;
    one comparison each way with the actual thresholds makes it exact, the same as
    ``torch.bucketize(p, t, right=True) - 1`` without its binary search.

    Example:
        >>> import torch
        >>> probabilities_to_bins(torch.tensor([0.0, 0.2, 0.25, 0.99, 1.0], dtype=torch.float64), 5).tolist()
        [0, 0, 1, 3, 4]
    """
    thresholds = binned_thresholds(num_bins, "linear").to(probabilities.device)
    if num_bins > 2**20:  # float32 rounding of the grid could exceed a bin: search instead
        return torch.bucketize(probabilities, thresholds, right=True).sub_(1)
    last = num_bins - 1
    bins = (probabilities * last).floor_().clamp_(0, last).to(torch.int64)
    bins -= (thresholds.take(bins) > probabilities).to(torch.int64)
    bins += (thresholds.take((bins + 1).clamp_(max=last)) <= probabilities).to(torch.int64)
    return bins.clamp_(max=last)


def scores_to_bins(
    scores: Tensor, num_bins: int, spacing: Spacing = "linear+logit", *, log_odds: bool = False
) -> Tensor:
    """The bin ``k`` of each score, ``t_k <= s < t_{k+1}`` for ``t = binned_thresholds(T, spacing)`` (int64).

    Probabilities (``log_odds=False``) are compared with the probability thresholds; logits
    (``log_odds=True``) with the same thresholds on the log-odds axis under ``"linear+logit"``, and as
    ``sigmoid(logit)`` probabilities under ``"linear"`` (as torchmetrics). Either way a bin is an interval of
    the score itself, so the binning never reorders two scores. ``"linear"`` takes O(n)
    (:func:`probabilities_to_bins`), ``"linear+logit"`` a binary search, O(n log T).

    Example:
        >>> import torch
        >>> scores_to_bins(torch.tensor([0.0, 0.3, 0.5, 1 - 1e-12, 1.0], dtype=torch.float64), 5).tolist()
        [0, 1, 2, 2, 4]
        >>> scores_to_bins(torch.tensor([-800.0, 30.0, 800.0], dtype=torch.float64), 5, log_odds=True).tolist()
        [0, 2, 3]
    """
    check_choice(spacing, "spacing", SPACINGS)
    if spacing == "linear":
        return probabilities_to_bins(torch.sigmoid(scores) if log_odds else scores, num_bins)
    thresholds = binned_thresholds(num_bins, spacing, log_odds=log_odds).to(scores.device)
    return torch.bucketize(scores, thresholds, right=True).sub_(1)


def scores_to_histograms(
    scores: Tensor, positives: Tensor, num_bins: int, spacing: Spacing = "linear+logit", *, log_odds: bool = False
) -> tuple[Tensor, Tensor]:
    """Per label, the int64 counts ``(negatives, positives)`` ``[L, T]`` of scores ``[n, L]`` in each bin.

    Bin ``k`` holds ``t_k <= s < t_{k+1}`` of ``t = binned_thresholds(T, spacing)`` (the last bin
    ``p = 1``), found by :func:`scores_to_bins` (``log_odds``: the scores are logits) and counted by one
    ``bincount`` over label, class and bin: O(n) memory, no ``n × T`` comparison matrix.

    Example:
        >>> import torch
        >>> probabilities = torch.tensor([[0.1], [0.6], [1.0]], dtype=torch.float64)
        >>> neg, pos = scores_to_histograms(probabilities, torch.tensor([[False], [True], [True]]), 3, "linear")
        >>> neg.tolist(), pos.tolist()
        ([[1, 0, 0]], [[0, 1, 1]])
    """
    num_labels = scores.shape[1]
    flat = scores_to_bins(scores, num_bins, spacing, log_odds=log_odds).add_(positives, alpha=num_bins)
    if num_labels > 1:
        flat += torch.arange(num_labels, device=scores.device) * (2 * num_bins)
    counts = torch.bincount(flat.reshape(-1), minlength=2 * num_bins * num_labels).view(num_labels, 2, num_bins)
    return counts[:, 0].to(torch.int64), counts[:, 1].to(torch.int64)


def scores_to_tied_groups(scores: Tensor, positives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One label's ``(negatives, positives, values)`` per distinct score, in increasing order (exact mode).

    Example:
        >>> import torch
        >>> scores_to_tied_groups(torch.tensor([0.3, 0.1, 0.3]), torch.tensor([True, False, False]))
        (tensor([1, 1]), tensor([0, 1]), tensor([0.1000, 0.3000]))
    """
    values, order = torch.sort(scores)
    distinct, group, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    pos = torch.bincount(group[positives[order]], minlength=distinct.numel()).to(torch.int64)
    return counts.to(torch.int64) - pos, pos, distinct


def histograms_to_auroc(negatives: Tensor, positives: Tensor) -> Tensor:
    """AUROC per label from tied-group counts ``[..., K]`` (increasing score order), float64; NaN if undefined.

    Undefined means no positive or no negative for that label.

    Example:
        >>> import torch
        >>> histograms_to_auroc(torch.tensor([2, 1, 0]), torch.tensor([0, 1, 2])).item()
        0.9444444444444444
    """
    total_pos, total_neg = positives.sum(dim=-1), negatives.sum(dim=-1)
    above = total_pos.unsqueeze(-1) - positives.cumsum(dim=-1)
    twice_pairs = (negatives * (2 * above + positives)).to(torch.float64).sum(dim=-1)
    denominator = 2.0 * total_pos.to(torch.float64) * total_neg.to(torch.float64)
    return torch.where(denominator > 0, twice_pairs / denominator.clamp(min=1.0), torch.nan)


def histograms_to_auroc_error_bound(negatives: Tensor, positives: Tensor) -> Tensor:
    """The bound ``Σ pos_k neg_k / (2PN)`` on ``|binned AUROC - exact AUROC|`` per label (float64).

    Example:
        >>> import torch
        >>> histograms_to_auroc_error_bound(torch.tensor([2, 1, 0]), torch.tensor([0, 1, 2])).item()
        0.05555555555555555
    """
    same_bin = (negatives * positives).to(torch.float64).sum(dim=-1)
    denominator = 2.0 * positives.sum(dim=-1).to(torch.float64) * negatives.sum(dim=-1).to(torch.float64)
    return torch.where(denominator > 0, same_bin / denominator.clamp(min=1.0), torch.nan)


def histograms_to_roc(negatives: Tensor, positives: Tensor, values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The ROC curve ``(fpr, tpr, thresholds)`` of tied-group counts ``[..., K]`` with group values ``[K]``.

    Point ``i`` is the rate of scores ``>= thresholds[i]``; thresholds decrease and the first one is
    ``+inf`` (the point (0, 0)), as scikit-learn's ``roc_curve(..., drop_intermediate=False)``.
    A rate with no sample to divide by is NaN.

    Example:
        >>> import torch
        >>> neg, pos, values = torch.tensor([1, 1]), torch.tensor([0, 2]), torch.tensor([0.25, 0.75])
        >>> fpr, tpr, thresholds = histograms_to_roc(neg, pos, values)
        >>> fpr.tolist(), tpr.tolist(), thresholds.tolist()
        ([0.0, 0.5, 1.0], [0.0, 1.0, 1.0], [inf, 0.75, 0.25])
    """
    zero = torch.zeros_like(negatives[..., :1])
    fp = torch.cat([zero, negatives.flip(-1).cumsum(dim=-1)], dim=-1).to(torch.float64)
    tp = torch.cat([zero, positives.flip(-1).cumsum(dim=-1)], dim=-1).to(torch.float64)
    fpr = torch.where(fp[..., -1:] > 0, fp / fp[..., -1:].clamp(min=1.0), torch.nan)
    tpr = torch.where(tp[..., -1:] > 0, tp / tp[..., -1:].clamp(min=1.0), torch.nan)
    inf = torch.full((1,), torch.inf, dtype=torch.float64, device=values.device)
    return fpr, tpr, torch.cat([inf, values.to(torch.float64).flip(0)])


def counts_to_threshold_metrics(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> dict[str, Tensor]:
    """Sensitivity (recall), specificity, precision, accuracy and F1 from confusion counts (float64; 0/0 is NaN).

    Example:
        >>> import torch
        >>> out = counts_to_threshold_metrics(*torch.tensor([3, 1, 1, 5]))
        >>> {name: round(value.item(), 4) for name, value in out.items()}
        {'sensitivity': 0.75, 'specificity': 0.8333, 'precision': 0.75, 'accuracy': 0.8, 'f1': 0.75}
    """
    tp, fp, fn, tn = (x.to(torch.float64) for x in (tp, fp, fn, tn))

    def divide(a: Tensor, b: Tensor) -> Tensor:
        return torch.where(b > 0, a / b.clamp(min=1.0), torch.nan)

    return {
        "sensitivity": divide(tp, tp + fn),
        "specificity": divide(tn, tn + fp),
        "precision": divide(tp, tp + fp),
        "accuracy": divide(tp + tn, tp + fp + fn + tn),
        "f1": divide(2 * tp, 2 * tp + fp + fn),
    }


def average_per_label(values: Tensor, positives: Tensor, average: Average) -> Tensor:
    """Reduce per-label values ``[L]``: ``"none"``, ``"macro"`` (mean) or ``"weighted"`` (by positives ``[L]``).

    Labels whose value is NaN (undefined) are left out.

    Raises:
        RuntimeError: no label has a defined value.

    Example:
        >>> import torch
        >>> average_per_label(torch.tensor([0.5, float("nan"), 1.0]), torch.tensor([1, 0, 3]), "weighted").item()
        0.875
    """
    if average == "none":
        return values
    defined = ~torch.isnan(values)
    if not bool(defined.any()):
        raise RuntimeError("The AUROC is undefined for every label: each needs at least one positive and one negative.")
    if average == "macro":
        return values[defined].mean()
    weights = positives.to(torch.float64)[defined]
    return (values[defined] * weights).sum() / weights.sum()


def auroc(
    preds: Tensor,
    target: Tensor,
    task: Task = "binary",
    num_classes: int | None = None,
    num_bins: int | None = None,
    input: InputKind = "probs",
    *,
    average: Average = "macro",
    spacing: Spacing = "linear+logit",
) -> Tensor:
    """Area under the ROC curve of one batch; exact (``num_bins=None``) or over ``num_bins`` thresholds.

    Multiclass is one-vs-rest; ``average`` reduces the per-class or per-label values: ``"macro"``,
    ``"weighted"`` (by the number of positives), ``"micro"`` (all one-vs-rest pairs pooled) or
    ``"none"``. Labels without both positives and negatives are NaN and left out of the averages.
    ``spacing`` lays out binned thresholds (:func:`binned_thresholds`); ``"linear"`` gives torchmetrics'
    ``thresholds=num_bins`` value.

    Raises:
        TypeError, ValueError: bad arguments or inputs (see :func:`auroc_inputs_to_scores`).
        RuntimeError: the AUROC is undefined (binary: no positive or no negative).

    Example:
        >>> import torch
        >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])).item()
        0.75
    """
    check_choice(task, "task", TASKS)
    check_choice(input, "input", INPUT_KINDS)
    check_choice(average, "average", AVERAGES)
    check_choice(spacing, "spacing", SPACINGS)
    num_labels = check_num_labels(task, num_classes)
    if num_bins is not None:
        check_num_bins(num_bins, spacing)
    scores, positives = auroc_inputs_to_scores(preds, target, task, num_labels, input)
    if num_bins is not None:
        log_odds = scores_are_log_odds(task, input)
        neg, pos = scores_to_histograms(scores, positives, num_bins, spacing, log_odds=log_odds)
        return histograms_to_average_auroc(neg, pos, task, average)
    return exact_scores_to_average_auroc(scores, positives, task, average)


def histograms_to_average_auroc(negatives: Tensor, positives: Tensor, task: Task, average: Average) -> Tensor:
    """The binned AUROC of histograms ``[L, T]``, reduced as ``average`` (binary: a scalar).

    Raises:
        RuntimeError: undefined (no positive or no negative, for every label).

    Example:
        >>> import torch
        >>> histograms_to_average_auroc(torch.tensor([[2, 1, 0]]), torch.tensor([[0, 1, 2]]), "binary", "macro").item()
        0.9444444444444444
    """
    if task == "binary" or average == "micro":
        value = histograms_to_auroc(negatives.sum(dim=0), positives.sum(dim=0))
        return _defined(value, int(positives.sum()), int(negatives.sum()))
    return average_per_label(histograms_to_auroc(negatives, positives), positives.sum(dim=1), average)


def exact_scores_to_average_auroc(scores: Tensor, positives: Tensor, task: Task, average: Average) -> Tensor:
    """The exact AUROC of scores and positives ``[n, L]``, reduced as ``average`` (binary: a scalar).

    Raises:
        RuntimeError: undefined (no positive or no negative, for every label).

    Example:
        >>> import torch
        >>> scores, positives = torch.tensor([[0.2], [0.7]]), torch.tensor([[False], [True]])
        >>> exact_scores_to_average_auroc(scores, positives, "binary", "macro")
        tensor(1., dtype=torch.float64)
    """
    if task == "binary" or average == "micro":
        neg, pos, _ = scores_to_tied_groups(scores.reshape(-1), positives.reshape(-1))
        return _defined(histograms_to_auroc(neg, pos), int(pos.sum()), int(neg.sum()))
    per_label = torch.stack(
        [histograms_to_auroc(*scores_to_tied_groups(scores[:, j], positives[:, j])[:2]) for j in range(scores.shape[1])]
    )
    return average_per_label(per_label, positives.sum(dim=0), average)


def _defined(value: Tensor, num_positives: int, num_negatives: int) -> Tensor:
    if num_positives == 0 or num_negatives == 0:
        raise RuntimeError(
            f"The AUROC needs at least one positive and one negative, got {num_positives} positive(s) and "
            f"{num_negatives} negative(s)."
        )
    return value
