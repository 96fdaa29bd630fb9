"""PSNR as a streaming metric, and the shell shared by the paired-image metrics that reduce over items.

Their state is a handful of sums (float64 values, int64 counts), so merging two states is an addition and DDP
synchronisation is one all-reduce per dtype. Only ``reduction="none"`` (every item's value, as torchmetrics
returns it) keeps one float64 per item, gathered across ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_genmetrics._checks import check_reduction
from lightning_genmetrics.functional.psnr import (
    DataRange,
    Dim,
    Reduction,
    check_psnr_base,
    check_psnr_data_range,
    check_psnr_dim,
    check_psnr_pair,
    images_to_squared_error_sums,
    mse_to_psnr,
    warn_reduction_without_dim,
)
from lightning_genmetrics.metrics._base import SummedStateMetric


class ItemReducedMetric(SummedStateMetric):
    """A summed-state metric whose ``reduction="none"`` keeps every item's value (torchmetrics' output).

    A subclass calls ``_keep_values(True)`` in ``__init__`` when the reduction asks for every value: the state
    is then the list ``values`` of float64 tensors (one entry per item, O(n) memory, said in the subclass's
    docstring), merged by concatenation in update order and gathered across ranks; otherwise its own sums.
    """

    _keeps_values = False

    def _keep_values(self, keep: bool) -> None:
        self._keeps_values = keep
        if keep:
            self.add_state("values", [], dist_reduce_fx="cat")

    def _kept_values(self) -> Tensor:
        if not self.values:
            return torch.zeros(0, dtype=torch.float64, device=self.device)
        return torch.cat([value.to(self.device) for value in self.values])

    def _count(self) -> int:
        return sum(value.numel() for value in self.values)

    def _merge_state(self, other: dict[str, Any]) -> None:
        if not self._keeps_values:
            super()._merge_state(other)
            return
        incoming = other["values"] if isinstance(other["values"], list) else [other["values"]]
        # torchmetrics' order, incoming first: ``forward`` merges the earlier batches into the batch's own state.
        # Detached: a state never holds the autograd graph of the batch ``forward`` differentiated.
        self.values = [value.detach().to(self.device) for value in (*incoming, *self.values)]

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        if not self._keeps_values:
            super()._sync_states(group, dist_sync_fn)
            return
        gather = dist_sync_fn or gather_all_tensors
        self.values = [torch.cat(gather(self._kept_values(), group=group))]


class PeakSignalNoiseRatio(ItemReducedMetric):
    """PSNR ``10·log_base(R² / MSE)``, streamed over batches, with torchmetrics' arguments and values.

    ``dim`` picks what one MSE is taken over (see :mod:`lightning_genmetrics.functional.psnr`):

    - ``None`` (default, torchmetrics' default): one MSE over every value seen. State: the float64 sum of
      squared errors and the int64 number of values (torchmetrics' ``sum_squared_error`` and ``total``).
      ``reduction`` then changes nothing (torchmetrics warns, and so does this).
    - a dimension or a tuple of them: one PSNR per slice, then ``reduction`` over every slice seen.
      ``dim=(1, 2, 3)`` on ``[N, C, H, W]`` averages per-image PSNRs, the value papers report. State for
      ``"elementwise_mean"`` and ``"sum"``: the float64 sum of slice PSNRs and the int64 slice count
      (constant size, where torchmetrics keeps every slice); ``"none"``/``None`` keeps every slice's
      PSNR (one float64 per slice, gathered across ranks) and returns them in update order.

    A slice identical to its target has PSNR ``inf``, and so has a mean over it (exact, not capped).
    ``forward`` returns the batch's own value and is differentiable, so the metric serves as a loss.

    Args:
        data_range: the width of the value range (1.0 for [0, 1], 2.0 for [-1, 1], 255 for uint8), or
            ``(min, max)``: inputs clamped into it, ``R = max - min``. Required, never inferred from a batch.
        base: the base of the logarithm (10: decibels).
        reduction: ``"elementwise_mean"``, ``"sum"``, or ``"none"``/``None``, over the slices of ``dim``.
        dim: the dimensions of one MSE (an int or a tuple), or ``None`` for all of them.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: ``data_range``, ``base`` or ``dim`` of a wrong type; the removed ``average`` argument
            (the message gives the replacement).
        ValueError: ``data_range=None`` (the message says what to pass), a bad ``data_range``, ``base`` or
            ``reduction``.

    Example:
        >>> import torch
        >>> metric = PeakSignalNoiseRatio(data_range=1.0)
        >>> target = torch.zeros(2, 3, 4, 4)
        >>> preds = target + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
        >>> metric(preds, target)
        tensor(22.9671, dtype=torch.float64)
        >>> per_image = PeakSignalNoiseRatio(1.0, dim=(1, 2, 3))
        >>> per_image(preds, target)
        tensor(30.0000, dtype=torch.float64)
    """

    is_differentiable = True
    higher_is_better = True
    plot_lower_bound = 0.0

    def __init__(
        self,
        data_range: DataRange,
        base: float = 10.0,
        reduction: Reduction | None = "elementwise_mean",
        dim: Dim = None,
        **kwargs: Any,
    ) -> None:
        if "average" in kwargs:
            raise TypeError(
                f"`average` was removed (got average={kwargs['average']!r}): dim=(1, 2, 3) averages per-image "
                "PSNRs (the former average='image'); the default dim=None is one PSNR over all values (the "
                "former average='pixel', torchmetrics' default)."
            )
        super().__init__(**kwargs)
        self.data_range_width, self.clamp_bounds = check_psnr_data_range(data_range)
        self.data_range = self.data_range_width if self.clamp_bounds is None else self.clamp_bounds
        self.base = check_psnr_base(base)
        self.reduction = check_reduction(reduction)
        self.dim = check_psnr_dim(dim)
        warn_reduction_without_dim(self.reduction, self.dim)
        if self.dim is None:
            self.add_state("sum_squared_error", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        else:
            self._keep_values(self.reduction == "none")
            if not self._keeps_values:
                self.add_state("psnr_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
                self.add_state("num_slices", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of image pairs of any shape (integer or floating point).

        Raises:
            TypeError: not tensors, or a complex or bool dtype.
            ValueError: different shapes, NaN/Inf, ``target`` spanning more than ``data_range``, or a ``dim``
                the inputs do not have (or of size 0).
        """
        check_psnr_pair(preds, target, None if self.clamp_bounds else self.data_range_width)
        if self.clamp_bounds is not None:
            preds, target = (values.to(torch.float64).clamp(*self.clamp_bounds) for values in (preds, target))
        squared_error, count = images_to_squared_error_sums(preds, target, self.dim)
        if self.dim is None:
            self._accumulate_batch(sum_squared_error=squared_error, total=torch.tensor(count))
            return
        if count == 0 and squared_error.numel() > 0:
            raise ValueError(f"Expected `dim`={self.dim!r} to span values, got inputs of shape {tuple(preds.shape)}.")
        per_slice = mse_to_psnr(squared_error / max(count, 1), self.data_range_width, self.base).flatten()
        if self._keeps_values:
            self.values.append(per_slice)
        else:
            self._accumulate_batch(psnr_sum=per_slice.sum(), num_slices=torch.tensor(per_slice.numel()))

    def _count(self) -> int:
        if self._keeps_values:
            return super()._count()
        return int(self.total if self.dim is None else self.num_slices)

    def compute(self) -> Tensor:
        """The PSNR (float64): a scalar, or every slice's value for ``reduction="none"`` with ``dim``.

        Raises:
            RuntimeError: nothing seen yet.
        """
        self._check_not_empty()
        if self.dim is None:
            return mse_to_psnr(self.sum_squared_error / self.total, self.data_range_width, self.base)
        if self._keeps_values:
            return self._kept_values()
        return self.psnr_sum / self.num_slices if self.reduction == "elementwise_mean" else self.psnr_sum


PSNR = PeakSignalNoiseRatio
