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

**Modes** (``thresholds``, torchmetrics' argument, see :func:`resolve_thresholds`): ``None``, the exact mode (every
score kept: scikit-learn's ``roc_auc_score`` and torchmetrics' default); ``"binned"``, the groups are the bins of
``num_bins`` thresholds laid out by ``spacing`` and the curve is closed from (0, 0) to (1, 1) as above (the default
of the :class:`~lightning_genmetrics.metrics.AUROC` class); an int ``T``, a list or a 1-D tensor, torchmetrics'
binned value: the trapezoid area of the curve through the points at those thresholds only
(:func:`scores_to_threshold_histograms`, :func:`threshold_histograms_to_roc`). ``max_fpr`` gives the
McClish-standardised partial area (:func:`roc_to_auroc`).

**Threshold layouts** (``spacing``, see :func:`binned_thresholds`):

- ``"linear"``: ``t = linspace(0, 1, T)``, torchmetrics' ``thresholds=T`` grid (float32); the binned AUROC is
  what torchmetrics' ``BinaryAUROC(thresholds=T)`` computes except that torchmetrics starts its curve at the
  threshold 1 instead of (0, 0): the two differ only when both classes have scores exactly equal to 1
  (``thresholds=T`` itself gives torchmetrics' value).
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
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_finite, check_positive_int, check_tensor

Task = Literal["binary", "multiclass", "multilabel"]
InputKind = Literal["auto", "probs", "logits"]
Average = Literal["macro", "weighted", "micro", "none"]
Spacing = Literal["linear", "linear+logit"]
Thresholds = int | Sequence[float] | Tensor | Literal["binned"] | None
TASKS = ("binary", "multiclass", "multilabel")
INPUT_KINDS = ("auto", "probs", "logits")
AVERAGES = ("macro", "weighted", "micro", "none")
SPACINGS = ("linear", "linear+logit")
# The layout of thresholds="binned": torchmetrics' linspace(0, 1, 1000) plus 1001 log-odds thresholds, the middle
# one p = 1/2 (see binned_thresholds).
DEFAULT_NUM_BINS = 2001
DEFAULT_SPACING: Spacing = "linear+logit"

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


def resolve_thresholds(
    thresholds: Thresholds, num_bins: int | None = DEFAULT_NUM_BINS, spacing: Spacing = DEFAULT_SPACING
) -> Tensor | str | None:
    """Check ``thresholds`` with ``num_bins`` and ``spacing``; return ``"binned"``, ``None`` or the thresholds.

    ``"binned"``: ``num_bins`` thresholds laid out by ``spacing`` (:func:`binned_thresholds`). ``None``: the exact
    mode. An int ``T``: torchmetrics' ``linspace(0, 1, T)``; a list (made a tensor of the default dtype, float32,
    as torchmetrics does) or a 1-D tensor: those thresholds. These last two come back as a float64 tensor of
    increasing distinct values (repeated thresholds add nothing to the area). ``num_bins`` and ``spacing`` lay out
    ``"binned"`` only: another value of either with other ``thresholds`` is a conflict.

    Raises:
        TypeError: ``thresholds`` of an unsupported type.
        ValueError: a conflict with ``num_bins``/``spacing``, ``num_bins=None`` (now ``thresholds=None``), fewer
            than 2 thresholds, thresholds that decrease, are not finite, or (a list) lie outside [0, 1].

    Example:
        >>> resolve_thresholds(5).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
        >>> resolve_thresholds(None, num_bins=100)
        Traceback (most recent call last):
        ...
        ValueError: Expected `num_bins` and `spacing` only with thresholds='binned' (they lay out its bins), got \
thresholds=None with num_bins=100, spacing='linear+logit'; drop them, or pass thresholds='binned'.
    """
    check_choice(spacing, "spacing", SPACINGS)
    if num_bins is None:
        raise ValueError(
            "Expected `num_bins` to be an int, got None: the exact mode (every score kept) is now `thresholds=None`."
        )
    if isinstance(thresholds, str):
        check_choice(thresholds, "thresholds", ("binned",))
        check_num_bins(num_bins, spacing)
        return thresholds
    if num_bins != DEFAULT_NUM_BINS or spacing != DEFAULT_SPACING:
        shown = thresholds if not isinstance(thresholds, Tensor) else f"a tensor of {thresholds.numel()}"
        raise ValueError(
            f"Expected `num_bins` and `spacing` only with thresholds='binned' (they lay out its bins), got "
            f"thresholds={shown!s} with num_bins={num_bins!r}, spacing={spacing!r}; drop them, or pass "
            "thresholds='binned'."
        )
    if thresholds is None:
        return None
    if isinstance(thresholds, bool):
        raise TypeError(
            f"Expected `thresholds` to be None, 'binned', an int, a list or a 1-D tensor, got {thresholds}."
        )
    if isinstance(thresholds, int):
        if thresholds < 2:
            raise ValueError(f"Expected an int `thresholds` to be at least 2, got {thresholds}.")
        return binned_thresholds(thresholds, "linear")
    if isinstance(thresholds, (list, tuple)):
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in thresholds):
            raise ValueError(f"Expected a list `thresholds` of numbers in [0, 1], got {list(thresholds)}.")
        thresholds = torch.tensor([float(t) for t in thresholds])  # the default dtype, as torchmetrics
    if not isinstance(thresholds, Tensor):
        raise TypeError(
            "Expected `thresholds` to be None, 'binned', an int, a list or a 1-D tensor, got "
            f"{type(thresholds).__name__}."
        )
    if thresholds.ndim != 1 or thresholds.numel() < 1 or not thresholds.is_floating_point():
        raise ValueError(
            f"Expected a tensor `thresholds` to be 1-D, floating and non-empty, got shape {list(thresholds.shape)} "
            f"and dtype {thresholds.dtype}."
        )
    check_finite(thresholds, "thresholds")
    values = thresholds.detach().to(device="cpu", dtype=torch.float64)
    if bool((values.diff() < 0).any()):
        raise ValueError(
            f"Expected `thresholds` in increasing order (the ROC curve is traced from the last one back), got "
            f"{values.tolist()}; pass them sorted."
        )
    return torch.unique_consecutive(values)


def _is_integer_or_bool(x: Tensor) -> bool:
    return not (x.dtype.is_floating_point or x.is_complex())


def _normalized(scores: Tensor, task: Task, input: InputKind) -> Tensor:
    """Probabilities from ``input="probs"`` (checked), kept logits (binary/multilabel ``"logits"``), or torchmetrics'
    rule under ``"auto"``: a batch with any value outside [0, 1] is logits (sigmoid, or softmax over classes)."""
    if scores.numel() == 0:
        return scores
    low, high = (float(v) for v in torch.aminmax(scores))
    inside = low >= 0.0 and high <= 1.0
    if input == "probs" and not inside:
        outside = int(((scores < 0) | (scores > 1)).sum())
        raise ValueError(
            f"Expected `preds` probabilities in [0, 1] (input='probs'), got {outside} value(s) outside, in "
            f"[{low:.8g}, {high:.8g}]; declare input='logits' for unnormalised scores, or input='auto' to decide per "
            "batch as torchmetrics does."
        )
    is_logits = input == "logits" or (input == "auto" and not inside)
    if not is_logits:
        return scores
    if task == "multiclass":
        return torch.softmax(scores, dim=1)
    return torch.sigmoid(scores) if input == "auto" else scores


def auroc_inputs_to_scores(
    preds: Tensor,
    target: Tensor,
    task: Task,
    num_labels: int,
    input: InputKind = "auto",
    ignore_index: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Validate a batch; return float64 ranking scores ``[n, L]`` and boolean positives ``[n, L]``.

    Extra dimensions are flattened into the batch as torchmetrics does: binary ``[N, ...]``; multiclass
    ``[N, C, ...]`` with targets ``[N, ...]``; multilabel ``[N, L, ...]`` with targets of the same shape. Targets equal
    to ``ignore_index`` are left out: binary and multiclass drop the sample; multilabel marks that entry's score
    NaN (its other labels still count). The scores are probabilities; for binary and multilabel ``input="logits"``
    the logits themselves (the sigmoid is monotone, and keeping them avoids ties from its saturation near 1);
    multiclass logits go through a float64 softmax. ``input="auto"`` follows torchmetrics' rule per batch: values all
    in [0, 1] are probabilities, otherwise logits (float64 sigmoid, or softmax); decided after dropping ignored
    binary/multiclass samples, before masking multilabel entries, as torchmetrics. :func:`scores_to_probabilities`
    maps scores to probabilities. Integer or bool ``preds`` (hard 0/1 predictions) are scores like any other.

    Args:
        preds: binary: scores of any shape; multiclass: ``[N, C, ...]``; multilabel: ``[N, L, ...]``.
        target: integer or bool; binary: ``preds``' shape, in {0, 1}; multiclass: ``[N, ...]`` in ``[0, C)``;
            multilabel: ``preds``' shape, in {0, 1} (or ``ignore_index``).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        num_labels: 1 (binary) or the number of classes or labels.
        input: ``"auto"``, ``"probs"`` (values must lie in [0, 1]) or ``"logits"`` (any finite value).
        ignore_index: a target value to leave out, or ``None``.

    Raises:
        TypeError: not tensors, floating ``target``.
        ValueError: wrong shapes, NaN/Inf, probabilities outside [0, 1] (``input="probs"``), labels out of range.

    Example:
        >>> import torch
        >>> preds, target = torch.tensor([0.25, 0.75, 0.5]), torch.tensor([0, 1, -1])
        >>> scores, positives = auroc_inputs_to_scores(preds, target, "binary", 1, "probs", ignore_index=-1)
        >>> scores.tolist(), positives.tolist()
        ([[0.25], [0.75]], [[False], [True]])
    """
    check_tensor(preds, "preds")
    check_tensor(target, "target")
    if preds.is_complex():
        raise TypeError(f"Expected `preds` to be a real tensor of scores, got dtype {preds.dtype}.")
    if not _is_integer_or_bool(target):
        raise TypeError(f"Expected `target` to be an integer or bool tensor of labels, got dtype {target.dtype}.")
    if task == "binary":
        shapes_fit = preds.shape == target.shape
    elif task == "multiclass":
        rest = preds.shape[:1] + preds.shape[2:]
        shapes_fit = preds.ndim >= 2 and preds.shape[1] == num_labels and target.shape == rest
    else:
        shapes_fit = preds.ndim >= 2 and preds.shape[1] == num_labels and target.shape == preds.shape
    if not shapes_fit:
        layout = {"binary": "the same shape", "multiclass": f"[N, {num_labels}, ...] and [N, ...]"}.get(
            task, f"[N, {num_labels}, ...] both"
        )
        raise ValueError(
            f"Expected `preds` and `target` of {layout} for task={task!r}, got shapes {list(preds.shape)} and "
            f"{list(target.shape)}."
        )
    check_finite(preds, "preds")
    width = 1 if task == "binary" else num_labels
    scores = preds.detach().to(torch.float64)
    labels = target.detach().to(torch.int64)
    if task != "binary":  # [N, C, ...] -> [N·..., C]
        scores = scores.movedim(1, -1)
        labels = labels.movedim(1, -1) if task == "multilabel" else labels
    scores, labels = scores.reshape(-1, width), labels.reshape(-1, 1 if task == "multiclass" else width)
    ignored = None if ignore_index is None else labels == ignore_index
    if ignored is not None and task != "multilabel":
        kept = ~ignored[:, 0]
        scores, labels, ignored = scores[kept], labels[kept], None
    counted = labels if ignored is None else labels[~ignored]
    if counted.numel():
        low_label, high_label = (int(v) for v in torch.aminmax(counted))
        top = num_labels - 1 if task == "multiclass" else 1
        if low_label < 0 or high_label > top:
            also = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
            raise ValueError(
                f"Expected `target` labels in [0, {top}]{also} for task={task!r}, got values in "
                f"[{low_label}, {high_label}]."
            )
    scores = _normalized(scores, task, input)
    if task == "multiclass":
        positives = torch.nn.functional.one_hot(labels[:, 0], num_labels).to(torch.bool)
    else:
        positives = labels == 1
    if ignored is not None and bool(ignored.any()):
        scores = scores.masked_fill(ignored, torch.nan)
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


def _count(bins: Tensor, positives: Tensor, scores: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Per label, int64 ``(negatives, positives)`` ``[L, K]`` counts of ``bins`` ``[n, L]``; NaN scores are skipped."""
    num_labels = scores.shape[1]
    flat = bins.add_(positives, alpha=num_groups)
    if num_labels > 1:
        flat += torch.arange(num_labels, device=scores.device) * (2 * num_groups)
    flat = flat.reshape(-1)
    valid = ~torch.isnan(scores.reshape(-1))
    if not bool(valid.all()):
        flat = flat[valid]
    counts = torch.bincount(flat, minlength=2 * num_groups * num_labels).view(num_labels, 2, num_groups)
    return counts[:, 0].to(torch.int64), counts[:, 1].to(torch.int64)


def scores_to_histograms(
    scores: Tensor, positives: Tensor, num_bins: int, spacing: Spacing = "linear+logit", *, log_odds: bool = False
) -> tuple[Tensor, Tensor]:
    """Per label, the int64 counts ``(negatives, positives)`` ``[L, T]`` of scores ``[n, L]`` in each bin.

    Bin ``k`` holds ``t_k <= s < t_{k+1}`` of ``t = binned_thresholds(T, spacing)`` (the last bin
    ``p = 1``), found by :func:`scores_to_bins` (``log_odds``: the scores are logits) and counted by one
    ``bincount`` over label, class and bin: O(n) memory, no ``n × T`` comparison matrix. NaN scores (ignored
    entries) are not counted.

    Example:
        >>> import torch
        >>> probabilities = torch.tensor([[0.1], [0.6], [1.0]], dtype=torch.float64)
        >>> neg, pos = scores_to_histograms(probabilities, torch.tensor([[False], [True], [True]]), 3, "linear")
        >>> neg.tolist(), pos.tolist()
        ([[1, 0, 0]], [[0, 1, 1]])
    """
    filled = torch.nan_to_num(scores, nan=0.0)
    bins = scores_to_bins(filled, num_bins, spacing, log_odds=log_odds)
    return _count(bins, positives, scores, num_bins)


def scores_to_threshold_histograms(
    scores: Tensor, positives: Tensor, thresholds: Tensor, *, log_odds: bool = False
) -> tuple[Tensor, Tensor]:
    """Per label, int64 ``(negatives, positives)`` ``[L, U + 1]`` around ``U`` increasing probability thresholds.

    Group 0 holds the probabilities below ``thresholds[0]``, group ``k`` those in ``[u_{k-1}, u_k)`` and the last
    those at or above ``u_{U-1}``: the count at or above each threshold, as torchmetrics' ``preds >= threshold``
    confusion matrices hold it, is a suffix sum. Logits (``log_odds``) are compared as ``sigmoid(logit)``, as
    torchmetrics does. NaN scores (ignored entries) are not counted.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[0.1], [0.3], [0.9]], dtype=torch.float64)
        >>> neg, pos = scores_to_threshold_histograms(scores, torch.tensor([[False], [True], [True]]),
        ...                                           torch.tensor([0.2, 0.5], dtype=torch.float64))
        >>> neg.tolist(), pos.tolist()
        ([[1, 0, 0]], [[0, 1, 1]])
    """
    filled = torch.nan_to_num(scores, nan=0.0)
    probabilities = torch.sigmoid(filled) if log_odds else filled
    bins = torch.bucketize(probabilities, thresholds.to(scores.device), right=True)
    return _count(bins, positives, scores, thresholds.numel() + 1)


def scores_to_tied_groups(scores: Tensor, positives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One label's ``(negatives, positives, values)`` per distinct score, in increasing order (exact mode).

    NaN scores (ignored entries) are left out.

    Example:
        >>> import torch
        >>> scores_to_tied_groups(torch.tensor([0.3, 0.1, 0.3]), torch.tensor([True, False, False]))
        (tensor([1, 1]), tensor([0, 1]), tensor([0.1000, 0.3000]))
    """
    valid = ~torch.isnan(scores)
    if not bool(valid.all()):
        scores, positives = scores[valid], positives[valid]
    values, order = torch.sort(scores)
    distinct, group, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    pos = torch.bincount(group[positives[order]], minlength=distinct.numel()).to(torch.int64)
    return counts.to(torch.int64) - pos, pos, distinct


def histograms_to_auroc(negatives: Tensor, positives: Tensor) -> Tensor:
    """AUROC per label from tied-group counts ``[..., K]`` (increasing score order), float64; NaN if undefined.

    Undefined means no positive or no negative for that label. This is the Mann–Whitney form of the area under
    the curve of :func:`histograms_to_roc` (from (0, 0) through every group boundary to (1, 1)).

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


def _pair_fractions(negatives: Tensor, positives: Tensor) -> Tensor:
    """``pos_k·neg_k / (P·N)`` per group (float64; NaN where a label lacks positives or negatives)."""
    denominator = positives.sum(dim=-1, keepdim=True).to(torch.float64) * negatives.sum(dim=-1, keepdim=True)
    fractions = (negatives * positives).to(torch.float64) / denominator.clamp(min=1.0)
    return torch.where(denominator > 0, fractions, torch.nan)


def histograms_to_auroc_error_bound(negatives: Tensor, positives: Tensor, max_fpr: float | None = None) -> Tensor:
    """The bound ``Σ pos_k neg_k / (2PN)`` on ``|binned AUROC - exact AUROC|`` per label (float64).

    With ``max_fpr = m`` (the McClish-standardised partial AUROC of ``[0, m]``) the partial area is off by at most
    ``Σ_k pos_k neg_k / (2PN)`` plus half the largest ``pos_k neg_k / (PN)`` (the bin the cut at ``m`` crosses
    may lose its half-pairs unevenly), and standardising divides that by ``2(m - m²/2)``.

    Example:
        >>> import torch
        >>> histograms_to_auroc_error_bound(torch.tensor([2, 1, 0]), torch.tensor([0, 1, 2])).item()
        0.05555555555555555
    """
    fractions = _pair_fractions(negatives, positives)
    bound = 0.5 * fractions.sum(dim=-1)
    if max_fpr is None or max_fpr == 1:
        return bound
    return (bound + 0.5 * fractions.amax(dim=-1)) / (2.0 * (max_fpr - 0.5 * max_fpr**2))


def threshold_histograms_to_auroc_error_bound(negatives: Tensor, positives: Tensor) -> Tensor:
    """A bound on ``|AUROC at thresholds - exact AUROC|`` per label from :func:`scores_to_threshold_histograms`.

    torchmetrics' curve runs through the points at the thresholds only; they lie on the exact ROC curve. Between
    two of them a group's pairs are off by at most half (``pos_k neg_k / (2PN)``); before the highest threshold
    the curve is missing the area of the top group's rectangle (``pos·neg / (PN)`` at most), and after the lowest
    the strip of the negatives below it (``neg_0 / N``).

    Example:
        >>> import torch
        >>> threshold_histograms_to_auroc_error_bound(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 1])).item()
        0.3333333333333333
    """
    fractions = _pair_fractions(negatives, positives)
    below = negatives[..., 0].to(torch.float64) / negatives.sum(dim=-1).to(torch.float64).clamp(min=1.0)
    return 0.5 * fractions[..., 1:-1].sum(dim=-1) + fractions[..., -1] + below


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


def threshold_histograms_to_roc(
    negatives: Tensor, positives: Tensor, thresholds: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """torchmetrics' binned ROC curve: the points at the ``U`` thresholds only, the highest first.

    ``negatives`` and ``positives`` ``[..., U + 1]`` come from :func:`scores_to_threshold_histograms`; point ``i`` is
    the rate of probabilities ``>= thresholds`` (returned decreasing, ``[U]``). A rate with no sample to divide by
    is NaN.

    Example:
        >>> import torch
        >>> fpr, tpr, thresholds = threshold_histograms_to_roc(
        ...     torch.tensor([1, 0, 0]), torch.tensor([0, 1, 1]), torch.tensor([0.2, 0.5], dtype=torch.float64))
        >>> fpr.tolist(), tpr.tolist(), thresholds.tolist()
        ([0.0, 0.0], [0.5, 1.0], [0.5, 0.2])
    """
    fp = negatives[..., 1:].flip(-1).cumsum(dim=-1).to(torch.float64)
    tp = positives[..., 1:].flip(-1).cumsum(dim=-1).to(torch.float64)
    total_neg = negatives.sum(dim=-1, keepdim=True).to(torch.float64)
    total_pos = positives.sum(dim=-1, keepdim=True).to(torch.float64)
    fpr = torch.where(total_neg > 0, fp / total_neg.clamp(min=1.0), torch.nan)
    tpr = torch.where(total_pos > 0, tp / total_pos.clamp(min=1.0), torch.nan)
    return fpr, tpr, thresholds.to(torch.float64).flip(0)


def roc_to_auroc(fpr: Tensor, tpr: Tensor, max_fpr: float | None = None) -> Tensor:
    """The trapezoid area under ROC curves ``[..., K]`` (increasing ``fpr``); with ``max_fpr`` (1-D curves) the
    McClish-standardised partial area over ``[0, max_fpr]``, as scikit-learn's ``roc_auc_score(max_fpr=...)``.

    The partial area adds a point at ``max_fpr``, its ``tpr`` interpolated linearly, and maps the area ``A`` to
    ``(1 + (A - m²/2) / (m - m²/2)) / 2``: 0.5 for a useless classifier, 1 for a perfect one. As torchmetrics, a
    curve with all ``fpr`` or all ``tpr`` zero gets its plain area. NaN rates give NaN.

    Example:
        >>> import torch
        >>> fpr, tpr = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 1.0])
        >>> roc_to_auroc(fpr, tpr).item(), roc_to_auroc(fpr, tpr, max_fpr=0.5).item()
        (0.75, 0.6666666666666666)
    """
    fpr, tpr = fpr.to(torch.float64), tpr.to(torch.float64)
    area = torch.trapezoid(tpr, fpr, dim=-1)
    if max_fpr is None or max_fpr == 1 or bool(torch.isnan(area).any()) or fpr.sum() == 0 or tpr.sum() == 0:
        return area
    limit = torch.tensor([max_fpr], dtype=torch.float64, device=fpr.device)
    stop = int(torch.bucketize(limit, fpr, right=True))  # the first point beyond max_fpr
    if stop == 0:  # every point lies beyond max_fpr: no area inside
        partial = torch.zeros((), dtype=torch.float64, device=fpr.device)
    elif stop == fpr.numel():  # a curve that never reaches max_fpr (thresholds above the lowest scores)
        partial = area
    else:
        weight = (limit - fpr[stop - 1]) / (fpr[stop] - fpr[stop - 1])
        cut = torch.lerp(tpr[stop - 1 : stop], tpr[stop : stop + 1], weight)
        partial = torch.trapezoid(torch.cat([tpr[:stop], cut]), torch.cat([fpr[:stop], limit]))
    least = 0.5 * max_fpr**2
    return 0.5 * (1 + (partial - least) / (max_fpr - least))


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


UNDEFINED_WARNING = (
    "The AUROC is undefined (NaN) {where}: it needs at least one positive and one negative target. torchmetrics "
    "reports 0 there; here it is NaN and left out of averages."
)


def average_per_label(
    values: Tensor, positives: Tensor, average: Average | None, undefined: float = math.nan
) -> Tensor:
    """Reduce per-label values ``[L]``: ``"none"``/``None``, ``"macro"`` or ``"weighted"`` (by positives ``[L]``).

    Labels whose value is NaN (undefined) are warned about and left out (NaN in ``"none"``; a NaN average if every
    label is undefined). A number ``undefined`` takes their place instead and counts in the averages, as
    torchmetrics' 0 does.

    Example:
        >>> import torch
        >>> average_per_label(torch.tensor([0.5, 0.75, 1.0]), torch.tensor([1, 0, 3]), "weighted").item()
        0.875
    """
    defined = ~torch.isnan(values)
    if not bool(defined.all()):
        missing = (~defined).nonzero().flatten().tolist()
        warnings.warn(UNDEFINED_WARNING.format(where=f"for label(s) {missing}"), UserWarning, stacklevel=3)
        if not math.isnan(undefined):
            values, defined = values.nan_to_num(nan=undefined), torch.ones_like(defined)
    if average in (None, "none"):
        return values
    if not bool(defined.any()):
        return torch.full((), torch.nan, dtype=torch.float64, device=values.device)
    if average == "macro":
        return values[defined].mean()
    weights = positives.to(torch.float64)[defined]
    return (values[defined] * weights).sum() / weights.sum()


def _binary_value(value: Tensor, undefined: float) -> Tensor:
    if bool(torch.isnan(value)):
        warnings.warn(UNDEFINED_WARNING.format(where="for these targets"), UserWarning, stacklevel=3)
        return value.nan_to_num(nan=undefined)
    return value


def histograms_to_average_auroc(
    negatives: Tensor,
    positives: Tensor,
    task: Task,
    average: Average | None,
    *,
    thresholds: Tensor | None = None,
    max_fpr: float | None = None,
    undefined: float = math.nan,
) -> Tensor:
    """The binned AUROC of histograms ``[L, K]``, reduced as ``average`` (binary and micro: a scalar).

    ``thresholds=None``: the bins of :func:`scores_to_histograms`, the curve closed from (0, 0) to (1, 1).
    ``thresholds``: the groups of :func:`scores_to_threshold_histograms`, torchmetrics' curve through the points at
    those thresholds. ``max_fpr`` (binary): the McClish-standardised partial AUROC. Undefined: ``undefined`` (NaN),
    with a warning.

    Example:
        >>> import torch
        >>> histograms_to_average_auroc(torch.tensor([[2, 1, 0]]), torch.tensor([[0, 1, 2]]), "binary", "macro").item()
        0.9444444444444444
    """
    pooled = task == "binary" or average == "micro"
    if pooled:
        negatives, positives = negatives.sum(dim=0, keepdim=True), positives.sum(dim=0, keepdim=True)
    if thresholds is None:
        fpr, tpr, _ = histograms_to_roc(negatives, positives, torch.zeros(negatives.shape[-1]))
    else:
        fpr, tpr, _ = threshold_histograms_to_roc(negatives, positives, thresholds)
    # Defined by the counts: a curve of one point (one threshold, or no sample) has no NaN rate to show it.
    defined = (negatives.sum(dim=1) > 0) & (positives.sum(dim=1) > 0)
    if pooled:
        value = roc_to_auroc(fpr[0], tpr[0], max_fpr)
        return _binary_value(torch.where(defined[0], value, torch.nan), undefined)
    values = torch.where(defined, roc_to_auroc(fpr, tpr), torch.nan)
    return average_per_label(values, positives.sum(dim=1), average, undefined)


def exact_scores_to_average_auroc(
    scores: Tensor,
    positives: Tensor,
    task: Task,
    average: Average | None,
    *,
    max_fpr: float | None = None,
    undefined: float = math.nan,
) -> Tensor:
    """The exact AUROC of scores and positives ``[n, L]`` (NaN scores left out), reduced as ``average``.

    Binary and micro: a scalar; ``max_fpr`` (binary): the McClish-standardised partial AUROC. Undefined:
    ``undefined`` (NaN), with a warning.

    Example:
        >>> import torch
        >>> scores, positives = torch.tensor([[0.2], [0.7]]), torch.tensor([[False], [True]])
        >>> exact_scores_to_average_auroc(scores, positives, "binary", "macro")
        tensor(1., dtype=torch.float64)
    """

    def area(label_scores: Tensor, label_positives: Tensor, limit: float | None = None) -> Tensor:
        neg, pos, values = scores_to_tied_groups(label_scores, label_positives)
        if int(neg.sum()) == 0 or int(pos.sum()) == 0:
            return torch.full((), torch.nan, dtype=torch.float64, device=scores.device)
        fpr, tpr, _ = histograms_to_roc(neg, pos, values)
        return roc_to_auroc(fpr, tpr, limit)

    if task == "binary" or average == "micro":
        return _binary_value(area(scores.reshape(-1), positives.reshape(-1), max_fpr), undefined)
    per_label = torch.stack([area(scores[:, j], positives[:, j]) for j in range(scores.shape[1])])
    valid_positives = (positives & ~torch.isnan(scores)).sum(dim=0)
    return average_per_label(per_label, valid_positives, average, undefined)


def check_max_fpr(max_fpr: object, task: str) -> float | None:
    """Return ``max_fpr`` if it is ``None`` or a number in (0, 1] for a binary task, else raise.

    Example:
        >>> check_max_fpr(0.5, "multiclass")
        Traceback (most recent call last):
        ...
        ValueError: Expected `max_fpr` only for task='binary' (torchmetrics ignores it for other tasks), got \
max_fpr=0.5 for task='multiclass'; drop it.
    """
    if max_fpr is None:
        return None
    if isinstance(max_fpr, bool) or not isinstance(max_fpr, (int, float)):
        raise TypeError(
            f"Expected `max_fpr` to be a float in (0, 1], got {max_fpr!r} of type {type(max_fpr).__name__}."
        )
    if not 0 < max_fpr <= 1:
        raise ValueError(f"Expected `max_fpr` to be a float in (0, 1], got {max_fpr}.")
    if task != "binary":
        raise ValueError(
            f"Expected `max_fpr` only for task='binary' (torchmetrics ignores it for other tasks), got "
            f"max_fpr={max_fpr} for task={task!r}; drop it."
        )
    return float(max_fpr)


def check_ignore_index(ignore_index: object) -> int | None:
    """Return ``ignore_index`` if it is ``None`` or an int, else raise ``TypeError``."""
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"Expected `ignore_index` to be None or an int, got {ignore_index!r}.")
    return ignore_index


def check_task_width(task: str, num_classes: object, num_labels: object) -> int:
    """The number of score columns: 1 (binary), ``num_classes`` (multiclass) or ``num_labels`` (multilabel).

    As torchmetrics, the count of the other tasks is ignored (``AUROC("binary", num_classes=2)`` is fine).

    Example:
        >>> check_task_width("multilabel", 3, None)
        Traceback (most recent call last):
        ...
        ValueError: Expected `num_labels` (an int >= 2) for task='multilabel', got None; `num_classes` counts the \
classes of task='multiclass'.
    """
    check_choice(task, "task", TASKS)
    if task == "binary":
        return 1
    name, value = ("num_classes", num_classes) if task == "multiclass" else ("num_labels", num_labels)
    if value is None:
        hint = "" if task == "multiclass" else "; `num_classes` counts the classes of task='multiclass'"
        raise ValueError(f"Expected `{name}` (an int >= 2) for task={task!r}, got None{hint}.")
    return check_positive_int(value, name, minimum=2)


def auroc(
    preds: Tensor,
    target: Tensor,
    task: Task = "binary",
    thresholds: Thresholds = None,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: Average | None = "macro",
    max_fpr: float | None = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    input: InputKind = "auto",
    spacing: Spacing = DEFAULT_SPACING,
    undefined: float = math.nan,
) -> Tensor:
    """Area under the ROC curve of one batch, with torchmetrics' arguments in its order; exact by default.

    ``thresholds``: ``None`` (the default, as torchmetrics) ranks every score exactly (scikit-learn's
    ``roc_auc_score``); an int ``T``, a list or a 1-D tensor give torchmetrics' binned value at those thresholds
    (``T``: ``linspace(0, 1, T)``), its curve through the points at the thresholds; ``"binned"`` gives this
    library's binned value over ``num_bins`` thresholds laid out by ``spacing`` (:func:`binned_thresholds`, the
    default of the :class:`~lightning_genmetrics.metrics.AUROC` class), its curve closed from (0, 0) to (1, 1).
    Multiclass is one-vs-rest; ``average`` reduces the per-class or per-label values: ``"macro"``, ``"weighted"``
    (by the number of positives), ``"micro"`` (all one-vs-rest pairs pooled; torchmetrics has it for multilabel
    only) or ``"none"``/``None``. ``max_fpr`` (binary only) gives the McClish-standardised partial AUROC over
    ``[0, max_fpr]``. Targets equal to ``ignore_index`` are left out. Extra dimensions ``[N, C, ...]`` are
    flattened into the batch. ``input="auto"`` applies torchmetrics' rule (any value outside [0, 1]: logits,
    sigmoid or softmax); ``"probs"`` and ``"logits"`` declare it. A label without positives or negatives is
    ``undefined`` (NaN; torchmetrics: 0, which ``undefined=0.0`` reproduces), warned about, and NaN is left out of
    the averages. ``validate_args`` is accepted for
    torchmetrics' signature; the checks always run (one pass over the batch).

    Raises:
        TypeError, ValueError: bad arguments or inputs (see :func:`auroc_inputs_to_scores`, :func:`resolve_thresholds`).

    Example:
        >>> import torch
        >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), "binary").item()
        0.75
        >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), "binary", thresholds=5).item()
        0.875
    """
    width = check_task_width(task, num_classes, num_labels)
    check_choice(input, "input", INPUT_KINDS)
    check_choice("none" if average is None else average, "average", AVERAGES)
    max_fpr = check_max_fpr(max_fpr, task)
    check_ignore_index(ignore_index)
    check_bool(validate_args, "validate_args")
    layout = resolve_thresholds(thresholds, num_bins, spacing)
    scores, positives = auroc_inputs_to_scores(preds, target, task, width, input, ignore_index)
    if layout is None:
        return exact_scores_to_average_auroc(scores, positives, task, average, max_fpr=max_fpr, undefined=undefined)
    log_odds = scores_are_log_odds(task, input)
    if isinstance(layout, str):
        neg, pos = scores_to_histograms(scores, positives, num_bins, spacing, log_odds=log_odds)
        return histograms_to_average_auroc(neg, pos, task, average, max_fpr=max_fpr, undefined=undefined)
    neg, pos = scores_to_threshold_histograms(scores, positives, layout, log_odds=log_odds)
    return histograms_to_average_auroc(neg, pos, task, average, thresholds=layout, max_fpr=max_fpr, undefined=undefined)


def binary_auroc(
    preds: Tensor,
    target: Tensor,
    max_fpr: float | None = None,
    thresholds: Thresholds = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    input: InputKind = "auto",
    spacing: Spacing = DEFAULT_SPACING,
    undefined: float = math.nan,
) -> Tensor:
    """:func:`auroc` for a binary task, in torchmetrics' ``binary_auroc`` argument order.

    Example:
        >>> import torch
        >>> binary_auroc(torch.tensor([0.0, 0.5, 0.7, 0.8]), torch.tensor([0, 1, 1, 0])).item()
        0.5
    """
    return auroc(
        preds, target, "binary", thresholds, None, None, "macro", max_fpr, ignore_index, validate_args,
        num_bins=num_bins, input=input, spacing=spacing, undefined=undefined,
    )  # fmt: skip


def multiclass_auroc(
    preds: Tensor,
    target: Tensor,
    num_classes: int,
    average: Average | None = "macro",
    thresholds: Thresholds = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    input: InputKind = "auto",
    spacing: Spacing = DEFAULT_SPACING,
    undefined: float = math.nan,
) -> Tensor:
    """:func:`auroc` for a multiclass task (one-vs-rest), in torchmetrics' ``multiclass_auroc`` argument order.

    Example:
        >>> import torch
        >>> preds = torch.tensor([[0.75, 0.05, 0.05, 0.05, 0.05], [0.05, 0.75, 0.05, 0.05, 0.05],
        ...                       [0.05, 0.05, 0.75, 0.05, 0.05], [0.05, 0.05, 0.05, 0.75, 0.05]])
        >>> [round(v, 4) for v in multiclass_auroc(preds, torch.tensor([0, 1, 3, 2]), 5, average=None).tolist()]
        [1.0, 1.0, 0.3333, 0.3333, nan]
        >>> round(multiclass_auroc(preds, torch.tensor([0, 1, 3, 2]), 5, undefined=0.0).item(), 4)  # torchmetrics'
        0.5333
    """
    return auroc(
        preds, target, "multiclass", thresholds, num_classes, None, average, None, ignore_index, validate_args,
        num_bins=num_bins, input=input, spacing=spacing, undefined=undefined,
    )  # fmt: skip


def multilabel_auroc(
    preds: Tensor,
    target: Tensor,
    num_labels: int,
    average: Average | None = "macro",
    thresholds: Thresholds = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
    *,
    num_bins: int = DEFAULT_NUM_BINS,
    input: InputKind = "auto",
    spacing: Spacing = DEFAULT_SPACING,
    undefined: float = math.nan,
) -> Tensor:
    """:func:`auroc` for a multilabel task, in torchmetrics' ``multilabel_auroc`` argument order.

    Example:
        >>> import torch
        >>> preds = torch.tensor([[0.75, 0.05, 0.35], [0.45, 0.75, 0.05], [0.05, 0.55, 0.75], [0.05, 0.65, 0.05]])
        >>> target = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 1]])
        >>> round(multilabel_auroc(preds, target, 3).item(), 4)
        0.6528
    """
    return auroc(
        preds, target, "multilabel", thresholds, None, num_labels, average, None, ignore_index, validate_args,
        num_bins=num_bins, input=input, spacing=spacing, undefined=undefined,
    )  # fmt: skip
