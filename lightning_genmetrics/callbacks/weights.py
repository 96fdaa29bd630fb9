"""Which weights an evaluation samples with: the training weights, or an exponential moving average of them.

Diffusion models and GANs are usually judged by their EMA weights. Two sources are understood:

- Lightning's ``WeightAveraging`` callbacks (``EMAWeightAveraging`` and the like) keep an
  ``AveragedModel`` copy of the whole LightningModule and swap it into the module during validation
  (from their ``on_validation_epoch_start`` to their ``on_validation_epoch_end``). Whether the module
  holds the average at the moment of an evaluation depends on where the evaluation runs and on the order
  of the callbacks, so it is worked out, not assumed.
- A user's EMA module: an ``AveragedModel`` or a plain copy kept up to date by the user, mirroring the
  LightningModule or one of its submodules (the one whose parameter and buffer names and shapes match).

An average that has not been updated yet (``n_averaged == 0``) holds the initial weights; then the
training weights are used and the record says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from lightning_genmetrics._compat.lightning import averaged_model

try:  # Lightning >= 2.5
    from lightning.pytorch.callbacks import WeightAveraging
except ImportError:  # pragma: no cover - older Lightning has no weight-averaging callback
    WeightAveraging = None


def _tensors(module: nn.Module) -> dict[str, Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def _signature(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return sorted((name, tuple(tensor.shape)) for name, tensor in _tensors(module).items())


def _unwrap(average: nn.Module) -> tuple[nn.Module, Tensor | None]:
    """The averaged network and its update count (``None`` when it does not keep one)."""
    inner = getattr(average, "module", None)
    count = getattr(average, "n_averaged", None)
    if isinstance(inner, nn.Module) and isinstance(count, Tensor):
        return inner, count
    return average, None


def match_ema_target(pl_module: nn.Module, ema: nn.Module) -> nn.Module:
    """The submodule of ``pl_module`` (or ``pl_module`` itself) whose weights ``ema`` averages.

    Raises:
        ValueError: no submodule, or more than one, has the parameter and buffer names and shapes of ``ema``.
    """
    average, _ = _unwrap(ema)
    wanted = _signature(average)
    inside = {id(module) for module in ema.modules()}
    candidates = [
        module
        for _, module in pl_module.named_modules()
        if id(module) not in inside and _tensors(module) and _signature(module) == wanted
    ]
    # A module that contains the EMA copy cannot match it (it has more tensors), so the candidates are live modules.
    if len(candidates) != 1:
        found = "no submodule" if not candidates else f"{len(candidates)} submodules"
        raise ValueError(
            f"Expected exactly one submodule of {type(pl_module).__name__} with the parameters and buffers of the "
            f"EMA module {type(average).__name__} ({len(wanted)} tensors), found {found}."
        )
    return candidates[0]


def _weight_averaging(trainer: Trainer) -> Callback | None:
    if WeightAveraging is None:
        return None
    found = [callback for callback in trainer.callbacks if isinstance(callback, WeightAveraging)]
    return found[0] if found else None


@contextlib.contextmanager
def _copied_in(live: nn.Module, source: nn.Module) -> Iterator[None]:
    """Run a block with ``source``'s weights copied into ``live``; ``live``'s own weights are restored after."""
    targets, values = _tensors(live), _tensors(source)
    saved = {name: tensor.detach().clone() for name, tensor in targets.items()}
    try:
        with torch.no_grad():
            for name, tensor in targets.items():
                tensor.copy_(values[name])
        yield
    finally:
        with torch.no_grad():
            for name, tensor in targets.items():
                tensor.copy_(saved[name])


@contextlib.contextmanager
def evaluation_weights(
    trainer: Trainer, pl_module: LightningModule, caller: Callback, ema: nn.Module | str | None, *, in_validation: bool
) -> Iterator[str]:
    """Run a block with the weights to evaluate in ``pl_module``; yields ``"ema"`` or ``"training"``.

    Args:
        trainer: the trainer (its callbacks are searched for a ``WeightAveraging``).
        pl_module: the module being trained.
        caller: the evaluating callback (its place among the callbacks tells whether a ``WeightAveraging``
            has already swapped its average back out at the end of validation).
        ema: ``"auto"`` (a ``WeightAveraging`` callback's average if there is one), ``None`` (the training
            weights), or a user's EMA module.
        in_validation: whether the block runs inside the validation epoch (between the
            ``on_validation_epoch_start`` and ``on_validation_epoch_end`` of the callbacks).
    """
    if ema is None:
        yield "training"
        return
    if isinstance(ema, nn.Module):
        average, count = _unwrap(ema)
        if count is not None and int(count) == 0:
            yield "training"
            return
        with _copied_in(match_ema_target(pl_module, ema), average):
            yield "ema"
        return
    averaging = _weight_averaging(trainer)
    model = None if averaging is None else averaged_model(averaging)
    if model is None:
        yield "training"
        return
    callbacks = list(trainer.callbacks)
    # Between its on_validation_epoch_start and on_validation_epoch_end the callback has swapped: the module
    # holds the average and the averaged model holds the training weights.
    swapped = in_validation and callbacks.index(averaging) > callbacks.index(caller)
    updated = int(model.n_averaged) > 0
    if swapped == updated:
        yield "ema" if updated else "training"
        return
    with _copied_in(pl_module, model.module):
        yield "ema" if updated else "training"
