"""Image range conversion: every image is checked and mapped to uint8 before feature extraction.

The FID/IS/KID protocols feed the network 8-bit images; quantising here (round, then clamp)
makes a float image and its uint8 version give identical features. Float images must declare
their range: guessing it per batch would make values depend on batching.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_finite, check_tensor, values_outside

InputRange = tuple[float, float]
INPUT_RANGES: tuple[InputRange, ...] = ((0.0, 1.0), (-1.0, 1.0))


def check_input_range(input_range: Any) -> InputRange | None:
    """Return ``input_range`` as floats if it is one of the supported ranges (or ``None``).

    Raises:
        ValueError: any other value.
    """
    if input_range is None:
        return None
    try:
        value = (float(input_range[0]), float(input_range[1]))
    except (TypeError, IndexError, ValueError):
        value = None
    if value not in INPUT_RANGES or len(input_range) != 2:
        raise ValueError(f"Expected `input_range` to be None, (0, 1) or (-1, 1), got {input_range!r}.")
    return value


def batch_to_images(batch: Any, name: str = "images") -> Any:
    """The images of a batch: the batch itself, or the first entry of an ``(images, labels, ...)`` tuple or list,
    which is what a ``DataLoader`` over a ``TensorDataset`` yields.

    Anything that is not a tuple or list is returned as it is (the image checks come after).

    Raises:
        TypeError: an empty tuple or list, one whose first entry is not a tensor, or a list of single images
            ``[C, H, W]`` (stack them into ``[N, C, H, W]``: taking the first would drop the rest silently).

    Example:
        >>> import torch
        >>> images, labels = torch.zeros(4, 3, 8, 8), torch.arange(4)
        >>> batch_to_images([images, labels]).shape
        torch.Size([4, 3, 8, 8])
    """
    if not isinstance(batch, (tuple, list)):
        return batch
    kind = type(batch).__name__
    if not batch or not isinstance(batch[0], Tensor):
        first = type(batch[0]).__name__ if batch else "nothing"
        raise TypeError(
            f"Expected `{name}` to be an image tensor [N, C, H, W] or an (images, labels, ...) {kind} starting with "
            f"one, got a {kind} starting with {first}."
        )
    if batch[0].ndim == 3:
        raise TypeError(
            f"Expected `{name}` to be an image tensor [N, C, H, W] or an (images, labels, ...) {kind}, got a {kind} "
            f"of {len(batch)} entries starting with a single image of shape {tuple(batch[0].shape)}: stack the "
            "images into one tensor (torch.stack) first."
        )
    return batch[0]


def images_to_uint8(images: Any, input_range: InputRange | None, *, name: str = "images") -> Tensor:
    """Check a batch of images and return it as uint8 ``[N, 3, H, W]``.

    Args:
        images: uint8 ``[N, C, H, W]`` with C = 1 or 3, or floating point in ``input_range``.
        input_range: ``(0, 1)`` or ``(-1, 1)`` for float images; ``None`` accepts uint8 only.
        name: the argument name used in error messages.

    Returns:
        uint8 images with three channels (a single channel is repeated). Floats are mapped by
        ``round((x - lo) / (hi - lo) · 255)`` and clamped to ``[0, 255]``.

    Raises:
        TypeError: not a tensor; a dtype other than uint8 or floating point; float images
            without ``input_range``.
        ValueError: not 4-D, C not 1 or 3, NaN/Inf, or values outside ``input_range``.

    Example:
        >>> import torch
        >>> images_to_uint8(torch.tensor([[[[-1.0, 0.0, 1.0]]]]), (-1, 1))
        tensor([[[[  0, 128, 255]],
        <BLANKLINE>
                 [[  0, 128, 255]],
        <BLANKLINE>
                 [[  0, 128, 255]]]], dtype=torch.uint8)
    """
    check_tensor(images, name)
    if images.ndim != 4:
        raise ValueError(f"Expected `{name}` to have shape [N, C, H, W], got shape {tuple(images.shape)}.")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"Expected `{name}` to have 1 or 3 channels (dim 1), got shape {tuple(images.shape)}.")
    if images.dtype != torch.uint8:
        images = _float_to_uint8(images, input_range, name)
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


def _float_to_uint8(images: Tensor, input_range: InputRange | None, name: str) -> Tensor:
    if not images.is_floating_point():
        raise TypeError(f"Expected `{name}` to be uint8 or floating point, got dtype {images.dtype}.")
    if input_range is None:
        raise TypeError(
            f"Got float `{name}` (dtype {images.dtype}) but no `input_range`: pass normalize=True (or "
            "input_range=(0, 1)) to the metric for images in [0, 1], input_range=(-1, 1) for [-1, 1], or give "
            "uint8 images."
        )
    check_finite(images, name)
    low, high = input_range
    if images.numel() == 0:
        return images.to(torch.uint8)
    outside = values_outside(images, low, high)
    if outside is not None:
        raise ValueError(
            f"Expected `{name}` in the declared input_range {input_range}, got values in "
            f"[{outside[0]:.6g}, {outside[1]:.6g}]."
        )
    scaled = (images.to(torch.float64) - low) * (255.0 / (high - low))
    return scaled.round_().clamp_(0, 255).to(torch.uint8)
