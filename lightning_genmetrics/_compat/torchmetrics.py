"""torchmetrics internals the library's metrics rely on, each behind one name.

``torchmetrics.Metric`` offers no public way to do four things the metrics need:

- change the value a lazily sized state is reset to (``_defaults``), once the first batch fixes its size;
- read whether the current read of the state should be synchronised across processes (``_to_sync``,
  ``_should_unsync``: False while ``forward`` computes a batch's own value);
- compute a batch's own value in ``forward`` as torchmetrics does, and undo an ``update`` that raised
  (``_update_count``, ``_computed``, ``_forward_cache``, ``_enable_grad``, ``_is_synced``, ``_copy_state_dict``);
- replace three hooks (``_wrap_update``, ``_reduce_states``, ``_sync_dist``) so that merges are exact,
  synchronisation all-reduces sums and a failed ``update`` leaves no trace.

The hooks are overridden in ``metrics/_base.py``; the parameters those overrides assume are in
``OVERRIDDEN_HOOKS`` and checked by ``check_overridden_hooks`` when the first metric is built, so that a
torchmetrics release that changed one fails loudly instead of merging or synchronising wrongly.
``tests/test_compat_libraries.py`` checks every assumption here against the installed torchmetrics.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from typing import Any, NamedTuple

import torchmetrics
from torch import Tensor
from torchmetrics import Metric

# Hook name -> the parameters (after ``self``) torchmetrics calls it with, as metrics/_base.py overrides it:
# ``_wrap_update(update)`` once per construction, returning the callable stored as ``update``;
# ``_reduce_states(incoming_state)`` from ``merge_state`` (and ``forward``), with the other state as a dict;
# ``_sync_dist(dist_sync_fn, process_group)`` from ``sync`` (so from ``compute`` and ``sync_context``).
OVERRIDDEN_HOOKS: dict[str, tuple[str, ...]] = {
    "_wrap_update": ("update",),
    "_reduce_states": ("incoming_state",),
    "_sync_dist": ("dist_sync_fn", "process_group"),
}


def _hook_mismatches() -> list[str]:
    found = []
    for name, expected in OVERRIDDEN_HOOKS.items():
        hook = getattr(Metric, name, None)
        parameters = None if hook is None else tuple(inspect.signature(hook).parameters)[1:]
        if parameters != expected:
            have = "no such method" if parameters is None else f"({', '.join(parameters)})"
            found.append(f"`Metric.{name}({', '.join(expected)})` ({have} in torchmetrics {torchmetrics.__version__})")
    return found


@functools.cache
def check_overridden_hooks() -> None:
    """Raise when the installed torchmetrics no longer has a hook the library's metrics override, as they assume.

    Called when the first of the library's metrics is built; the answer is kept for the process.

    Raises:
        RuntimeError: a hook of ``OVERRIDDEN_HOOKS`` is missing or takes other parameters.

    Example:
        >>> check_overridden_hooks()  # the installed torchmetrics has them
    """
    mismatches = _hook_mismatches()
    if mismatches:
        raise RuntimeError(
            "lightning_genmetrics' metrics override private hooks of `torchmetrics.Metric` that this torchmetrics "
            f"has changed: {'; '.join(mismatches)}. Install a torchmetrics version listed in lightning_genmetrics' "
            "requirements."
        )


def state_names(metric: Metric) -> tuple[str, ...]:
    """The names of ``metric``'s states (those declared with ``add_state``), in the order they were declared.

    Example:
        >>> from lightning_genmetrics import PeakSignalNoiseRatio
        >>> state_names(PeakSignalNoiseRatio(data_range=1.0))
        ('sum_squared_error', 'total')
    """
    return tuple(metric._defaults)


def set_state_default(metric: Metric, name: str, default: Tensor) -> None:
    """Make ``reset()`` restore the state ``name`` to a copy of ``default`` (a lazily sized state, once sized).

    Example:
        >>> import torch
        >>> from lightning_genmetrics import FrechetDistance
        >>> metric = FrechetDistance()
        >>> set_state_default(metric, "fake_mean", torch.zeros(3, dtype=torch.float64))
        >>> metric.reset()
        >>> metric.fake_mean.shape
        torch.Size([3])
    """
    if name not in metric._defaults:
        raise ValueError(f"Expected `name` to be a state of {type(metric).__name__}, got {name!r}.")
    metric._defaults[name] = default.detach().clone()


def copy_states(metric: Metric) -> dict[str, Any]:
    """A detached copy of every state of ``metric`` (a list state as a new list), keyed by name."""
    return metric._copy_state_dict()


def should_sync_now(metric: Metric) -> bool:
    """Whether a read of the state now should see every process's data, as ``compute`` does.

    ``sync_on_compute`` outside ``forward``; inside ``forward``'s batch value, ``dist_sync_on_step``.
    """
    return bool(metric._to_sync)


def should_unsync_now(metric: Metric) -> bool:
    """Whether the local state comes back after such a read (False inside ``forward``'s batch value)."""
    return bool(metric._should_unsync)


class UpdateBookkeeping(NamedTuple):
    """What ``update`` changes besides the states: its count and the cached ``compute()`` value."""

    count: int
    computed: Any


def update_bookkeeping(metric: Metric) -> UpdateBookkeeping:
    """``metric``'s update count and cached value, to put back with ``restore_update_bookkeeping``."""
    return UpdateBookkeeping(metric._update_count, metric._computed)


def restore_update_bookkeeping(metric: Metric, bookkeeping: UpdateBookkeeping) -> None:
    """Set ``metric``'s update count and cached value (after a failed update, or a batch folded in by hand)."""
    metric._update_count, metric._computed = bookkeeping


def set_forward_cache(metric: Metric, value: Any) -> None:
    """Keep ``value`` as the last ``forward`` value, which ``LightningModule.log(..., on_step=True)`` logs."""
    metric._forward_cache = value


@contextlib.contextmanager
def batch_value_scope(metric: Metric) -> Iterator[None]:
    """The context of torchmetrics' ``forward`` while it computes a batch's own value, and its restoration after.

    Inside: the value is local to this process (synchronised only with ``dist_sync_on_step``), computed on the
    state's device, and differentiable when the inputs are. After (also on error): the settings of ``compute``.
    """
    compute_on_cpu = metric.compute_on_cpu
    metric._to_sync, metric._should_unsync = metric.dist_sync_on_step, False
    metric.compute_on_cpu, metric._enable_grad = False, True
    try:
        yield
    finally:
        metric._is_synced, metric._should_unsync, metric._to_sync = False, True, metric.sync_on_compute
        metric.compute_on_cpu, metric._enable_grad = compute_on_cpu, False


def plot_value(metric: Metric, val: Any, ax: Any) -> Any:
    """torchmetrics' own drawing of a value (``compute()`` when ``val`` is None) with the metric's bounds."""
    return metric._plot(val, ax)
