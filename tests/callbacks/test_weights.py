"""Which weights an evaluation samples with, without a Trainer run: the training weights, a user's EMA module, or a
``WeightAveraging`` callback's average, depending on where the evaluation runs and on the order of the callbacks."""

from __future__ import annotations

import copy

import pytest
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch import callbacks as pl_callbacks
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.optim.swa_utils import AveragedModel

from lightning_genmetrics._compat.lightning import averaged_model
from lightning_genmetrics.callbacks.weights import evaluation_weights, match_ema_target
from tests.callbacks.support import stub_trainer

# Lightning's weight-averaging callbacks arrived in 2.6; CI also runs these tests at the floor (Lightning 2.4), where
# the tests of an `EMAWeightAveraging` have no subject.
EMAWeightAveraging = getattr(pl_callbacks, "EMAWeightAveraging", None)
needs_weight_averaging = pytest.mark.skipif(
    EMAWeightAveraging is None, reason="this Lightning has no EMAWeightAveraging (added in Lightning 2.6)"
)


class Model(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(3, 2)
        self.critic = nn.Linear(2, 1)


def weight(module: nn.Module) -> torch.Tensor:
    return module.generator.weight.detach().clone()


def test_no_ema_samples_the_training_weights() -> None:
    model = Model()
    before = weight(model)
    with evaluation_weights(stub_trainer(), model, Callback(), None, in_validation=False) as which:
        assert which == "training"
        assert torch.equal(weight(model), before)


def test_a_user_average_is_copied_in_and_the_training_weights_restored() -> None:
    model = Model()
    trained = weight(model)
    average = AveragedModel(copy.deepcopy(model.generator))
    with evaluation_weights(stub_trainer(), model, Callback(), average, in_validation=False) as which:
        assert which == "training"  # never updated: it holds the initial weights, so the training ones are used
        assert torch.equal(weight(model), trained)
    with torch.no_grad():
        model.generator.weight.add_(1.0)
    average.update_parameters(model.generator)
    averaged = weight(model)
    with torch.no_grad():
        model.generator.weight.add_(1.0)
    live = weight(model)
    with evaluation_weights(stub_trainer(), model, Callback(), average, in_validation=False) as which:
        assert which == "ema"
        torch.testing.assert_close(weight(model), averaged, rtol=0, atol=0)
    torch.testing.assert_close(weight(model), live, rtol=0, atol=0)


def test_a_plain_copy_of_a_submodule_is_an_ema_module() -> None:
    model = Model()
    ema = copy.deepcopy(model.critic)
    assert match_ema_target(model, ema) is model.critic
    with pytest.raises(ValueError, match="found no submodule"):
        match_ema_target(model, nn.Linear(5, 5))
    twins = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="found 2 submodules"):
        match_ema_target(twins, nn.Linear(2, 2))


@needs_weight_averaging
@pytest.mark.parametrize("averaging_first", [True, False])
@pytest.mark.parametrize("in_validation", [True, False])
def test_a_weight_averaging_callback_is_used_wherever_the_evaluation_runs(
    averaging_first: bool, in_validation: bool
) -> None:
    model = Model()
    averaging, caller = EMAWeightAveraging(decay=0.5), Callback()
    callbacks = [averaging, caller] if averaging_first else [caller, averaging]
    trainer = stub_trainer(callbacks=callbacks)
    averaging.setup(trainer, model, "fit")
    average = averaged_model(averaging)
    average.update_parameters(model)  # updated once: it holds the weights of now
    with torch.no_grad():
        model.generator.weight.add_(2.0)  # which training then changes
    averaged, trained = weight(average.module), weight(model)
    assert not torch.equal(averaged, trained)
    # Inside the validation epoch, a caller that runs before the averaging callback's on_validation_epoch_end finds
    # the average swapped into the module (and the training weights in the average's place).
    swapped = in_validation and not averaging_first
    if swapped:
        model.load_state_dict(average.module.state_dict())
    with evaluation_weights(trainer, model, caller, "auto", in_validation=in_validation) as which:
        assert which == "ema"
        torch.testing.assert_close(weight(model), averaged, rtol=0, atol=0)
    torch.testing.assert_close(weight(model), averaged if swapped else trained, rtol=0, atol=0)


@needs_weight_averaging
def test_a_weight_averaging_callback_not_yet_updated_gives_the_training_weights() -> None:
    model = Model()
    averaging, caller = EMAWeightAveraging(decay=0.5), Callback()
    trainer = stub_trainer(callbacks=[caller, averaging])
    averaging.setup(trainer, model, "fit")
    with torch.no_grad():
        model.generator.weight.add_(2.0)
    trained = weight(model)
    with evaluation_weights(trainer, model, caller, "auto", in_validation=False) as which:
        assert which == "training"
        torch.testing.assert_close(weight(model), trained, rtol=0, atol=0)
