"""The private parts of torchmetrics and Lightning that ``lightning_genmetrics._compat`` relies on, as it assumes them.

Each test fails when the installed library changes what it checks; its docstring names what in the package breaks.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import Logger
from packaging.version import Version
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_genmetrics import PeakSignalNoiseRatio
from lightning_genmetrics._compat import lightning as pl_compat
from lightning_genmetrics._compat import torchmetrics as tm_compat


class _Total(Metric):
    """A plain torchmetrics metric: one sum state, torchmetrics' own forward (reduce-state path)."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.seen_in_compute: list[tuple[bool, bool, bool, bool]] = []
        self.grad_in_update: list[bool] = []

    def update(self, x: Tensor) -> None:
        self.grad_in_update.append(torch.is_grad_enabled())
        self.total += x.to(torch.float64)

    def compute(self) -> Tensor:
        self.seen_in_compute.append(
            (
                tm_compat.should_sync_now(self),
                tm_compat.should_unsync_now(self),
                self.compute_on_cpu,
                self._is_synced,
            )
        )
        return self.total.sum()


# ---------------------------------------------------------------------------------------------------- torchmetrics


def test_overridden_hooks_have_the_assumed_parameters():
    """Breaks: ``SufficientStatisticMetric``'s overrides of ``_wrap_update``, ``_reduce_states`` and ``_sync_dist``
    (metrics/_base.py), so every metric's failed-update rollback, exact ``merge_state`` and all-reduce sync."""
    for name, expected in tm_compat.OVERRIDDEN_HOOKS.items():
        parameters = tuple(inspect.signature(getattr(Metric, name)).parameters)
        assert parameters == ("self", *expected), name
    tm_compat.check_overridden_hooks()


def test_hook_check_names_a_changed_hook(monkeypatch: pytest.MonkeyPatch):
    """Breaks: the loud failure at a metric's construction when torchmetrics changes a hook (instead of wrong
    merges or syncs)."""

    def changed(self: Metric, process_group: Any = None) -> None:
        pass

    monkeypatch.setattr(Metric, "_sync_dist", changed)
    with pytest.raises(RuntimeError, match=r"`Metric._sync_dist\(dist_sync_fn, process_group\)` \(\(process_group\)"):
        tm_compat.check_overridden_hooks.__wrapped__()


def test_wrap_update_is_called_once_per_construction_and_wraps_update(monkeypatch: pytest.MonkeyPatch):
    """Breaks: the rollback of a failed ``update`` (``SufficientStatisticMetric._wrap_update`` is how it sees every
    ``update`` call, and it restores ``_update_count`` and ``_computed``, which torchmetrics' wrapper changes)."""
    calls = []
    original = Metric._wrap_update

    def spy(self: Metric, update: Any) -> Any:
        calls.append(update.__name__)
        return original(self, update)

    monkeypatch.setattr(Metric, "_wrap_update", spy)
    metric = PeakSignalNoiseRatio(data_range=1.0)
    assert calls == ["update"]
    metric._computed = torch.tensor(1.0)
    before = tm_compat.update_bookkeeping(metric)
    metric.update(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    assert calls == ["update"]
    assert tm_compat.update_bookkeeping(metric) == (before.count + 1, None)
    assert metric.update_count == before.count + 1


def test_merge_state_calls_reduce_states_with_the_other_state(monkeypatch: pytest.MonkeyPatch):
    """Breaks: ``merge_state`` of every metric (the exact merge sits in ``_reduce_states``, and checks the incoming
    dict has every state named by ``state_names``)."""
    received = []
    monkeypatch.setattr(_Total, "_reduce_states", lambda self, incoming_state: received.append(incoming_state))
    metric, other = _Total(), _Total()
    other.update(torch.tensor([1.0, 2.0]))
    metric.merge_state(other)
    metric.merge_state({"total": torch.ones(2, dtype=torch.float64)})
    assert [list(state) for state in received] == [["total"], ["total"]]
    assert torch.equal(received[0]["total"], other.total)


def test_sync_calls_sync_dist_with_the_function_and_group(monkeypatch: pytest.MonkeyPatch):
    """Breaks: DDP synchronisation of every metric (``_sync_dist`` checks the ranks' configurations, then
    all-reduces) and ``should_sync_now``: ``compute`` must sync, ``forward``'s batch value must not."""
    received = []
    monkeypatch.setattr(
        _Total,
        "_sync_dist",
        lambda self, dist_sync_fn=None, process_group=None: received.append((dist_sync_fn, process_group)),
    )
    group, gather = object(), object()
    metric = _Total(distributed_available_fn=lambda: True, process_group=group)
    metric.sync(dist_sync_fn=gather, process_group=group)
    assert received == [(gather, group)]
    metric.unsync()
    metric.forward(torch.ones(2))
    assert len(received) == 1
    metric.compute()
    assert received[1] == (gather_all_tensors, None)


def test_state_bookkeeping_of_a_fresh_metric():
    """Breaks: ``state_names`` (merges, syncs, configuration checks), ``set_state_default`` (lazily sized states of
    FID, IS, KID, SegmentationMetrics keep their size through ``reset``), ``copy_states`` and the update bookkeeping
    (``forward`` and the rollback of a failed ``update``)."""
    metric = _Total()
    assert tm_compat.state_names(metric) == ("total",)
    assert torch.equal(metric._defaults["total"], torch.zeros(2, dtype=torch.float64))
    assert tm_compat.update_bookkeeping(metric) == (0, None)
    metric.update(torch.tensor([1.0, 2.0]))
    value = metric.compute()
    assert tm_compat.update_bookkeeping(metric) == (1, value)
    copied = tm_compat.copy_states(metric)
    assert list(copied) == ["total"]
    assert torch.equal(copied["total"], metric.total)
    assert copied["total"].data_ptr() != metric.total.data_ptr()

    tm_compat.set_state_default(metric, "total", torch.full((3,), 5.0, dtype=torch.float64))
    metric.reset()
    assert torch.equal(metric.total, torch.full((3,), 5.0, dtype=torch.float64))
    assert tm_compat.update_bookkeeping(metric) == (0, None)
    with pytest.raises(ValueError, match="Expected `name` to be a state of _Total, got 'missing'"):
        tm_compat.set_state_default(metric, "missing", torch.zeros(1))


def test_batch_value_scope_is_torchmetrics_forward_context():
    """Breaks: ``SufficientStatisticMetric.forward`` (the batch value of SSIM, PSNR, LPIPS, AUROC, segmentation):
    it must see and leave the sync, device and grad settings exactly as torchmetrics' own ``forward`` does."""
    reference = _Total(sync_on_compute=False, compute_on_cpu=True)
    with torch.no_grad():  # forward's update runs with grad enabled all the same
        reference.forward(torch.ones(2))
    after_forward = (*_forward_settings(reference), reference._forward_cache)

    emulated = _Total(sync_on_compute=False, compute_on_cpu=True)
    with torch.no_grad(), tm_compat.batch_value_scope(emulated):
        emulated.update(torch.ones(2))
        value = emulated.compute()
    tm_compat.set_forward_cache(emulated, value)
    assert emulated.grad_in_update == reference.grad_in_update == [True]
    assert emulated.seen_in_compute == reference.seen_in_compute
    assert (*_forward_settings(emulated), emulated._forward_cache) == after_forward
    assert tm_compat.should_sync_now(emulated) is False  # sync_on_compute=False, restored after the scope


def _forward_settings(metric: _Total) -> tuple[Any, ...]:
    return (
        tm_compat.should_sync_now(metric),
        tm_compat.should_unsync_now(metric),
        metric.compute_on_cpu,
        metric._enable_grad,
        metric._is_synced,
    )


def test_plot_value_draws_with_the_metric_bounds():
    """Breaks: ``plot`` of every metric (drawn by torchmetrics' ``_plot(val, ax)``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert tuple(inspect.signature(Metric._plot).parameters) == ("self", "val", "ax")
    metric = PeakSignalNoiseRatio(data_range=1.0)
    figure, axes = tm_compat.plot_value(metric, torch.tensor(3.0), None)
    assert axes.get_ylabel() == "PeakSignalNoiseRatio"
    plt.close(figure)


# ------------------------------------------------------------------------------------------------------- Lightning


class _StepLogger(Logger):
    """Keeps every logged ``(name, step)``."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[str, int]] = []

    @property
    def name(self) -> str:
        return "steps"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.extend((name, step) for name in metrics if name.startswith("loss"))


class _Regression(pl.LightningModule):
    def __init__(self, optimizers: int) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nn.Linear(2, 1) for _ in range(optimizers))
        self.automatic_optimization = optimizers == 1

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor | None:
        x, y = batch
        losses = [nn.functional.mse_loss(net(x), y) for net in self.nets]
        self.log("loss", losses[0], on_step=True, on_epoch=True)
        if self.automatic_optimization:
            return losses[0]
        for optimizer, loss in zip(self.optimizers(), losses, strict=True):
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
        return None

    def configure_optimizers(self) -> Any:
        optimizers = [torch.optim.SGD(net.parameters(), lr=0.1) for net in self.nets]
        return optimizers[0] if len(optimizers) == 1 else optimizers


class _Recorder(pl.Callback):
    def __init__(self) -> None:
        self.at_batch_end: list[int | None] = []
        self.at_epoch_end: list[int | None] = []
        self.weights: list[Tensor] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.at_batch_end.append(pl_compat.batches_that_stepped(trainer))
        self.weights.append(torch.nn.utils.parameters_to_vector(pl_module.parameters()).detach().clone())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.at_epoch_end.append(pl_compat.batches_that_stepped(trainer))


def _fit(module: pl.LightningModule, callbacks: list[pl.Callback], logger: Logger | bool = False) -> pl.Trainer:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(6, 2), torch.randn(6, 1))
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=callbacks,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=2))
    return trainer


@pytest.mark.parametrize("optimizers", [1, 2])
def test_batches_that_stepped_is_the_logging_step(optimizers: int):
    """Breaks: the step at which the callback logs images, figures and step evaluations
    (``GenerativeMetricsCallback._logging_step``): Lightning's own ``self.log`` step, once per batch whatever the
    number of optimizers, minus one at the end of the training epoch; else it falls back to ``global_step``."""
    recorder, logger = _Recorder(), _StepLogger()
    trainer = _fit(_Regression(optimizers), [recorder], logger)
    assert recorder.at_batch_end == [0, 1, 2, 3, 4, 5]
    assert recorder.at_epoch_end == [3, 6]
    assert pl_compat.batches_that_stepped(trainer) == 6
    assert trainer.global_step == 6 * optimizers
    step_logged = [step for name, step in logger.logged if name == "loss_step"]
    epoch_logged = [step for name, step in logger.logged if name == "loss_epoch"]
    assert step_logged == recorder.at_batch_end
    assert epoch_logged == [count - 1 for count in recorder.at_epoch_end]


def test_weight_averaging_keeps_the_averaged_model():
    """Breaks: ``ema="auto"`` of the callback (callbacks/weights.py samples with a ``WeightAveraging`` callback's
    average: an ``AveragedModel`` whose ``module`` mirrors the LightningModule and whose ``n_averaged`` counts).

    Lightning has ``WeightAveraging`` from 2.6; before, ``ema="auto"`` finds no averaging callback and samples with
    the training weights, and this test checks only that the class is absent there (the lowest-versions CI job).
    """
    from torch.optim.swa_utils import AveragedModel

    WeightAveraging = getattr(pl.callbacks, "WeightAveraging", None)
    assert (WeightAveraging is not None) == (Version(pl.__version__) >= Version("2.6.0"))
    if WeightAveraging is None:
        return
    averaging, recorder = WeightAveraging(), _Recorder()
    assert pl_compat.averaged_model(averaging) is None  # before setup
    module = _Regression(1)
    _fit(module, [averaging, recorder])
    average = pl_compat.averaged_model(averaging)
    assert isinstance(average, AveragedModel)
    assert [name for name, _ in average.module.named_parameters()] == [name for name, _ in module.named_parameters()]
    assert int(average.n_averaged) == len(recorder.weights) == 6
    mean = torch.stack(recorder.weights).mean(0)
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(average.module.parameters()), mean)
