"""Lightning internals the callback reads; Lightning itself is not imported here.

Each function returns ``None`` when the attribute is absent or not of the expected type (a Lightning release
that renamed it), so that the caller falls back to a public approximation instead of failing the training run.
``tests/test_compat_libraries.py`` checks each assumption against the installed Lightning.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def batches_that_stepped(trainer: Any) -> int | None:
    """The number of training batches whose optimizer step ran, as Lightning counts them for logging.

    Lightning logs ``self.log`` values at this count (taken before the current batch's step), not at
    ``global_step``, which counts every optimizer's steps (twice a batch for a GAN with two optimizers).
    Lightning keeps it as ``trainer.fit_loop.epoch_loop._batches_that_stepped`` with no public accessor.

    Args:
        trainer: a ``lightning.pytorch.Trainer`` (or anything with the same ``fit_loop``).

    Returns:
        The count, or ``None`` when this Lightning does not keep it there.

    Example:
        >>> from types import SimpleNamespace
        >>> loop = SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=7))
        >>> batches_that_stepped(SimpleNamespace(fit_loop=loop))
        7
        >>> batches_that_stepped(SimpleNamespace()) is None
        True
    """
    epoch_loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    stepped = getattr(epoch_loop, "_batches_that_stepped", None)
    # bool is an int subclass; a flag in its place would be a different attribute.
    if isinstance(stepped, bool) or not isinstance(stepped, int):
        return None
    return stepped


def averaged_model(callback: Any) -> nn.Module | None:
    """The averaged copy of the LightningModule kept by a ``lightning.pytorch.callbacks.WeightAveraging``.

    ``WeightAveraging`` (Lightning >= 2.6) builds it in ``setup`` as ``_average_model``, a
    ``torch.optim.swa_utils.AveragedModel`` wrapping a copy of the whole module, and has no public accessor.

    Args:
        callback: a ``WeightAveraging`` callback.

    Returns:
        The ``AveragedModel``, or ``None`` before ``setup`` or when this Lightning does not keep it there.

    Example:
        >>> from types import SimpleNamespace
        >>> from torch.optim.swa_utils import AveragedModel
        >>> average = AveragedModel(nn.Linear(2, 2))
        >>> averaged_model(SimpleNamespace(_average_model=average)) is average
        True
        >>> averaged_model(SimpleNamespace(_average_model=None)) is None
        True
    """
    model = getattr(callback, "_average_model", None)
    return model if isinstance(model, nn.Module) else None
