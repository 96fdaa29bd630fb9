r"""AUROC, the ROC curve and threshold metrics from score histograms, binned or exact.

Everything here works on *tied groups*: per label, the counts of negatives ``neg[k]`` and
positives ``pos[k]`` whose score falls in group ``k``, groups in increasing score order. In the
exact mode a group is one distinct score value; in the binned mode it is a bin
``[t_k, t_{k+1})`` of the thresholds ``t = linspace(0, 1, T)`` (the last bin holds the scores equal
to 1). With ``P = Σ pos`` and ``N = Σ neg``,

.. math:: \mathrm{AUROC} = \frac{1}{PN}\sum_k neg_k\Big(\sum_{j>k} pos_j + \tfrac12 pos_k\Big),

the Mann–Whitney statistic with ties counted one half. It equals the trapezoid area under the ROC
curve through the points (FPR, TPR) at every group boundary, starting at (0, 0). In the exact mode
this is scikit-learn's ``roc_auc_score``; in the binned mode it is the exact AUROC of the scores
rounded down to their threshold, which is what torchmetrics' ``BinaryAUROC(thresholds=T)``
computes (torchmetrics starts its binned curve at the threshold 1 instead of (0, 0), so the two
differ only when both classes have scores exactly equal to 1).

**Error bound of the binned mode.** A positive–negative pair in different bins is ordered the
same way by the bins and by the scores; a pair in the same bin counts ½ in the binned value and
0, ½ or 1 in the exact one. Hence, from the state alone,

.. math:: |\mathrm{AUROC}_{\text{binned}} - \mathrm{AUROC}_{\text{exact}}|
          \le \frac{1}{2PN}\sum_k pos_k\, neg_k \le \frac12 \max_k \frac{neg_k}{N},

half the largest fraction of the negatives that share a bin (:func:`histograms_to_auroc_error_bound`).
For negative scores with a density at most ``f`` on [0, 1] this is about ``f / (2(T - 1))``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_finite, check_positive_int, check_tensor

Task = Literal["binary", "multiclass", "multilabel"]
InputKind = Literal["probs", "logits"]
Average = Literal["macro", "weighted", "micro", "none"]
TASKS = ("binary", "multiclass", "multilabel")
INPUT_KINDS = ("probs", "logits")
AVERAGES = ("macro", "weighted", "micro", "none")


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


def binned_thresholds(num_bins: int) -> Tensor:
    """The ``T`` thresholds ``torch.linspace(0, 1, T)`` (float32, as torchmetrics' ``thresholds=T``), in float64.

    Example:
        >>> binned_thresholds(5).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    check_positive_int(num_bins, "num_bins", minimum=2)
    return torch.linspace(0, 1, num_bins, dtype=torch.float32).to(torch.float64)


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


def scores_to_probabilities(scores: Tensor, task: Task, input: InputKind) -> Tensor:
    """Map the ranking scores of :func:`auroc_inputs_to_scores` to probabilities (sigmoid of binary/multilabel logits).

    Example:
        >>> scores_to_probabilities(torch.tensor([0.0]), "binary", "logits").tolist()
        [0.5]
    """
    return torch.sigmoid(scores) if input == "logits" and task != "multiclass" else scores


def probabilities_to_bins(probabilities: Tensor, num_bins: int) -> Tensor:
    """The bin ``k`` of each probability, ``t_k <= p < t_{k+1}`` for ``t = binned_thresholds(T)`` (int64, O(n)).

    The grid is uniform up to float32 rounding, so ``floor(p·(T - 1))`` is the bin or a neighbour;
    one comparison each way with the actual thresholds makes it exact, the same as
    ``torch.bucketize(p, t, right=True) - 1`` without its binary search.

    Example:
        >>> import torch
        >>> probabilities_to_bins(torch.tensor([0.0, 0.2, 0.25, 0.99, 1.0], dtype=torch.float64), 5).tolist()
        [0, 0, 1, 3, 4]
    """
    thresholds = binned_thresholds(num_bins).to(probabilities.device)
    if num_bins > 2**20:  # float32 rounding of the grid could exceed a bin: search instead
        return torch.bucketize(probabilities, thresholds, right=True).sub_(1)
    last = num_bins - 1
    bins = (probabilities * last).floor_().clamp_(0, last).to(torch.int64)
    bins -= (thresholds.take(bins) > probabilities).to(torch.int64)
    bins += (thresholds.take((bins + 1).clamp_(max=last)) <= probabilities).to(torch.int64)
    return bins.clamp_(max=last)


def scores_to_histograms(probabilities: Tensor, positives: Tensor, num_bins: int) -> tuple[Tensor, Tensor]:
    """Per label, the int64 counts ``(negatives, positives)`` ``[L, T]`` of probabilities ``[n, L]`` in each bin.

    Bin ``k`` holds ``t_k <= p < t_{k+1}`` of the thresholds ``t = linspace(0, 1, T)`` (the last bin
    ``p = 1``), found by :func:`probabilities_to_bins` and counted by one ``bincount`` over label,
    class and bin: O(n) time and memory, no ``n × T`` comparison matrix.

    Example:
        >>> import torch
        >>> probabilities = torch.tensor([[0.1], [0.6], [1.0]], dtype=torch.float64)
        >>> neg, pos = scores_to_histograms(probabilities, torch.tensor([[False], [True], [True]]), 3)
        >>> neg.tolist(), pos.tolist()
        ([[1, 0, 0]], [[0, 1, 1]])
    """
    num_labels = probabilities.shape[1]
    flat = probabilities_to_bins(probabilities, num_bins).add_(positives, alpha=num_bins)
    if num_labels > 1:
        flat += torch.arange(num_labels, device=probabilities.device) * (2 * num_bins)
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
) -> Tensor:
    """Area under the ROC curve of one batch; exact (``num_bins=None``) or over ``num_bins`` thresholds.

    Multiclass is one-vs-rest; ``average`` reduces the per-class or per-label values: ``"macro"``,
    ``"weighted"`` (by the number of positives), ``"micro"`` (all one-vs-rest pairs pooled) or
    ``"none"``. Labels without both positives and negatives are NaN and left out of the averages.

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
    num_labels = check_num_labels(task, num_classes)
    scores, positives = auroc_inputs_to_scores(preds, target, task, num_labels, input)
    if num_bins is not None:
        check_positive_int(num_bins, "num_bins", minimum=2)
        neg, pos = scores_to_histograms(scores_to_probabilities(scores, task, input), positives, num_bins)
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
