"""``ImageBatch``: one batch of images, checked and converted to uint8 once, read by every metric fed it.

FID and KID usually read the same layer of the same network, the Inception Score the logits a few operations
further, and a classifier judge or a second metric may use the same encoder: fed one ``ImageBatch``, every
consumer reads the batch's uint8 images (converted once), and a computation a consumer asks the batch for
(``computed(what, module, compute)``) runs once per batch and module, whoever asks. The batch holds the module of
every remembered computation, so no other object can take its identity while the batch lives. Nothing is global:
a consumer given a plain tensor builds its own batch, and shares nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import Tensor

from lightning_genmetrics.features.preprocess import InputRange, batch_to_images, check_input_range, images_to_uint8

_T = TypeVar("_T")


class ImageBatch:
    """A batch of images prepared once for several metrics, and the computations they share on it.

    The image metrics' ``update`` (FID, sFID, FD∞, IS, KID, PRDC, CMMD) takes an ``ImageBatch`` in place of the
    images: each reads ``uint8`` instead of converting again, and metrics whose extractors run the same network
    module (the same ``FIDInceptionV3`` or its ``layer_view``, one DINOv2 encoder given to two metrics) run it once
    on the batch. A batch is meant to be built, fed to its consumers, and dropped: images modified in place after
    a consumer read them are not read again.

    Float images keep their range: a metric fed a batch of float images checks that the batch's ``input_range``
    is its own (a ``ValueError`` otherwise, where a plain tensor would be read in the metric's range). A batch of
    uint8 images fits every metric.

    Args:
        images: uint8 ``[N, C, H, W]`` (C = 1 or 3), or floating point in ``input_range``; or an
            ``(images, labels, ...)`` batch whose first tensor is taken.
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only.
        name: the argument name used in error messages.

    Attributes:
        images: the images as given (for extractors with ``feature_input="as_given"``).
        uint8: uint8 ``[N, 3, H, W]`` (see :func:`~lightning_genmetrics.features.preprocess.images_to_uint8`).
        input_range: the checked range.

    Raises:
        TypeError: not a tensor; a dtype other than uint8 or floating point; float images without ``input_range``.
        ValueError: not 4-D, C not 1 or 3, NaN/Inf, values outside ``input_range``, an unsupported ``input_range``.

    Example:
        >>> import torch
        >>> batch = ImageBatch(torch.tensor([[[[-1.0, 1.0]]]]), input_range=(-1, 1))
        >>> batch.uint8.shape, batch.uint8[0, :, 0, 1].tolist()
        (torch.Size([1, 3, 1, 2]), [255, 255, 255])
        >>> calls = []
        >>> def brightness():
        ...     calls.append(1)
        ...     return batch.uint8.float().mean()
        >>> module = torch.nn.Identity()
        >>> first = batch.computed("brightness", module, brightness)
        >>> second = batch.computed("brightness", module, brightness)
        >>> len(calls), first is second
        (1, True)
    """

    def __init__(self, images: Any, input_range: InputRange | None = None, *, name: str = "images") -> None:
        self.input_range = check_input_range(input_range)
        self.images: Tensor = batch_to_images(images, name)
        self.uint8: Tensor = images_to_uint8(self.images, self.input_range, name=name)
        # (what, id(module)) -> (module, value): holding the module keeps its identity from being reused.
        self._memo: dict[tuple[Hashable, int], tuple[Any, Any]] = {}

    def __len__(self) -> int:
        return self.uint8.shape[0]

    def __repr__(self) -> str:
        return f"ImageBatch({len(self)} images {tuple(self.images.shape[1:])} {self.images.dtype})"

    @property
    def is_uint8(self) -> bool:
        """Whether the images were given as uint8 (then the batch fits a metric of any ``input_range``)."""
        return self.images.dtype == torch.uint8

    def computed(self, what: Hashable, module: Any, compute: Callable[[], _T]) -> _T:
        """``compute()`` the first time ``(what, module)`` is asked for on this batch, its result afterwards.

        ``what`` names the computation (two kinds of result of one module never mix); ``module`` is compared by
        identity. A ``compute`` that raises leaves nothing behind: the next request computes (and raises) again.
        """
        key = (what, id(module))
        entry = self._memo.get(key)
        if entry is not None:
            return entry[1]
        value = compute()
        self._memo[key] = (module, value)
        return value

    def check_range(self, input_range: InputRange | None, *, name: str = "images") -> None:
        """Check that a consumer reading float images in ``input_range`` may read this batch.

        Raises:
            ValueError: float images whose range is not ``input_range``.
        """
        if not self.is_uint8 and self.input_range != input_range:
            raise ValueError(
                f"Expected `{name}` to be an ImageBatch of uint8 images or of float images in this metric's "
                f"input_range {input_range}, got float images in input_range {self.input_range}."
            )
