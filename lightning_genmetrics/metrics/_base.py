"""The common shell of the library's metrics: exact merges, all-reduce sync, untouched state on error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torchmetrics import Metric


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
    """

    full_state_update = False
    is_differentiable = False

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

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any = None) -> None:
        self._sync_states(process_group or self.process_group, dist_sync_fn)

    def _merge_state(self, other: dict[str, Any]) -> None:
        raise NotImplementedError

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        raise NotImplementedError
