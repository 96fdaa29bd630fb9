"""The common shell of the library's metrics: exact merges, all-reduce sync, untouched state on error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchmetrics import Metric

from lightning_genmetrics.metrics._distributed import agree_configuration, agree_dimension, all_reduce_sum

# The library's own public modules (extractor wrappers, the Inception port, LPIPS networks) hold settings of the
# metric; their private building blocks hold only fixed architecture, and a user's network may hold anything,
# including values that legitimately differ between ranks.
_PACKAGE_PREFIX = __name__.split(".")[0] + "."


def _holds_settings(module: nn.Module) -> bool:
    cls = type(module)
    return cls.__module__.startswith(_PACKAGE_PREFIX) and not cls.__name__.startswith("_")


def _is_simple(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_is_simple(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))


@functools.cache
def _metric_bookkeeping() -> frozenset[str]:
    """The attributes every ``torchmetrics.Metric`` sets on itself (``training``, ``compute_on_cpu``,
    ``sync_on_compute`` ...): per-process options, not the metric's configuration. Read from a bare
    metric rather than listed, so that a torchmetrics release adding one does not make ranks disagree."""

    class _Bare(Metric):
        def update(self) -> None:
            pass

        def compute(self) -> None:
            pass

    return frozenset(vars(_Bare()))


def _collect_settings(module: nn.Module, prefix: str, skip: frozenset[str], out: dict[str, Any]) -> None:
    for name, value in vars(module).items():
        if not name.startswith("_") and name not in skip and _is_simple(value):
            out[prefix + name] = value
    for name, child in module.named_children():
        if _holds_settings(child):
            _collect_settings(child, f"{prefix}{name}.", skip, out)


class SufficientStatisticMetric(Metric):
    """A ``torchmetrics.Metric`` whose state is a sufficient statistic that merges exactly.

    Subclasses implement:

    - ``_merge_state(other)``: fold another instance's state (a dict of tensors) into this one, exactly;
      used by ``merge_state`` (and so by anything that combines metric objects).
    - ``_sync_states(group, dist_sync_fn)``: make the state the global one across ``group``, with
      all-reduced sums wherever the statistic allows it (instead of torchmetrics' gather-then-sum).

    Differences from a plain ``Metric``:

    - ``forward`` only accumulates and returns ``None``: a per-batch FID or IS is not meaningful.
    - An ``update`` that raises leaves the metric exactly as it was, update count included.
    - States may be sized lazily by the first data seen (a feature dimension, a class count):
      subclasses give ``_lazy_size`` (``None`` while unknown) and ``_allocate(size)``; merges and
      ranks agree on it through ``_adopt_size``.
    - ``reset()`` keeps the states named in ``_kept_on_reset`` when ``reset_real_features`` is False.
    - Before the first state collective of every sync, the ranks check that they share one
      ``_configuration()`` (one all-reduce of a digest); ranks built with different arguments raise
      the same ``ValueError`` naming the differing settings, instead of aborting or hanging in
      collectives of mismatched sizes.
    """

    full_state_update = False
    is_differentiable = False
    reset_real_features = True
    _kept_on_reset: tuple[str, ...] = ()
    _size_name = "feature dimension"

    @property
    def _lazy_size(self) -> int | None:
        return None

    def _allocate(self, size: int) -> None:
        raise NotImplementedError

    def _adopt_size(self, size: int) -> None:
        """Fix the lazily sized states to ``size`` (0: nothing seen yet); a different known size raises."""
        current = self._lazy_size
        if size == 0 or current == size:
            return
        if current is not None:
            raise ValueError(f"Cannot combine a state with {self._size_name} {size} with one of {current}.")
        self._allocate(size)

    def _agree_size(self, group: Any) -> int:
        """Make every rank use the same lazily fixed size (0 while no rank has seen data)."""
        size = agree_dimension(self._lazy_size, self.device, group, what=self._size_name)
        self._adopt_size(size)
        return size

    def reset(self) -> None:
        """Clear the state (keeping the real side when ``reset_real_features`` is False)."""
        kept = {} if self.reset_real_features else {name: getattr(self, name) for name in self._kept_on_reset}
        super().reset()
        for name, value in kept.items():
            setattr(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Accumulate a batch (same as ``update``); there is no per-batch value."""
        self.update(*args, **kwargs)

    def _wrap_update(self, update: Callable) -> Callable:
        wrapped = super()._wrap_update(update)

        @functools.wraps(update)
        def guarded(*args: Any, **kwargs: Any) -> None:
            count, computed = self._update_count, self._computed
            try:
                wrapped(*args, **kwargs)
            except BaseException:
                self._update_count, self._computed = count, computed
                raise

        return guarded

    def _reduce_states(self, incoming_state: dict[str, Any]) -> None:
        missing = [name for name in self._defaults if name not in incoming_state]
        if missing:
            raise ValueError(f"Expected the incoming state to have the states {missing}, it does not.")
        self._merge_state(incoming_state)

    def _configuration(self) -> dict[str, Any]:
        """What every rank must share: the class and the public settings of simple type (numbers, strings,
        bools, ``None``, tuples of them) of the metric and of the library's modules inside it (the extractor's
        ``input_range``, an Inception ``layer``), keyed by attribute path.

        States are left out (their sizes may differ while a rank has seen no data: ``_agree_size`` settles
        those), as are private attributes and torchmetrics' own options. Override to add a private setting.
        """
        cls = type(self)
        configuration: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
        _collect_settings(self, "", _metric_bookkeeping().union(self._defaults), configuration)
        return configuration

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any = None) -> None:
        group = process_group or self.process_group
        # Every sync path (compute, sync(), sync_context) comes here first: check before any state collective.
        if dist.is_initialized() and dist.get_world_size(group) > 1:
            agree_configuration(self._configuration(), self.device, group, owner=type(self).__name__)
        self._sync_states(group, dist_sync_fn)

    def _merge_state(self, other: dict[str, Any]) -> None:
        raise NotImplementedError

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        raise NotImplementedError


class SummedStateMetric(SufficientStatisticMetric):
    """A metric whose every state is a scalar sum, and whose ``forward`` returns the batch's per-image values.

    Subclasses declare their states with ``add_state(name, zero, dist_reduce_fx="sum")`` (float64 or
    int64 scalars) and, in ``update``, compute everything before touching a state, then pass the
    batch's per-image values to ``_accumulate_batch`` (which only keeps a reference for ``forward``).
    """

    _batch_values: Tensor | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:  # type: ignore[override]
        """Accumulate the batch (as ``update``) and return its per-image values ``[N]`` (float64).

        Nothing per-image is stored: the values are returned once and dropped.
        """
        self._batch_values = None
        self.update(*args, **kwargs)
        values, self._batch_values = self._batch_values, None
        return values  # type: ignore[return-value]

    def _accumulate_batch(self, per_image: Tensor, **increments: Tensor) -> None:
        """Add ``increments`` (state name -> value) to the states; keep ``per_image`` for ``forward``."""
        for name, increment in increments.items():
            current = getattr(self, name)
            setattr(self, name, current + increment.to(device=current.device, dtype=current.dtype))
        self._batch_values = per_image.detach()

    def _count(self) -> int:
        raise NotImplementedError

    def _check_not_empty(self) -> None:
        if self._count() == 0:
            raise RuntimeError(f"{type(self).__name__} has no images yet: call `update` before `compute`.")

    def _merge_state(self, other: dict[str, Any]) -> None:
        for name in self._defaults:
            current = getattr(self, name)
            setattr(self, name, current + other[name].to(device=current.device, dtype=current.dtype))

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        names = sorted(self._defaults)
        for dtype in (torch.float64, torch.int64):
            selected = [name for name in names if getattr(self, name).dtype == dtype]
            if not selected:
                continue
            summed = all_reduce_sum(torch.stack([getattr(self, name).reshape(()) for name in selected]), group)
            for name, value in zip(selected, summed.unbind(0), strict=True):
                setattr(self, name, value)
