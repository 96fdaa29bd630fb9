"""AUROC, ROC curve and threshold metrics from score histograms (binned) or kept scores (exact)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_genmetrics._checks import check_bool
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.functional.auroc import (
    AVERAGES,
    DEFAULT_NUM_BINS,
    DEFAULT_SPACING,
    INPUT_KINDS,
    Average,
    InputKind,
    Spacing,
    Task,
    Thresholds,
    auroc_inputs_to_scores,
    average_per_label,
    binned_thresholds,
    check_choice,
    check_ignore_index,
    check_max_fpr,
    check_task_width,
    counts_to_threshold_metrics,
    exact_scores_to_average_auroc,
    histograms_to_auroc_error_bound,
    histograms_to_average_auroc,
    histograms_to_roc,
    resolve_thresholds,
    roc_to_auroc,
    scores_are_log_odds,
    scores_to_histograms,
    scores_to_probabilities,
    scores_to_threshold_histograms,
    scores_to_tied_groups,
    threshold_histograms_to_auroc_error_bound,
    threshold_histograms_to_roc,
)
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum

_HISTOGRAMS = ("negative_hist", "positive_hist")
_KEPT = ("scores", "positives")

RocCurve = tuple[Tensor | list[Tensor], Tensor | list[Tensor], Tensor | list[Tensor]]


class AUROC(SufficientStatisticMetric):
    """Area under the ROC curve, the ROC curve, and metrics at a threshold, for binary, multiclass and multilabel tasks.

    The arguments are torchmetrics' ``AUROC``'s, in its order, with its meaning; ``thresholds`` has another default.

    **Binned mode** (``thresholds="binned"``, the default): per label, two int64 histograms ``negative_hist`` and
    ``positive_hist`` ``[L, T]`` of the scores over the bins of ``num_bins`` (2001) thresholds. Memory is
    ``16·L·T`` bytes whatever the number of samples (32 KB per label), an update is a ``bucketize`` and a
    ``bincount`` (O(n log T), no ``n × T`` matrix), and DDP sync is one all-reduce per histogram. The AUROC is the
    exact AUROC of the binned scores (ties within a bin count ½), within ``Σ_k pos_k·neg_k / (2PN) ≤ ½·max_k neg_k
    / N`` of the exact value: :meth:`error_bound` returns this bound for the data seen. ``spacing`` lays out the
    thresholds (:func:`~lightning_genmetrics.functional.auroc.binned_thresholds`): ``"linear+logit"`` merges
    ``linspace(0, 1, T // 2)`` with ``T - T // 2`` thresholds spread over the log-odds of every float64
    probability, so the saturated scores of a confident classifier are still told apart (with ``"linear"``, a
    10-class classifier with logits of scale 20 reads 0.67 for an exact 0.77; the default is 4e-6 off). Over 14
    families of scores (``benchmarks/auroc.py``) the default was within 5e-5 of the exact AUROC on confident
    ones and within 3e-4 on the others.

    **Exact mode** (``thresholds=None``, torchmetrics' default): keeps every score (float64) and label, ``O(n·L)``
    memory that grows with the data, and DDP sync gathers them. The AUROC is scikit-learn's ``roc_auc_score``
    and torchmetrics' number up to float rounding.

    **torchmetrics' binned mode** (``thresholds=T``, a list or a 1-D tensor, increasing): histograms around those
    thresholds (``T``: ``linspace(0, 1, T)``), the value torchmetrics computes from them: the area of the curve
    through the points at the thresholds (it starts at the highest threshold, not at (0, 0)).

    Tasks: ``"binary"`` (scores and {0, 1} targets of any equal shape), ``"multiclass"`` (``[N, C, ...]`` scores,
    ``[N, ...]`` class targets, one-vs-rest per class) and ``"multilabel"`` (``[N, L, ...]`` scores and targets);
    extra dimensions are flattened into the batch. ``input`` says what ``preds`` are: ``"auto"`` (torchmetrics'
    rule, decided per batch: any value outside [0, 1] makes the batch logits, put through a float64 sigmoid, or
    softmax for multiclass), ``"probs"`` (checked to lie in [0, 1]) or ``"logits"`` (binary and multilabel logits
    are then ranked and binned on the log-odds axis, beyond the sigmoid's saturation). Integer {0, 1} predictions
    are scores like any other. ``average`` reduces per-label values: ``"macro"``, ``"weighted"`` (by positives),
    ``"micro"`` (pooled one-vs-rest pairs) or ``"none"``/``None``. A label without positives or negatives is
    ``undefined`` (NaN, with a warning, left out of the averages; torchmetrics reports 0 there, which
    ``undefined=0.0`` reproduces).

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        thresholds: ``"binned"``, ``None`` (exact), an int, a list of floats in [0, 1] or a 1-D tensor.
        num_classes: the number of classes of a multiclass task (ignored by the other tasks, as torchmetrics).
        num_labels: the number of labels of a multilabel task (ignored by the other tasks).
        average: the reduction of multiclass and multilabel values.
        max_fpr: binary only: the McClish-standardised partial AUROC over ``[0, max_fpr]``, as
            ``sklearn.metrics.roc_auc_score(max_fpr=...)``.
        ignore_index: a target value left out (multilabel: that entry only).
        validate_args: accepted for torchmetrics' signature; the checks always run (a bad label would otherwise
            land silently in a histogram).
        num_bins: ``thresholds="binned"`` only: the number of thresholds ``T`` (>= 2 for ``"linear"``, >= 4 for
            ``"linear+logit"``).
        input: ``"auto"``, ``"probs"`` or ``"logits"``.
        spacing: ``thresholds="binned"`` only: ``"linear+logit"`` or ``"linear"``.
        undefined: the value of an AUROC without positives or negatives.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an unknown option, too few ``num_bins``, ``num_bins``/``spacing`` with other ``thresholds``,
            ``num_bins=None`` (the exact mode is ``thresholds=None``), ``num_classes``/``num_labels`` missing or
            < 2, ``max_fpr`` outside (0, 1] or for a task other than binary.

    Example:
        >>> import torch
        >>> metric = AUROC("binary")
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
        thresholds: Thresholds = "binned",
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        width = check_task_width(task, num_classes, num_labels)
        self.task: Task = task
        self.num_classes = width if task == "multiclass" else None
        self.num_labels = width if task == "multilabel" else None
        self.input: InputKind = check_choice(input, "input", INPUT_KINDS)  # type: ignore[assignment]
        self.average: Average = check_choice(  # type: ignore[assignment]
            "none" if average is None else average, "average", AVERAGES
        )
        self.max_fpr = check_max_fpr(max_fpr, task)
        self.ignore_index = check_ignore_index(ignore_index)
        self.validate_args = check_bool(validate_args, "validate_args")
        if isinstance(undefined, bool) or not isinstance(undefined, (int, float)):
            raise TypeError(f"Expected `undefined` to be a float, got {undefined!r}.")
        self.undefined = float(undefined)
        layout = resolve_thresholds(thresholds, num_bins, spacing)
        self._width = width
        self._layout = "exact" if layout is None else "binned" if isinstance(layout, str) else "thresholds"
        binned = self._layout == "binned"
        self.num_bins = num_bins if binned else None
        self.spacing: Spacing | None = spacing if binned else None
        if layout is None:
            self.thresholds: Tensor | None = None
            self.add_state("scores", [], dist_reduce_fx="cat")
            self.add_state("positives", [], dist_reduce_fx="cat")
            return
        self.thresholds = binned_thresholds(num_bins, spacing) if binned else layout  # type: ignore[arg-type]
        groups = num_bins if binned else self.thresholds.numel() + 1
        for name in _HISTOGRAMS:
            self.add_state(name, torch.zeros(width, groups, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def exact(self) -> bool:
        """Whether the metric keeps every score (``thresholds=None``)."""
        return self._layout == "exact"

    def _configuration(self) -> dict[str, Any]:
        configuration = super()._configuration()
        if self._layout == "thresholds":
            configuration["thresholds"] = tuple(self.thresholds.tolist())  # type: ignore[union-attr]
        else:
            configuration["thresholds"] = None if self.exact else "binned"
        return configuration

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of scores and labels.

        Args:
            preds: scores (floating, or integer {0, 1}); binary: any shape; multiclass: ``[N, C, ...]``;
                multilabel: ``[N, L, ...]``.
            target: integer or bool labels; binary: ``preds``' shape, in {0, 1}; multiclass: ``[N, ...]``
                in ``[0, C)``; multilabel: ``preds``' shape, in {0, 1}; or ``ignore_index``.

        Raises:
            TypeError: not tensors, floating ``target``.
            ValueError: wrong shapes, NaN/Inf scores, probabilities outside [0, 1] with ``input="probs"``, labels
                out of range.
        """
        scores, positives = auroc_inputs_to_scores(preds, target, self.task, self._width, self.input, self.ignore_index)
        if self.exact:
            self.scores.append(scores)
            self.positives.append(positives.to(torch.uint8))
            return
        log_odds = scores_are_log_odds(self.task, self.input)
        if self._layout == "binned":
            negative, positive = scores_to_histograms(scores, positives, self.num_bins, self.spacing, log_odds=log_odds)
        else:
            negative, positive = scores_to_threshold_histograms(scores, positives, self.thresholds, log_odds=log_odds)
        self.negative_hist = self.negative_hist + negative.to(self.negative_hist.device)
        self.positive_hist = self.positive_hist + positive.to(self.positive_hist.device)

    def _kept(self) -> tuple[Tensor, Tensor]:
        """The exact mode's scores ``[n, L]`` (float64; NaN: ignored) and positives ``[n, L]`` (bool)."""
        if not self.scores:
            empty = torch.zeros(0, self._width, dtype=torch.float64)
            return empty, empty.to(torch.bool)
        return torch.cat(self.scores), torch.cat(self.positives).to(torch.bool)

    def _check_not_empty(self) -> None:
        if self.exact:
            seen = sum(int(p.shape[0]) for p in self.positives)
        else:
            seen = int(self.positive_hist.sum() + self.negative_hist.sum())
        # A batch whose every target was ignored has been seen: its AUROC is undefined, not missing.
        if seen == 0 and self.update_count == 0:
            raise RuntimeError(f"{type(self).__name__} has no samples yet: call `update` first.")

    def compute(self) -> Tensor:
        """The AUROC (float64): a scalar, or ``[L]`` per label with ``average="none"``.

        Undefined (no positive or no negative; for ``"macro"``/``"weighted"``, for every label) is ``undefined``
        (NaN), with a warning.

        Raises:
            RuntimeError: no samples yet.
        """
        self._check_not_empty()
        if self.exact:
            return exact_scores_to_average_auroc(
                *self._kept(), self.task, self.average, max_fpr=self.max_fpr, undefined=self.undefined
            )
        return histograms_to_average_auroc(
            self.negative_hist,
            self.positive_hist,
            self.task,
            self.average,
            thresholds=self.thresholds if self._layout == "thresholds" else None,
            max_fpr=self.max_fpr,
            undefined=self.undefined,
        )

    def error_bound(self) -> Tensor:
        """A bound on ``|compute() - exact AUROC|`` for the data seen, reduced like ``compute`` (0 in the exact mode).

        Binned: per label ``Σ_k pos_k·neg_k / (2PN)`` (every positive–negative pair sharing a bin is off by at most
        ½), adjusted for ``max_fpr`` (:func:`~lightning_genmetrics.functional.auroc.histograms_to_auroc_error_bound`).
        Explicit thresholds: :func:`~lightning_genmetrics.functional.auroc.threshold_histograms_to_auroc_error_bound`.
        The bound of a macro or weighted average is the same average of the bounds.

        Raises:
            RuntimeError: no samples yet.
            ValueError: explicit ``thresholds`` with ``max_fpr`` (no bound is derived for that case).
        """
        if self._layout == "thresholds" and self.max_fpr is not None:
            raise ValueError(
                "Expected thresholds='binned' or None for `error_bound()` with `max_fpr`, got explicit thresholds."
            )
        with self._synced():
            self._check_not_empty()
            if self.exact:
                per_label = self.task != "binary" and self.average == "none"
                return torch.zeros((self._width,) if per_label else (), dtype=torch.float64)
            neg, pos = self.negative_hist, self.positive_hist
            if self.task == "binary" or self.average == "micro":
                neg, pos = neg.sum(dim=0, keepdim=True), pos.sum(dim=0, keepdim=True)
            if self._layout == "binned":
                bounds = histograms_to_auroc_error_bound(neg, pos, self.max_fpr)
            else:
                bounds = threshold_histograms_to_auroc_error_bound(neg, pos)
            if self.task == "binary" or self.average == "micro":
                return bounds[0]
            return average_per_label(bounds, pos.sum(dim=1), self.average)

    def roc(self) -> RocCurve:
        """The ROC curve ``(fpr, tpr, thresholds)``; thresholds are probabilities, decreasing.

        Point ``i`` is the (false, true) positive rate of scores ``>= thresholds[i]``. Binned and exact, the first
        threshold is ``+inf``, the point (0, 0); with explicit thresholds the points are torchmetrics' (at those
        thresholds only). Binary: 1-D tensors. Multiclass and multilabel, one curve per label (``average`` is not
        applied): binned, ``fpr`` and ``tpr`` ``[L, K]`` and the shared ``thresholds`` ``[K]``; exact, lists of
        per-label tensors. Rates of a label without negatives (positives) are NaN. Binned ``"linear+logit"``
        thresholds above ``sigmoid(36.7)`` read 1.0 (float64 cannot tell them apart): logits beyond it still get
        their own points, probabilities share the last one.

        Raises:
            RuntimeError: no samples yet.
        """
        with self._synced():
            self._check_not_empty()
            if not self.exact:
                grid = self.thresholds.to(self.negative_hist.device)  # type: ignore[union-attr]
                curve = histograms_to_roc if self._layout == "binned" else threshold_histograms_to_roc
                fpr, tpr, thresholds = curve(self.negative_hist, self.positive_hist, grid)
                if self.task == "binary":
                    return fpr[0], tpr[0], thresholds
                return fpr, tpr, thresholds
            scores, positives = self._kept()
            curves = []
            for j in range(self._width):
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

        Binned modes: the nearest of the thresholds is used (exact counts there) and returned as ``threshold``; the
        default thresholds hold 0.5 exactly. With ``spacing="linear"`` or ``thresholds=T`` choose ``T`` so that the
        thresholds you need lie on the grid ``k / (T - 1)`` (e.g. ``T = 1001`` for 0.5, which ``torch.linspace``'s
        float32 grid holds as 0.49999997). Multiclass and multilabel tasks give per-label ``[L]`` values
        (one-vs-rest). 0/0 is NaN.

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
                valid = ~torch.isnan(scores)
                predicted = scores_to_probabilities(scores, self.task, self.input) >= threshold
                used = torch.tensor(float(threshold), dtype=torch.float64)
                positives, negatives = positives & valid, ~positives & valid
                tp, fp = (predicted & positives).sum(dim=0), (predicted & negatives).sum(dim=0)
                fn, tn = (~predicted & positives).sum(dim=0), (~predicted & negatives).sum(dim=0)
            else:
                k = int(torch.argmin((self.thresholds - threshold).abs()))  # type: ignore[operator]
                used = self.thresholds[k]  # type: ignore[index]
                # Explicit thresholds have a group below the first one: group k + 1 starts at threshold k.
                first = k if self._layout == "binned" else k + 1
                neg, pos = self.negative_hist, self.positive_hist
                tp, fp = pos[:, first:].sum(dim=1), neg[:, first:].sum(dim=1)
                fn, tn = pos[:, :first].sum(dim=1), neg[:, :first].sum(dim=1)
            out = counts_to_threshold_metrics(tp, fp, fn, tn)
            if self.task == "binary":
                out = {name: value[0] for name, value in out.items()}
            out["threshold"] = used
            return out

    def plot(self, val: Any = None, ax: Any = None, *, curve: bool = False) -> Any:
        """Draw the value (as every metric here), or with ``curve=True`` the ROC curve(s) of the data seen.

        ``curve=True`` draws :meth:`roc` (one line per class or label, each labelled with its AUROC) with
        torchmetrics' ``plot_curve``, as its ``BinaryROC.plot`` does.

        Returns:
            ``(figure, axes)``.

        Raises:
            ModuleNotFoundError: matplotlib is not installed (``pip install matplotlib``, the ``plots`` extra).
            ValueError: ``curve=True`` with a ``val``.

        Example:
            >>> import matplotlib
            >>> matplotlib.use("Agg")
            >>> metric = MulticlassAUROC(3)
            >>> preds = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
            >>> metric.update(preds, torch.tensor([0, 1, 2]))
            >>> figure, axes = metric.plot(curve=True)
        """
        if not curve:
            return super().plot(val, ax)
        if val is not None:
            raise ValueError("Expected `val` to be None with curve=True: the curve is drawn from the metric's state.")
        self._require_matplotlib()
        from torchmetrics.utilities.plot import plot_curve

        fpr, tpr, thresholds = self.roc()
        if isinstance(fpr, list):
            score = torch.stack([roc_to_auroc(x, y) for x, y in zip(fpr, tpr, strict=True)])
        else:
            score = roc_to_auroc(fpr, tpr)  # type: ignore[arg-type]
        return plot_curve(
            (fpr, tpr, thresholds),
            score=score,
            ax=ax,
            label_names=("False positive rate", "True positive rate"),
            name=type(self).__name__,
        )

    def _synced(self) -> Any:
        """The global state for the duration of a ``with`` block (as ``compute`` has it)."""
        return self.sync_context(
            dist_sync_fn=self.dist_sync_fn,
            should_sync=tm_compat.should_sync_now(self),
            should_unsync=tm_compat.should_unsync_now(self),
        )

    def merge_state(self, incoming_state: dict[str, Any] | Any) -> None:
        """Fold another ``AUROC``'s state (or a state dict) into this one.

        Raises:
            ValueError: the other metric bins with other thresholds (``thresholds``, ``num_bins`` or ``spacing``),
                or is exact while this one is binned (or the other way round).
        """
        if isinstance(incoming_state, AUROC):
            ours = (self._configuration()["thresholds"], self.num_bins, self.spacing)
            other = incoming_state
            theirs = (other._configuration()["thresholds"], other.num_bins, other.spacing)
            if ours != theirs:
                raise ValueError(
                    f"Cannot merge an AUROC state with (thresholds, num_bins, spacing) = {theirs} into one with {ours}."
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
    """:class:`AUROC` for a binary task, in torchmetrics' ``BinaryAUROC`` argument order.

    Example:
        >>> import torch
        >>> metric = BinaryAUROC(thresholds=None)
        >>> metric.update(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> metric.compute().item()
        0.75
    """

    def __init__(
        self,
        max_fpr: float | None = None,
        thresholds: Thresholds = "binned",
        ignore_index: int | None = None,
        validate_args: bool = True,
        *,
        num_bins: int = DEFAULT_NUM_BINS,
        input: InputKind = "auto",
        spacing: Spacing = DEFAULT_SPACING,
        undefined: float = math.nan,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "binary", thresholds, None, None, "macro", max_fpr, ignore_index, validate_args,
            num_bins=num_bins, input=input, spacing=spacing, undefined=undefined, **kwargs,
        )  # fmt: skip


class MulticlassAUROC(AUROC):
    """:class:`AUROC` for a multiclass task (one-vs-rest), in torchmetrics' ``MulticlassAUROC`` argument order.

    Example:
        >>> import torch
        >>> metric = MulticlassAUROC(3, thresholds=None)
        >>> metric.update(torch.eye(3), torch.tensor([0, 1, 2]))
        >>> metric.compute().item()
        1.0
    """

    def __init__(
        self,
        num_classes: int,
        average: Average | None = "macro",
        thresholds: Thresholds = "binned",
        ignore_index: int | None = None,
        validate_args: bool = True,
        *,
        num_bins: int = DEFAULT_NUM_BINS,
        input: InputKind = "auto",
        spacing: Spacing = DEFAULT_SPACING,
        undefined: float = math.nan,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "multiclass", thresholds, num_classes, None, average, None, ignore_index, validate_args,
            num_bins=num_bins, input=input, spacing=spacing, undefined=undefined, **kwargs,
        )  # fmt: skip


class MultilabelAUROC(AUROC):
    """:class:`AUROC` for a multilabel task, in torchmetrics' ``MultilabelAUROC`` argument order.

    Example:
        >>> import torch
        >>> metric = MultilabelAUROC(2, average="none", thresholds=None)
        >>> metric.update(torch.tensor([[0.9, 0.2], [0.1, 0.7], [0.4, 0.6]]), torch.tensor([[1, 0], [0, 1], [0, 0]]))
        >>> metric.compute().tolist()
        [1.0, 1.0]
    """

    def __init__(
        self,
        num_labels: int,
        average: Average | None = "macro",
        thresholds: Thresholds = "binned",
        ignore_index: int | None = None,
        validate_args: bool = True,
        *,
        num_bins: int = DEFAULT_NUM_BINS,
        input: InputKind = "auto",
        spacing: Spacing = DEFAULT_SPACING,
        undefined: float = math.nan,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "multilabel", thresholds, None, num_labels, average, None, ignore_index, validate_args,
            num_bins=num_bins, input=input, spacing=spacing, undefined=undefined, **kwargs,
        )  # fmt: skip
