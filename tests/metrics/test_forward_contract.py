"""The shell every metric shares: ``forward`` returns the batch's own value as torchmetrics' does, loses
nothing on error, and ``plot`` draws the value."""

from __future__ import annotations

import sys

import matplotlib
import pytest
import torch
from torch import Tensor

from lightning_genmetrics.metrics._base import SufficientStatisticMetric, SummedStateMetric
from tests.contract import unchanged_state

matplotlib.use("Agg")


class _MeanSquare(SummedStateMetric):
    """Mean of squares of finite values; refuses NaN (a bad input) and has no value before data."""

    higher_is_better = False
    is_differentiable = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, values: Tensor) -> None:
        if torch.isnan(values).any():
            raise ValueError("Expected `values` to be finite, got NaN.")
        self._accumulate_batch(total=(values.double() ** 2).sum(), count=torch.tensor(values.numel()))

    def _count(self) -> int:
        return int(self.count)

    def compute(self) -> Tensor:
        self._check_not_empty()
        return self.total / self.count


class _AccumulateOnly(_MeanSquare):
    _forward_accumulates_only = True


def _mean_square(values: list[Tensor]) -> float:
    joined = torch.cat(values).double()
    return float((joined**2).mean())


def test_forward_returns_the_batch_value_and_accumulates(rng):
    batches = [torch.from_numpy(rng.normal(size=n)) for n in (5, 1, 7)]
    metric = _MeanSquare()
    for batch in batches:
        value = metric(batch)
        assert float(value) == pytest.approx(_mean_square([batch]), rel=1e-12)
        assert metric._forward_cache is value
    assert float(metric.compute()) == pytest.approx(_mean_square(batches), rel=1e-12)
    assert metric._update_count == len(batches)


def test_forward_with_bad_input_changes_nothing(rng):
    metric = _MeanSquare()
    metric(torch.from_numpy(rng.normal(size=4)))
    with unchanged_state(metric), pytest.raises(ValueError, match="finite"):
        metric(torch.tensor([1.0, float("nan")]))


def test_forward_keeps_a_batch_whose_value_cannot_be_computed():
    class _NeedsTwo(_MeanSquare):
        def compute(self) -> Tensor:
            if int(self.count) < 2:
                raise RuntimeError("Expected at least 2 values, got 1.")
            return super().compute()

    metric = _NeedsTwo()
    with pytest.raises(RuntimeError, match="at least 2"):
        metric(torch.tensor([3.0]))
    metric(torch.tensor([1.0, 2.0]))
    assert float(metric.compute()) == pytest.approx((9 + 1 + 4) / 3)


def test_forward_of_a_batch_the_running_state_cannot_take_changes_nothing(rng):
    from lightning_genmetrics import MeanIoU

    metric = MeanIoU(num_classes=None)  # one-hot masks: the first batch fixes the class count
    labels = torch.from_numpy(rng.integers(0, 3, size=(2, 5, 5)))
    masks = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1)
    metric(masks, masks.flip(-1))
    wider = torch.nn.functional.one_hot(labels, 5).movedim(-1, 1)
    with unchanged_state(metric), pytest.raises(ValueError, match="5"):
        metric(wider, wider)
    assert metric._update_count == 1


class _LazyTotals(SufficientStatisticMetric):
    """Column sums whose width the first batch fixes; a reset forgets the width, so only the merge can tell."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("totals", torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: Tensor) -> None:
        sums = values.double().sum(0)
        self.totals = sums if self.totals.numel() == 0 else self.totals + sums

    def compute(self) -> Tensor:
        return self.totals.sum()

    def _merge_state(self, other: dict) -> None:
        incoming = other["totals"]
        if incoming.numel() and self.totals.numel() and incoming.shape != self.totals.shape:
            raise ValueError(f"Cannot combine totals of width {incoming.numel()} with {self.totals.numel()}.")
        self.totals = incoming if self.totals.numel() == 0 else self.totals + (incoming if incoming.numel() else 0)


def test_forward_whose_batch_cannot_merge_restores_the_state(rng):
    metric = _LazyTotals()
    first = torch.from_numpy(rng.normal(size=(4, 3)))
    metric(first)
    metric(torch.from_numpy(rng.normal(size=(2, 3))))
    before = metric.totals.clone()
    with pytest.raises(ValueError, match="Cannot combine"):
        metric(torch.from_numpy(rng.normal(size=(2, 4))))
    assert torch.equal(metric.totals, before)
    assert metric._update_count == 2


def test_forward_value_is_differentiable_and_the_state_holds_no_graph(rng):
    values = torch.from_numpy(rng.normal(size=6)).requires_grad_(True)
    metric = _MeanSquare()
    loss = metric(values)
    loss.backward()
    torch.testing.assert_close(values.grad, 2 * values.detach() / values.numel())
    assert not metric.total.requires_grad
    metric.update(values)  # outside forward, update runs without building a graph
    assert not metric.total.requires_grad


def test_forward_of_an_accumulating_metric_returns_none():
    metric = _AccumulateOnly()
    assert metric(torch.tensor([1.0, 3.0])) is None
    assert float(metric.compute()) == pytest.approx(5.0)


def test_plot_draws_values_and_series():
    metric = _MeanSquare()
    metric.update(torch.tensor([1.0, 2.0]))
    _, axes = metric.plot()
    assert "_MeanSquare" in axes.get_ylabel()
    assert float(axes.lines[0].get_ydata()[0]) == pytest.approx(2.5)
    _, axes = metric.plot([torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.25)])
    assert list(axes.lines[0].get_ydata()) == pytest.approx([1.0, 0.5, 0.25])
    _, axes = metric.plot(torch.tensor([0.1, 0.2, 0.3]))  # a per-class vector: one point per class
    assert [float(line.get_ydata()[0]) for line in axes.lines[:3]] == pytest.approx([0.1, 0.2, 0.3])


def test_plot_without_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    metric = _MeanSquare()
    with pytest.raises(ModuleNotFoundError, match="pip install matplotlib"):
        metric.plot(torch.tensor(1.0))
