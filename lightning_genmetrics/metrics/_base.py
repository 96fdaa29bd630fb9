"""The common shell of the library's metrics: exact merges, all-reduce sync, untouched state on error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchmetrics import Metric

from lightning_genmetrics._compat import torchmetrics as tm_compat
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

    - ``forward`` returns the batch's own value, as torchmetrics' does (``compute()`` on a state holding the
      batch alone), and then folds the batch into the running state with the exact merge; if anything
      raises, the state is what it was before the call. Classes with ``_forward_accumulates_only`` (FID, IS,
      KID: a one-batch value is meaningless, and torchmetrics' forward raises on a one-sided batch and
      loses its state) only accumulate and return ``None``.
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
    # True where `update` takes an `ImageBatch` in place of its images (the image metrics): the callback then hands
    # it the batch every metric reads (see `callbacks/plug.py`), not the batch's uint8 tensor.
    accepts_image_batch = False
    _forward_accumulates_only = False
    _kept_on_reset: tuple[str, ...] = ()
    _size_name = "feature dimension"

    def __init__(self, **kwargs: Any) -> None:
        tm_compat.check_overridden_hooks()
        super().__init__(**kwargs)

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

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Accumulate a batch (as ``update``) and return the metric's value on that batch alone.

        The value is also kept in ``_forward_cache``, which is what ``LightningModule.log(name, metric,
        on_step=True)`` logs. Under ``_forward_accumulates_only`` this only accumulates and returns ``None``.
        If ``update`` raises, or the batch cannot join the running state (a lazily fixed size that differs),
        nothing changes; if only the batch's ``compute`` raises (a batch the metric cannot score alone), the
        batch is still accumulated and the error is re-raised.
        """
        if self._forward_accumulates_only:
            self.update(*args, **kwargs)
            return None
        saved = tm_compat.copy_states(self)
        bookkeeping = tm_compat.update_bookkeeping(self)
        with tm_compat.batch_value_scope(self):
            Metric.reset(self)  # the whole state, real side included: the value is the batch's alone
            try:
                self.update(*args, **kwargs)
            except BaseException:
                self._restore(saved, bookkeeping)
                raise
            try:
                value = self.compute()
            finally:
                try:
                    with torch.no_grad():
                        self._merge_state(saved)
                except BaseException:
                    # A batch the running state cannot take (a lazily sized state fixed otherwise): drop the batch.
                    self._restore(saved, bookkeeping)
                    raise
                tm_compat.restore_update_bookkeeping(self, tm_compat.UpdateBookkeeping(bookkeeping.count + 1, None))
        tm_compat.set_forward_cache(self, value)
        return value

    def _restore(self, state: dict[str, Any], bookkeeping: tm_compat.UpdateBookkeeping) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        tm_compat.restore_update_bookkeeping(self, bookkeeping)

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Draw the value (``compute()`` when ``val`` is None, or a list of values over time) with matplotlib.

        Scalars and per-class vectors are drawn as torchmetrics' ``Metric.plot`` draws them (its
        ``plot_single_or_multi_val``, with ``higher_is_better`` and the metric's bounds).

        Returns:
            ``(figure, axes)``.

        Raises:
            ModuleNotFoundError: matplotlib is not installed (``pip install matplotlib``, the ``plots`` extra).

        Example:
            >>> import matplotlib
            >>> matplotlib.use("Agg")
            >>> from lightning_genmetrics import SegmentationMetrics
            >>> metric = SegmentationMetrics(num_classes=3)
            >>> metric.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
            >>> figure, axes = metric.plot(metric.compute()["iou"])
        """
        self._require_matplotlib()
        return tm_compat.plot_value(self, val, ax)

    def _require_matplotlib(self) -> None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as error:
            raise ModuleNotFoundError(
                f"`{type(self).__name__}.plot` needs matplotlib: pip install matplotlib (the `plots` extra)."
            ) from error

    # The three overrides of torchmetrics' private hooks below take the parameters listed in
    # `tm_compat.OVERRIDDEN_HOOKS`, which `__init__` checks against the installed torchmetrics.
    def _wrap_update(self, update: Callable) -> Callable:
        wrapped = super()._wrap_update(update)

        @functools.wraps(update)
        def guarded(*args: Any, **kwargs: Any) -> None:
            bookkeeping = tm_compat.update_bookkeeping(self)
            try:
                wrapped(*args, **kwargs)
            except BaseException:
                tm_compat.restore_update_bookkeeping(self, bookkeeping)
                raise

        return guarded

    def _reduce_states(self, incoming_state: dict[str, Any]) -> None:
        missing = [name for name in tm_compat.state_names(self) if name not in incoming_state]
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
        _collect_settings(self, "", _metric_bookkeeping().union(tm_compat.state_names(self)), configuration)
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
    """A metric whose every state is a scalar sum.

    Subclasses declare their states with ``add_state(name, zero, dist_reduce_fx="sum")`` (float64 or
    int64 scalars) and, in ``update``, compute everything before touching a state, then pass the
    increments to ``_accumulate_batch``.
    """

    def _accumulate_batch(self, **increments: Tensor) -> None:
        """Add ``increments`` (state name -> value) to the states."""
        for name, increment in increments.items():
            current = getattr(self, name)
            setattr(self, name, current + increment.to(device=current.device, dtype=current.dtype))

    def _count(self) -> int:
        raise NotImplementedError

    def _check_not_empty(self) -> None:
        if self._count() == 0:
            raise RuntimeError(f"{type(self).__name__} has no images yet: call `update` before `compute`.")

    def _merge_state(self, other: dict[str, Any]) -> None:
        for name in tm_compat.state_names(self):
            current = getattr(self, name)
            setattr(self, name, current + other[name].to(device=current.device, dtype=current.dtype))

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        names = sorted(tm_compat.state_names(self))
        for dtype in (torch.float64, torch.int64):
            selected = [name for name in names if getattr(self, name).dtype == dtype]
            if not selected:
                continue
            summed = all_reduce_sum(torch.stack([getattr(self, name).reshape(()) for name in selected]), group)
            for name, value in zip(selected, summed.unbind(0), strict=True):
                setattr(self, name, value)
