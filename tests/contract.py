"""The contract every metric of the library keeps (../DESIGN.md, "Rules the design keeps"), checked in one place.

``MetricContract(make_metric, batches)`` checks, on one family's inputs:

- ``check_batch_split``: the batches fed one by one give the value of the same samples fed in one ``update`` (one
  per distinct set of non-tensor arguments: FID's real and generated sides are two);
- ``check_merge``: two metrics fed the two parts of the stream (at every cut, an empty part included) and merged
  with ``merge_state`` give the value of one metric fed the whole stream, and the merged-in metric is left as it was;
- ``check_state_size``: the state's bytes do not grow with the number of updates (a bounded reservoir: up to its
  bound);
- ``check_rejected_updates``: an ``update`` (and a ``forward``) that raises leaves every state bit-identical, and
  the update count.

Each check raises ``AssertionError`` when the property fails (tests/metrics/test_contract.py shows it on broken toy
metrics). ``check_metric_contract`` runs them all. ``state_snapshot``/``same_state``/``assert_same_state`` and the
``unchanged_state`` context compare states bit for bit elsewhere (other refusals, DDP workers).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "Call",
    "MetricContract",
    "assert_same_state",
    "assert_same_value",
    "check_metric_contract",
    "same_state",
    "state_bytes",
    "state_snapshot",
    "unchanged_state",
]


class Call:
    """The arguments of one ``update``: ``Call(features, real=True)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def apply(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args, **self.kwargs)

    def _signature(self) -> tuple:
        """What must be equal for two calls to join in one: the non-tensor arguments, and where the tensors are."""

        def mark(value: Any) -> Any:
            return Tensor if isinstance(value, Tensor) else value

        return tuple(map(mark, self.args)), tuple((k, mark(v)) for k, v in sorted(self.kwargs.items()))

    def __repr__(self) -> str:
        def show(value: Any) -> str:
            return f"Tensor{tuple(value.shape)}:{value.dtype}" if isinstance(value, Tensor) else repr(value)

        parts = [show(a) for a in self.args] + [f"{k}={show(v)}" for k, v in self.kwargs.items()]
        return f"Call({', '.join(parts)})"


def _as_call(batch: Call | tuple | Tensor) -> Call:
    if isinstance(batch, Call):
        return batch
    return Call(*batch) if isinstance(batch, tuple) else Call(batch)


def _joined(calls: Sequence[Call]) -> list[Call]:
    """The calls as few as possible: those with equal non-tensor arguments concatenated (dim 0), in first-seen order."""
    groups: dict[tuple, list[Call]] = {}
    for call in calls:
        groups.setdefault(call._signature(), []).append(call)

    def join(values: list[Any]) -> Any:
        return torch.cat(values) if isinstance(values[0], Tensor) else values[0]

    joined = []
    for members in groups.values():
        args = [join([m.args[i] for m in members]) for i in range(len(members[0].args))]
        kwargs = {k: join([m.kwargs[k] for m in members]) for k in members[0].kwargs}
        joined.append(Call(*args, **kwargs))
    return joined


def state_snapshot(metric: Metric) -> dict[str, Tensor | list[Tensor]]:
    """A copy of the metric's states (list states as lists of copies)."""
    return {
        name: [v.clone() for v in value] if isinstance(value, list) else value.clone()
        for name, value in metric.metric_state.items()
    }


def _same_bits(a: Tensor, b: Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() and a.element_size() in (2, 4, 8):
        # Bit for bit: NaN equals the same NaN, -0.0 differs from 0.0.
        integer = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return torch.equal(a.contiguous().view(integer), b.contiguous().view(integer))
    return torch.equal(a, b)


def _state_differences(metric: Metric, snapshot: dict[str, Tensor | list[Tensor]]) -> list[str]:
    after = metric.metric_state
    if after.keys() != snapshot.keys():
        return [f"state names {sorted(snapshot)} became {sorted(after)}"]
    differences = []
    for name, before in snapshot.items():
        now = after[name]
        if isinstance(before, list) != isinstance(now, list):
            differences.append(f"{name}: a list state and a tensor state")
        elif isinstance(before, list):
            if len(before) != len(now) or not all(map(_same_bits, before, now)):
                differences.append(f"{name}: list of {len(before)} tensors changed (now {len(now)})")
        elif not _same_bits(before, now):
            differences.append(f"{name}: {before.dtype}{tuple(before.shape)} became {now.dtype}{tuple(now.shape)}")
    return differences


def same_state(metric: Metric, snapshot: dict[str, Tensor | list[Tensor]]) -> bool:
    """Whether the metric's states are bit-identical to ``snapshot`` (for DDP workers, which return a verdict)."""
    return not _state_differences(metric, snapshot)


def assert_same_state(metric: Metric, snapshot: dict[str, Tensor | list[Tensor]], context: str = "") -> None:
    """Assert that the metric's states are bit-identical to ``snapshot``."""
    differences = _state_differences(metric, snapshot)
    assert not differences, f"{type(metric).__name__} state changed{context}: " + "; ".join(differences)


@contextlib.contextmanager
def unchanged_state(metric: Metric) -> Iterator[None]:
    """Assert that the block leaves the metric's states bit-identical, and its update count as it was."""
    snapshot, count = state_snapshot(metric), metric.update_count
    yield
    assert_same_state(metric, snapshot)
    assert metric.update_count == count, f"update count {count} became {metric.update_count}"


def state_bytes(metric: Metric) -> int:
    """Total bytes of the metric's state tensors (list states: of all their elements)."""
    total = 0
    for value in metric.metric_state.values():
        for tensor in value if isinstance(value, list) else [value]:
            total += tensor.numel() * tensor.element_size()
    return total


def assert_same_value(actual: Any, expected: Any, *, rtol: float, atol: float, what: str = "value") -> None:
    """Assert two ``compute()`` results are equal to the tolerances: tensors, numbers, tuples, lists, dicts of them."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{what}: expected a dict, got {type(actual).__name__}"
        assert actual.keys() == expected.keys(), f"{what}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same_value(actual[key], expected[key], rtol=rtol, atol=atol, what=f"{what}[{key!r}]")
    elif isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)), f"{what}: expected a sequence, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{what}: {len(actual)} items != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_value(a, e, rtol=rtol, atol=atol, what=f"{what}[{i}]")
    else:
        actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
        try:
            torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
        except AssertionError as error:
            raise AssertionError(f"{what}: {error}") from None


class MetricContract:
    """Check the metric contract on one family's inputs.

    Args:
        make_metric: builds a fresh metric (the same configuration every call).
        batches: the stream, one item per ``update``: a ``Call``, a tuple of positional arguments, or one tensor.
            Give at least two, so that the merges and the batch split have something to split.
        rtol: relative tolerance of the value comparisons (float64 sums regrouped: ~1e-12; a float32 network whose
            last bits depend on its batch: its rounding).
        atol: absolute tolerance of the value comparisons.
        bounded_by: for a metric with a declared bounded reservoir, the most bytes its state may hold; ``None``: the
            state may not grow at all once the first pass over ``batches`` has fixed its lazily sized parts.
    """

    def __init__(
        self,
        make_metric: Callable[[], Metric],
        batches: Sequence[Call | tuple | Tensor],
        *,
        rtol: float = 1e-12,
        atol: float = 0.0,
        bounded_by: int | None = None,
    ) -> None:
        self.make_metric = make_metric
        self.batches = [_as_call(batch) for batch in batches]
        if len(self.batches) < 2:
            raise ValueError(f"Expected at least 2 batches to split, got {len(self.batches)}.")
        self.rtol, self.atol, self.bounded_by = rtol, atol, bounded_by
        self._stream_value: Any = None

    def fed(self, batches: Sequence[Call]) -> Metric:
        """A fresh metric that has been fed ``batches`` with ``update``."""
        metric = self.make_metric()
        for call in batches:
            call.apply(metric.update)
        return metric

    def stream_value(self) -> Any:
        """``compute()`` of one metric fed every batch in order (computed once)."""
        if self._stream_value is None:
            self._stream_value = self.fed(self.batches).compute()
        return self._stream_value

    def _assert_value(self, actual: Any, what: str) -> None:
        assert_same_value(actual, self.stream_value(), rtol=self.rtol, atol=self.atol, what=what)

    def check_batch_split(self) -> None:
        """The batches fed one by one give the value of the same samples in one ``update`` per argument set."""
        one_shot = self.fed(_joined(self.batches)).compute()
        self._assert_value(one_shot, "one-shot value vs the batched stream")

    def check_merge(self, cuts: Sequence[int] | None = None) -> list[Metric]:
        """Stream parts ``[:cut]`` and ``[cut:]`` fed to two metrics and merged give the whole stream's value.

        The merge is ``second.merge_state(first)``, torchmetrics' order (the incoming state's values first), so that
        states kept in order (per-image values) come out in stream order. ``cuts`` defaults to the first, middle and
        last cut (0 and ``len(batches)``: merging an empty metric, both ways). Returns the merged metrics, one per
        cut, for family-specific checks.
        """
        count = len(self.batches)
        cuts = sorted({0, count // 2, count}) if cuts is None else cuts
        merged = []
        for cut in cuts:
            first, second = self.fed(self.batches[:cut]), self.fed(self.batches[cut:])
            incoming = state_snapshot(first)
            second.merge_state(first)
            assert_same_state(first, incoming, f" by being merged into another (cut {cut})")
            with warnings.catch_warnings():
                # A metric that was only merged into has had no ``update``: torchmetrics warns, rightly here.
                warnings.filterwarnings("ignore", "The ``compute`` method of metric", UserWarning)
                value = second.compute()
            self._assert_value(value, f"merged value at cut {cut} of {count} vs the whole stream")
            merged.append(second)
        return merged

    def check_state_size(self, passes: int = 3) -> None:
        """The state's bytes after ``passes`` passes over the batches are no more than after the first pass (or
        than ``bounded_by``)."""
        metric = self.fed(self.batches)
        first = state_bytes(metric)
        assert first > 0, f"{type(metric).__name__} holds no state after a pass over the batches"
        limit = first if self.bounded_by is None else self.bounded_by
        for done in range(1, passes + 1):
            size = state_bytes(metric)
            assert size <= limit, (
                f"{type(metric).__name__} state grew to {size} bytes after {done} passes over the batches "
                f"({first} after the first; bound {self.bounded_by})"
            )
            if done < passes:
                for call in self.batches:
                    call.apply(metric.update)

    def check_rejected_updates(
        self, bad_batches: Sequence[tuple[Call | tuple | Tensor, type[BaseException], str]], *, forward: bool = True
    ) -> None:
        """Each bad batch raises ``(error, match)`` from ``update`` (and ``forward``) on a metric fed the stream, and
        leaves its states bit-identical and its update count as it was."""
        metric = self.fed(self.batches)
        snapshot, count = state_snapshot(metric), metric.update_count
        for bad, error, match in bad_batches:
            call = _as_call(bad)
            for name, fn in (("update", metric.update), ("forward", metric))[: 2 if forward else 1]:
                message = None
                try:
                    call.apply(fn)
                except error as caught:
                    message = str(caught)
                if message is None:
                    raise AssertionError(f"{name} {call} did not raise {error.__name__}")
                assert re.search(match, message), f"{name} {call}: {message!r} does not match {match!r}"
                assert_same_state(metric, snapshot, f" by the refused {name} {call}")
                assert metric.update_count == count, f"{name} {call} changed the update count"

    def check_all(
        self,
        bad_batches: Sequence[tuple[Call | tuple | Tensor, type[BaseException], str]] = (),
        *,
        state_grows: bool = False,
    ) -> None:
        """Every check; ``state_grows`` skips the size check for a documented exact mode that keeps every sample."""
        self.check_batch_split()
        self.check_merge()
        if not state_grows:
            self.check_state_size()
        if bad_batches:
            self.check_rejected_updates(bad_batches)


def check_metric_contract(
    make_metric: Callable[[], Metric],
    batches: Sequence[Call | tuple | Tensor],
    bad_batches: Sequence[tuple[Call | tuple | Tensor, type[BaseException], str]] = (),
    *,
    rtol: float = 1e-12,
    atol: float = 0.0,
    bounded_by: int | None = None,
    state_grows: bool = False,
) -> None:
    """``MetricContract(make_metric, batches, rtol=, atol=, bounded_by=).check_all(bad_batches, state_grows=)``."""
    contract = MetricContract(make_metric, batches, rtol=rtol, atol=atol, bounded_by=bounded_by)
    contract.check_all(bad_batches, state_grows=state_grows)
