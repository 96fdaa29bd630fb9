"""The metric-contract tester itself: it passes a metric that keeps the contract, and each of its checks raises
``AssertionError`` on a toy metric that breaks the property it checks (and only on that one)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lightning_genmetrics.metrics._base import SummedStateMetric
from tests.contract import (
    Call,
    MetricContract,
    assert_same_state,
    check_metric_contract,
    same_state,
    state_bytes,
    state_snapshot,
    unchanged_state,
)


class _Mean(SummedStateMetric):
    """Mean of finite values, scaled by ``scale``: keeps the contract. NaN is a bad input."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def _check(self, values: Tensor) -> None:
        if torch.isnan(values).any():
            raise ValueError("Expected `values` to be finite, got NaN.")

    def update(self, values: Tensor, *, scale: float = 1.0) -> None:
        self._check(values)
        self._accumulate_batch(total=values.double().sum() * scale, count=torch.tensor(values.numel()))

    def _count(self) -> int:
        return int(self.count)

    def compute(self) -> Tensor:
        self._check_not_empty()
        return self.total / self.count * self.scale


class _MergeOverwrites(_Mean):
    """The incoming state replaces this one instead of adding to it."""

    def _merge_state(self, other: dict) -> None:
        if int(other["count"]):
            self.total, self.count = other["total"].clone(), other["count"].clone()


class _MergeChangesTheIncoming(_Mean):
    """Adds correctly, but zeroes the incoming metric's state in place."""

    def _merge_state(self, other: dict) -> None:
        super()._merge_state(other)
        other["total"].zero_()


class _MeanOfBatchMeans(_Mean):
    """Averages per-batch means: its value depends on how the samples are batched."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("batches", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, values: Tensor, *, scale: float = 1.0) -> None:
        self._check(values)
        self._accumulate_batch(
            total=values.double().mean() * scale, count=torch.tensor(values.numel()), batches=torch.tensor(1)
        )

    def compute(self) -> Tensor:
        self._check_not_empty()
        return self.total / self.batches


class _KeepsEverything(_Mean):
    """Also keeps every value seen: the state grows with the data."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("seen", torch.zeros(0, dtype=torch.float64), dist_reduce_fx="cat")

    def update(self, values: Tensor, *, scale: float = 1.0) -> None:
        super().update(values, scale=scale)
        self.seen = torch.cat([self.seen, values.double().flatten()])

    def _merge_state(self, other: dict) -> None:
        self.total, self.count = self.total + other["total"], self.count + other["count"]
        self.seen = torch.cat([other["seen"], self.seen])


class _Reservoir(_KeepsEverything):
    """Keeps at most the first ``limit`` values seen: a bounded reservoir."""

    limit = 6

    def update(self, values: Tensor, *, scale: float = 1.0) -> None:
        super().update(values, scale=scale)
        self.seen = self.seen[: self.limit]

    def _merge_state(self, other: dict) -> None:
        super()._merge_state(other)
        self.seen = self.seen[: self.limit]


class _CountsBeforeChecking(_Mean):
    """Counts the values before it checks them: a refused batch still changes the state."""

    def update(self, values: Tensor, *, scale: float = 1.0) -> None:
        self.count += values.numel()
        self._check(values)
        self.total += values.double().sum() * scale


class _AcceptsNaN(_Mean):
    def _check(self, values: Tensor) -> None:
        pass


def _batches(rng) -> list:
    # Two argument sets (scale 1 and 2): the one-shot feed joins each set into one call.
    sizes_and_scales = [(3, 1.0), (1, 2.0), (4, 1.0), (2, 2.0)]
    return [Call(torch.from_numpy(rng.normal(size=n)), scale=s) for n, s in sizes_and_scales]


_BAD = [(Call(torch.tensor([1.0, float("nan")])), ValueError, "finite")]


def test_a_metric_that_keeps_the_contract_passes(rng):
    check_metric_contract(_Mean, _batches(rng), _BAD)
    MetricContract(_Reservoir, _batches(rng), bounded_by=_Reservoir.limit * 8 + 16).check_state_size(passes=4)
    # Batches given as tuples or single tensors.
    check_metric_contract(
        _Mean, [(torch.ones(2),), torch.arange(3.0)], [(torch.tensor([float("nan")]), ValueError, "")]
    )


@pytest.mark.parametrize(
    ("make", "check", "message"),
    [
        (_MergeOverwrites, "check_merge", "merged value at cut"),
        (_MergeChangesTheIncoming, "check_merge", "by being merged into another"),
        (_MeanOfBatchMeans, "check_batch_split", "one-shot value"),
        (_KeepsEverything, "check_state_size", "state grew"),
        (_Reservoir, "check_state_size", "state grew"),  # its bound is given too small below
        (_CountsBeforeChecking, "check_rejected_updates", "by the refused update .*count"),
        (_AcceptsNaN, "check_rejected_updates", "did not raise ValueError"),
    ],
)
def test_each_check_fails_on_a_metric_that_breaks_its_property(rng, make, check, message):
    contract = MetricContract(make, _batches(rng), bounded_by=_Reservoir.limit * 8 if make is _Reservoir else None)
    run = getattr(contract, check)
    with pytest.raises(AssertionError, match=message):
        run(_BAD) if check == "check_rejected_updates" else run()
    # The broken metric keeps every other property: each check tells its own failure apart.
    others = {"check_batch_split", "check_merge", "check_state_size", "check_rejected_updates"} - {check}
    if make is _MeanOfBatchMeans:
        others.discard("check_merge")  # a merge of batch means is a merge of a value that depends on the batching
    for other in others:
        getattr(contract, other)(_BAD) if other == "check_rejected_updates" else getattr(contract, other)()


def test_a_refusal_with_another_message_fails(rng):
    with pytest.raises(AssertionError, match="does not match"):
        MetricContract(_Mean, _batches(rng)).check_rejected_updates([(torch.tensor([float("nan")]), ValueError, "inf")])


def test_state_comparisons_are_bit_for_bit():
    metric = _KeepsEverything()
    metric.update(torch.tensor([0.0, 1.0]))
    metric.seen = torch.tensor([0.0, float("nan")], dtype=torch.float64)
    snapshot = state_snapshot(metric)
    assert same_state(metric, snapshot)  # NaN equals the same NaN
    assert state_bytes(metric) == 8 + 8 + 2 * 8
    metric.seen = torch.tensor([-0.0, float("nan")], dtype=torch.float64)
    assert not same_state(metric, snapshot)
    with pytest.raises(AssertionError, match="seen"):
        assert_same_state(metric, snapshot)
    metric.seen = snapshot["seen"].float()
    assert not same_state(metric, snapshot)
    with pytest.raises(AssertionError, match="count"), unchanged_state(metric):
        metric.count += 1


def test_too_few_batches_are_refused():
    with pytest.raises(ValueError, match="at least 2 batches"):
        MetricContract(_Mean, [torch.ones(2)])
