"""AUROC, ROC curve and threshold metrics from score histograms (binned) or kept scores (exact)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_genmetrics.functional.auroc import (
    AVERAGES,
    INPUT_KINDS,
    SPACINGS,
    TASKS,
    Average,
    InputKind,
    Spacing,
    Task,
    auroc_inputs_to_scores,
    average_per_label,
    binned_thresholds,
    check_choice,
    check_num_bins,
    check_num_labels,
    counts_to_threshold_metrics,
    exact_scores_to_average_auroc,
    histograms_to_auroc_error_bound,
    histograms_to_average_auroc,
    histograms_to_roc,
    scores_are_log_odds,
    scores_to_histograms,
    scores_to_probabilities,
    scores_to_tied_groups,
)
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum

_HISTOGRAMS = ("negative_hist", "positive_hist")
_KEPT = ("scores", "positives")
# The default thresholds: torchmetrics' linspace(0, 1, 1000) (the previous default) plus 1001 log-odds
# thresholds, the middle one p = 1/2.
DEFAULT_NUM_BINS = 2001

RocCurve = tuple[Tensor | list[Tensor], Tensor | list[Tensor], Tensor | list[Tensor]]


class AUROC(SufficientStatisticMetric):
    """Area under the ROC curve, the ROC curve, and metrics at a threshold, for binary, multiclass and multilabel tasks.

    **Binned mode** (``num_bins=T``, the default 2001): per label, two int64 histograms
    ``negative_hist`` and ``positive_hist`` ``[L, T]`` of the scores over the bins of ``T`` thresholds.
    Memory is ``16·L·T`` bytes whatever the number of samples (32 KB per label at the default), an
    update is a ``bucketize`` and a ``bincount`` (O(n log T), no ``n × T`` matrix), and DDP sync is one
    all-reduce per histogram. The AUROC is the exact AUROC of the binned scores (ties within a bin
    count ½), within ``Σ_k pos_k·neg_k / (2PN) ≤ ½·max_k neg_k / N`` of the exact value:
    :meth:`error_bound` returns this bound for the data seen (see :mod:`lightning_genmetrics.functional.auroc`).

    ``spacing`` lays out the thresholds (:func:`~lightning_genmetrics.functional.auroc.binned_thresholds`):
    ``"linear+logit"`` (the default) merges torchmetrics' ``linspace(0, 1, T // 2)`` with ``T - T // 2``
    thresholds spread over the log-odds ``log(p / (1 - p))`` of every float64 probability, so the
    saturated softmax or sigmoid scores of a confident classifier are still told apart; binary and
    multilabel logits are binned on the log-odds axis. ``"linear"`` is ``linspace(0, 1, T)``, torchmetrics'
    ``thresholds=T``, with its value; there a confident classifier's scores share the end bins and the
    AUROC reads low (0.67 for an exact 0.77 with 10 classes and logits of scale 20, where the default is
    4e-6 off). Over 14 families of binary, multiclass and multilabel scores (``benchmarks/auroc.py``)
    the default was within 5e-5 of the exact AUROC on the confident ones and within 3e-4 on the others
    (as close as ``"linear"`` with 1000 thresholds, whose bins it refines).

    **Exact mode** (``num_bins=None``): keeps every score (float64) and label, ``O(n·L)`` memory
    that grows with the data, and DDP sync gathers them. The AUROC is scikit-learn's
    ``roc_auc_score`` (ties handled exactly) up to float64 rounding.

    Tasks: ``"binary"`` (scores and {0, 1} targets of any equal shape), ``"multiclass"``
    (``[N, C]`` scores, ``[N]`` class targets, one-vs-rest per class) and ``"multilabel"`` (``[N, L]``
    scores and {0, 1} targets). ``input`` declares what ``preds`` are, once for all batches:
    ``"probs"`` (checked to lie in [0, 1]) or ``"logits"`` (sigmoid, or softmax for multiclass, in
    float64). ``average`` reduces the per-label AUROC of multiclass and multilabel tasks:
    ``"macro"``, ``"weighted"`` (by positives), ``"micro"`` (pooled one-vs-rest pairs) or ``"none"``;
    labels without both positives and negatives are NaN and left out.

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        num_classes: the number of classes (multiclass) or labels (multilabel); ``None`` for binary.
        num_bins: the number of thresholds ``T`` (>= 2 for ``"linear"``, >= 4 for ``"linear+logit"``),
            or ``None`` for the exact mode.
        input: ``"probs"`` or ``"logits"``.
        average: the reduction of multiclass and multilabel values.
        spacing: the threshold layout of the binned mode, ``"linear+logit"`` or ``"linear"``.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an unknown option, too few ``num_bins``, ``num_classes`` missing or < 2 for a
            multiclass or multilabel task, or given for a binary one.

    Example:
        >>> import torch
        >>> metric = AUROC("binary", num_bins=11, spacing="linear")
        >>> metric.update(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> metric.compute().item()
        0.75
        >>> fpr, tpr, thresholds = metric.roc()
        >>> metric.at_threshold(0.5)["sensitivity"].item()
        0.5
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        task: Task,
        num_classes: int | None = None,
        num_bins: int | None = DEFAULT_NUM_BINS,
        input: InputKind = "probs",
        *,
        average: Average = "macro",
        spacing: Spacing = "linear+logit",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.task: Task = check_choice(task, "task", TASKS)  # type: ignore[assignment]
        self.input: InputKind = check_choice(input, "input", INPUT_KINDS)  # type: ignore[assignment]
        self.average: Average = check_choice(average, "average", AVERAGES)  # type: ignore[assignment]
        self.spacing: Spacing = check_choice(spacing, "spacing", SPACINGS)  # type: ignore[assignment]
        self.num_labels = check_num_labels(task, num_classes)
        self.num_classes = num_classes
        self.num_bins = None if num_bins is None else check_num_bins(num_bins, spacing)
        if self.num_bins is None:
            self.add_state("scores", [], dist_reduce_fx="cat")
            self.add_state("positives", [], dist_reduce_fx="cat")
        else:
            self.thresholds = binned_thresholds(self.num_bins, self.spacing)
            for name in _HISTOGRAMS:
                zeros = torch.zeros(self.num_labels, self.num_bins, dtype=torch.int64)
                self.add_state(name, zeros, dist_reduce_fx="sum")

    @property
    def exact(self) -> bool:
        """Whether the metric keeps every score (``num_bins=None``)."""
        return self.num_bins is None

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of scores and labels.

        Args:
            preds: floating scores; binary: any shape; multiclass: ``[N, C]``; multilabel: ``[N, L]``.
            target: integer or bool labels; binary: ``preds``' shape, in {0, 1}; multiclass: ``[N]``
                in ``[0, C)``; multilabel: ``[N, L]`` in {0, 1}.

        Raises:
            TypeError: not tensors, floating ``target``, non-floating ``preds``.
            ValueError: wrong shapes, NaN/Inf scores, probabilities outside [0, 1] with
                ``input="probs"``, labels out of range.
        """
        scores, positives = auroc_inputs_to_scores(preds, target, self.task, self.num_labels, self.input)
        if self.exact:
            self.scores.append(scores)
            self.positives.append(positives.to(torch.uint8))
            return
        log_odds = scores_are_log_odds(self.task, self.input)
        negative, positive = scores_to_histograms(scores, positives, self.num_bins, self.spacing, log_odds=log_odds)
        self.negative_hist = self.negative_hist + negative.to(self.negative_hist.device)
        self.positive_hist = self.positive_hist + positive.to(self.positive_hist.device)

    def _kept(self) -> tuple[Tensor, Tensor]:
        """The exact mode's scores ``[n, L]`` (float64) and positives ``[n, L]`` (bool)."""
        if not self.scores:
            empty = torch.zeros(0, self.num_labels, dtype=torch.float64)
            return empty, empty.to(torch.bool)
        return torch.cat(self.scores), torch.cat(self.positives).to(torch.bool)

    def _check_not_empty(self) -> None:
        # Every sample adds one count to label 0, as a positive or as a negative.
        if self.exact:
            seen = sum(int(p.shape[0]) for p in self.positives)
        else:
            seen = int(self.positive_hist[0].sum() + self.negative_hist[0].sum())
        if seen == 0:
            raise RuntimeError(f"{type(self).__name__} has no samples yet: call `update` first.")

    def compute(self) -> Tensor:
        """The AUROC (float64): a scalar, or ``[L]`` per label with ``average="none"``.

        Raises:
            RuntimeError: no samples yet, or the AUROC is undefined (no positive or no negative;
                for multiclass and multilabel tasks, for every label).
        """
        self._check_not_empty()
        if self.exact:
            return exact_scores_to_average_auroc(*self._kept(), self.task, self.average)
        return histograms_to_average_auroc(self.negative_hist, self.positive_hist, self.task, self.average)

    def error_bound(self) -> Tensor:
        """A bound on ``|AUROC - exact AUROC|`` for the data seen, reduced like ``compute`` (0 in the exact mode).

        Per label, ``Σ_k pos_k·neg_k / (2PN)``: every positive–negative pair sharing a bin is off
        by at most ½. The bound of a macro or weighted average is the same average of the bounds.
        """
        with self._synced():
            self._check_not_empty()
            if self.exact:
                return torch.zeros(() if self.task == "binary" or self.average != "none" else (self.num_labels,))
            neg, pos = self.negative_hist, self.positive_hist
            if self.task == "binary" or self.average == "micro":
                return histograms_to_auroc_error_bound(neg.sum(dim=0), pos.sum(dim=0))
            return average_per_label(histograms_to_auroc_error_bound(neg, pos), pos.sum(dim=1), self.average)

    def roc(self) -> RocCurve:
        """The ROC curve ``(fpr, tpr, thresholds)``; thresholds are probabilities, decreasing, the first ``+inf``.

        Point ``i`` is the (false, true) positive rate of scores ``>= thresholds[i]`` (the first point
        is (0, 0)). Binary: 1-D tensors. Multiclass and multilabel, one curve per label (``average`` is
        not applied): binned, ``fpr`` and ``tpr`` ``[L, T + 1]`` and the shared ``thresholds`` ``[T + 1]``;
        exact, lists of per-label tensors. Rates of a label without negatives (positives) are NaN.
        Binned ``"linear+logit"`` thresholds above ``sigmoid(36.7)`` read 1.0 (float64 cannot tell them
        apart): logits beyond it still get their own points, probabilities share the last one.

        Raises:
            RuntimeError: no samples yet.
        """
        with self._synced():
            self._check_not_empty()
            if not self.exact:
                grid = self.thresholds.to(self.negative_hist.device)
                fpr, tpr, thresholds = histograms_to_roc(self.negative_hist, self.positive_hist, grid)
                if self.task == "binary":
                    return fpr[0], tpr[0], thresholds
                return fpr, tpr, thresholds
            scores, positives = self._kept()
            curves = []
            for j in range(self.num_labels):
                neg, pos, values = scores_to_tied_groups(scores[:, j], positives[:, j])
                fpr, tpr, thresholds = histograms_to_roc(neg, pos, values)
                # Logits are kept as scores: report their thresholds as probabilities (the first stays +inf).
                thresholds[1:] = scores_to_probabilities(thresholds[1:], self.task, self.input)
                curves.append((fpr, tpr, thresholds))
            if self.task == "binary":
                return curves[0]
            return tuple(list(part) for part in zip(*curves, strict=True))  # type: ignore[return-value]

    def at_threshold(self, threshold: float) -> dict[str, Tensor]:
        """Sensitivity (recall), specificity, precision, accuracy and F1 when ``probability >= threshold`` is positive.

        Binned mode: the nearest of the ``T`` thresholds is used (exact counts there) and returned
        as ``threshold``; the default thresholds hold 0.5 exactly. With ``spacing="linear"`` choose
        ``num_bins`` so that the thresholds you need lie on the grid ``k / (T - 1)`` (e.g. ``T = 1001`` for
        0.5, which ``torch.linspace``'s float32 grid holds as 0.49999997). Multiclass and multilabel tasks
        give per-label ``[L]`` values (one-vs-rest). 0/0 is NaN.

        Raises:
            TypeError: ``threshold`` not a number.
            ValueError: ``threshold`` outside [0, 1].
            RuntimeError: no samples yet.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(
                f"Expected `threshold` to be a float, got {threshold!r} of type {type(threshold).__name__}."
            )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"Expected `threshold` to be a probability in [0, 1], got {threshold}.")
        with self._synced():
            self._check_not_empty()
            if self.exact:
                scores, positives = self._kept()
                predicted = scores_to_probabilities(scores, self.task, self.input) >= threshold
                used = torch.tensor(float(threshold), dtype=torch.float64)
                tp, fp = (predicted & positives).sum(dim=0), (predicted & ~positives).sum(dim=0)
                fn, tn = (~predicted & positives).sum(dim=0), (~predicted & ~positives).sum(dim=0)
            else:
                k = int(torch.argmin((self.thresholds - threshold).abs()))
                used = self.thresholds[k]
                neg, pos = self.negative_hist, self.positive_hist
                tp, fp = pos[:, k:].sum(dim=1), neg[:, k:].sum(dim=1)
                fn, tn = pos[:, :k].sum(dim=1), neg[:, :k].sum(dim=1)
            out = counts_to_threshold_metrics(tp, fp, fn, tn)
            if self.task == "binary":
                out = {name: value[0] for name, value in out.items()}
            out["threshold"] = used
            return out

    def _synced(self) -> Any:
        """The global state for the duration of a ``with`` block (as ``compute`` has it)."""
        return self.sync_context(
            dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=self._should_unsync
        )

    def merge_state(self, incoming_state: dict[str, Any] | Any) -> None:
        """Fold another ``AUROC``'s state (or a state dict) into this one.

        Raises:
            ValueError: the other metric bins with other thresholds (``num_bins`` or ``spacing``), or is exact
                while this one is binned (or the other way round).
        """
        if isinstance(incoming_state, AUROC):
            ours, theirs = (self.num_bins, self.spacing), (incoming_state.num_bins, incoming_state.spacing)
            if self.exact != incoming_state.exact or (not self.exact and ours != theirs):
                raise ValueError(
                    f"Cannot merge an AUROC state with (num_bins, spacing) = {theirs} into one with {ours}."
                )
        super().merge_state(incoming_state)

    def _merge_state(self, other: dict[str, Any]) -> None:
        if self.exact:
            for name in _KEPT:
                incoming = other[name] if isinstance(other[name], list) else [other[name]]
                device = self.device
                setattr(self, name, [*getattr(self, name), *(t.to(device) for t in incoming)])
            return
        if other["positive_hist"].shape != self.positive_hist.shape:
            raise ValueError(
                f"Cannot merge histograms of shape {list(other['positive_hist'].shape)} into ones of shape "
                f"{list(self.positive_hist.shape)}."
            )
        for name in _HISTOGRAMS:
            setattr(self, name, getattr(self, name) + other[name].to(getattr(self, name).device))

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        if not self.exact:
            for name in _HISTOGRAMS:
                setattr(self, name, all_reduce_sum(getattr(self, name), group))
            return
        # The exact mode keeps the scores themselves: O(n) per rank, gathered (documented).
        gather = dist_sync_fn or gather_all_tensors
        scores, positives = self._kept()
        self.scores = [torch.cat(gather(scores.to(self.device), group=group))]
        self.positives = [torch.cat(gather(positives.to(torch.uint8).to(self.device), group=group))]


class BinaryAUROC(AUROC):
    """:class:`AUROC` for a binary task: ``BinaryAUROC(num_bins, input, spacing=...)``.

    Example:
        >>> import torch
        >>> metric = BinaryAUROC(num_bins=None)
        >>> metric.update(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> metric.compute().item()
        0.75
    """

    def __init__(
        self,
        num_bins: int | None = DEFAULT_NUM_BINS,
        input: InputKind = "probs",
        *,
        spacing: Spacing = "linear+logit",
        **kwargs: Any,
    ) -> None:
        super().__init__("binary", None, num_bins, input, spacing=spacing, **kwargs)


class MulticlassAUROC(AUROC):
    """:class:`AUROC` for a multiclass task (one-vs-rest): ``MulticlassAUROC(num_classes, num_bins, input, ...)``.

    Example:
        >>> import torch
        >>> metric = MulticlassAUROC(3, num_bins=None)
        >>> metric.update(torch.eye(3), torch.tensor([0, 1, 2]))
        >>> metric.compute().item()
        1.0
    """

    def __init__(
        self,
        num_classes: int,
        num_bins: int | None = DEFAULT_NUM_BINS,
        input: InputKind = "probs",
        *,
        average: Average = "macro",
        spacing: Spacing = "linear+logit",
        **kwargs: Any,
    ) -> None:
        super().__init__("multiclass", num_classes, num_bins, input, average=average, spacing=spacing, **kwargs)


class MultilabelAUROC(AUROC):
    """:class:`AUROC` for a multilabel task: ``MultilabelAUROC(num_labels, num_bins, input, average=...)``.

    Example:
        >>> import torch
        >>> metric = MultilabelAUROC(2, num_bins=None, average="none")
        >>> metric.update(torch.tensor([[0.9, 0.2], [0.1, 0.7], [0.4, 0.6]]), torch.tensor([[1, 0], [0, 1], [0, 0]]))
        >>> metric.compute().tolist()
        [1.0, 1.0]
    """

    def __init__(
        self,
        num_labels: int,
        num_bins: int | None = DEFAULT_NUM_BINS,
        input: InputKind = "probs",
        *,
        average: Average = "macro",
        spacing: Spacing = "linear+logit",
        **kwargs: Any,
    ) -> None:
        super().__init__("multilabel", num_labels, num_bins, input, average=average, spacing=spacing, **kwargs)
