"""How the callback drives a metric it knows nothing about: the protocol every metric plugs in through.

The callback asks the metric, never a table:

- its ``update`` signature: with a ``real`` parameter (torchmetrics' ``FrechetInceptionDistance`` and
  ``KernelInceptionDistance``, and ours) the metric compares generated images with real ones, and is fed the real
  images once, then the generated ones at every evaluation; with a ``sample_ids`` parameter it is given each
  sample's global index (our seeded Inception Score and KID assign samples to splits and subsets by it, so the
  value does not depend on the number of ranks). Images are uint8 ``[N, 3, H, W]``.
- its ``accepts_image_batch``: ``True`` (the library's image metrics; a metric of one's own may declare it) means
  its ``update`` takes a :class:`~lightning_genmetrics.features.ImageBatch` in place of the images, and is given
  the batch every metric of the evaluation reads: converted to uint8 once, with one pass per batch of each network
  the metrics share. Any other metric is given the batch's uint8 tensor.
- its ``reset_real_features``: ``False`` means ``reset()`` keeps the real side; otherwise the real side's states
  are saved once fed and restored after every ``reset()``, so the real images are still read once per run.
- the shape of its ``compute()``: a scalar is logged as ``{name}``, a ``(mean, std)`` pair as ``{name}`` and
  ``{name}_std``, a dict as ``{name}/{key}``. Before a first value, a ``compute`` annotated as returning a tuple
  tells that a pair will come (what is logged as NaN when the samples are not finite).
- its ``higher_is_better``: what "best" means for its values (``None``: no best); a mapping from result keys to
  directions is accepted for a dict result.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics.features.batch import ImageBatch


def update_parameters(metric: Any) -> frozenset[str]:
    """The parameter names of a metric's (or a metric class's) ``update``.

    Example:
        >>> from lightning_genmetrics import FrechetInceptionDistance
        >>> sorted(update_parameters(FrechetInceptionDistance) - {"self"})
        ['imgs', 'real']
    """
    try:
        return frozenset(inspect.signature(metric.update).parameters)
    except (TypeError, ValueError):  # a builtin or C-implemented update: positional images only
        return frozenset()


def directions(metric: Any, keys: Sequence[str], *, strip: str = "") -> dict[str, bool]:
    """``higher_is_better`` of ``metric`` for each of ``keys`` that has one.

    A bool applies to every key, ``None`` to none; a mapping gives each key (without the prefix ``strip``) its
    own, ``None`` for none.

    Example:
        >>> from types import SimpleNamespace
        >>> directions(SimpleNamespace(higher_is_better={"a": True, "b": None}), ["m/a", "m/b"], strip="m/")
        {'m/a': True}
    """
    higher = getattr(metric, "higher_is_better", None)
    if isinstance(higher, Mapping):
        return {
            key: bool(higher[key.removeprefix(strip)])
            for key in keys
            if higher.get(key.removeprefix(strip)) is not None
        }
    return {} if higher is None else dict.fromkeys(keys, bool(higher))


def _annotated_keys(name: str, metric: nn.Module) -> list[str] | None:
    """The keys ``compute()``'s return annotation promises: a pair's two, a scalar's one, ``None`` for a dict."""
    annotation = inspect.signature(type(metric).compute).return_annotation
    text = (annotation if isinstance(annotation, str) else repr(annotation)).lower().removeprefix("typing.")
    if text.startswith("tuple"):
        return [name, f"{name}_std"]
    return None if text.startswith(("dict", "mapping")) else [name]


def _copy_state(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.clone()
    return [item.clone() for item in value]


class MetricPlug:
    """One metric as the callback drives it: fed uint8 images (an ``ImageBatch`` where it accepts one), reset
    between evaluations, its result flattened.

    Args:
        name: the metric's name: the logged keys start with it.
        metric: a ``torchmetrics.Metric`` (or any module with ``update``, ``compute`` and ``reset``).

    Example:
        >>> import torch
        >>> from torchmetrics import MeanMetric
        >>> class Brightness(MeanMetric):
        ...     higher_is_better = True
        ...     def update(self, images):
        ...         super().update(images.float().mean())
        >>> plug = MetricPlug("brightness", Brightness())
        >>> plug.takes_real, plug.takes_ids, plug.takes_batch
        (False, False, False)
        >>> plug.update_generated(torch.full((2, 3, 4, 4), 51, dtype=torch.uint8), torch.arange(2))
        >>> plug.compute(), plug.directions()
        ({'brightness': 51.0}, {'brightness': True})
    """

    def __init__(self, name: str, metric: nn.Module) -> None:
        self.name = name
        self.metric = metric
        parameters = update_parameters(metric)
        self.takes_real = "real" in parameters
        self.takes_ids = "sample_ids" in parameters
        self.takes_batch = getattr(metric, "accepts_image_batch", False) is True
        self._keys = _annotated_keys(name, metric)
        self._real_state: dict[str, Any] | None = None
        # Under `ddp_spawn` a metric built in the launching process reaches every rank with its state tensors in
        # shared memory, where one rank's in-place update would show on the others: each rank gets its own copies.
        for state, value in getattr(metric, "metric_state", {}).items():
            setattr(metric, state, _copy_state(value))

    @property
    def keeps_real_on_reset(self) -> bool:
        """Whether ``reset()`` leaves the real side in place (``reset_real_features=False``)."""
        return getattr(self.metric, "reset_real_features", True) is False

    def update_real(self, images: Tensor | ImageBatch) -> None:
        """Add real uint8 images ``[N, 3, H, W]`` (or an ``ImageBatch`` of them)."""
        self.metric.update(self._images(images), real=True)

    def real_side_fed(self) -> None:
        """The real images are all in: remember the real side's states when ``reset()`` would drop them."""
        if not self.keeps_real_on_reset:
            self._real_state = {name: _copy_state(value) for name, value in self.metric.metric_state.items()}

    def update_generated(self, images: Tensor | ImageBatch, ids: Tensor) -> None:
        """Add generated uint8 images ``[N, 3, H, W]`` (or an ``ImageBatch`` of them) whose global sample indices
        are ``ids``."""
        kwargs: dict[str, Any] = {}
        if self.takes_real:
            kwargs["real"] = False
        if self.takes_ids:
            kwargs["sample_ids"] = ids
        self.metric.update(self._images(images), **kwargs)

    def _images(self, images: Tensor | ImageBatch) -> Tensor | ImageBatch:
        """What the metric's ``update`` takes: the batch itself where it accepts one, else its uint8 tensor."""
        return images.uint8 if isinstance(images, ImageBatch) and not self.takes_batch else images

    def reset_generated(self) -> None:
        """Forget the generated side; the real side (when the metric takes one) stays as it was fed."""
        self.metric.reset()
        if self._real_state is not None:
            for name, value in self._real_state.items():
                setattr(self.metric, name, _copy_state(value))

    def compute(self) -> dict[str, float]:
        """The metric's value(s) by logged key (unprefixed).

        Raises:
            TypeError: ``compute()`` returned something other than a scalar, a pair or a dict of scalars.
        """
        values = self.flatten(self.metric.compute())
        self._keys = list(values)
        return values

    def flatten(self, result: Any) -> dict[str, float]:
        """A ``compute()`` result by logged key."""
        if isinstance(result, Mapping):
            return {f"{self.name}/{key}": _scalar(value, self.name) for key, value in result.items()}
        if isinstance(result, (tuple, list)) and len(result) == 2:
            return {self.name: _scalar(result[0], self.name), f"{self.name}_std": _scalar(result[1], self.name)}
        return {self.name: _scalar(result, self.name)}

    def value_names(self) -> list[str]:
        """The keys of the last ``compute()``, or those its annotation promises (logged as NaN when a value cannot
        be computed); empty for a dict result not computed yet."""
        return [] if self._keys is None else list(self._keys)

    def directions(self) -> dict[str, bool]:
        """``higher_is_better`` for each key that has one (``_std`` keys have none)."""
        names = [key for key in self.value_names() if key != f"{self.name}_std"]
        return directions(self.metric, names, strip=f"{self.name}/")


def _scalar(value: Any, name: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(
                f"Expected metric {name!r} to compute a scalar, a (mean, std) pair or a dict of scalars, got a "
                f"tensor of shape {tuple(value.shape)}."
            )
        return float(value.detach().to(torch.float64).cpu())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(
        f"Expected metric {name!r} to compute a scalar, a (mean, std) pair or a dict of scalars, got "
        f"{type(value).__name__}."
    )
