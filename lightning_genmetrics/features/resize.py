"""Resize protocols by name: how an image of any size becomes the network's 299×299 input.

The protocol is part of a metric's definition: the same images give FID values that differ in
the second digit between protocols, so it is always named, never inferred. Every protocol takes
pixel values on the 0..255 scale (uint8, or floating point holding 0..255) and returns float32 on
the same scale, which the FID InceptionV3 then maps to ``(x - 128) / 128``.

- ``"tf1"``: bilinear resampling as TensorFlow 1.x's ``tf.image.resize_bilinear`` with
  ``align_corners=False`` (and no half-pixel centres): output pixel ``i`` samples the input at
  ``i · in / out``, computed in float32 as TF1 did. The original FID/IS code and torch-fidelity
  resize this way; it is the default.
- ``"torch-antialias"``: ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``,
  what torchmetrics' FID does by default.
- ``"clean"``: PIL bicubic on each channel as a float32 image, clipped to ``[0, 255]``, as
  clean-fid does. It runs through NumPy and Pillow on the CPU (and needs Pillow installed).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ResizeProtocol = Literal["tf1", "torch-antialias", "clean"]
RESIZE_PROTOCOLS: tuple[str, ...] = get_args(ResizeProtocol)


def check_resize_protocol(protocol: Any, *, name: str = "resize") -> ResizeProtocol:
    """Return ``protocol`` if it names a resize protocol, checking that its dependencies are installed.

    Args:
        protocol: one of ``"tf1"``, ``"torch-antialias"``, ``"clean"``.
        name: the argument name used in error messages.

    Raises:
        ValueError: any other value.
        ModuleNotFoundError: ``"clean"`` without Pillow installed.

    Example:
        >>> check_resize_protocol("tf1")
        'tf1'
    """
    if not isinstance(protocol, str) or protocol not in RESIZE_PROTOCOLS:
        raise ValueError(f"Expected `{name}` to be one of {RESIZE_PROTOCOLS}, got {protocol!r}.")
    if protocol == "clean":
        _import_pillow()
    return protocol  # type: ignore[return-value]


def resize_images(images: Tensor, size: int | tuple[int, int], protocol: ResizeProtocol) -> Tensor:
    """Resize a batch of images to ``size`` by the named protocol.

    Args:
        images: ``[N, C, H, W]``, uint8 or floating point, with values on the 0..255 scale.
        size: the output ``(height, width)``, or one int for a square output.
        protocol: ``"tf1"``, ``"torch-antialias"`` or ``"clean"`` (see the module docstring).

    Returns:
        float32 ``[N, C, height, width]`` on the 0..255 scale, on the device of ``images``.

    Raises:
        TypeError: ``images`` not a tensor, or neither uint8 nor floating point; ``size`` not an
            int or a pair of ints.
        ValueError: ``images`` not 4-D or with an empty spatial side; ``size`` not positive; an
            unknown ``protocol``.
        ModuleNotFoundError: ``"clean"`` without Pillow installed.

    Example:
        >>> import torch
        >>> images = torch.tensor([[[[0, 100], [200, 255]]]], dtype=torch.uint8)
        >>> resize_images(images, 4, "tf1")
        tensor([[[[  0.0000,  50.0000, 100.0000, 100.0000],
                  [100.0000, 138.7500, 177.5000, 177.5000],
                  [200.0000, 227.5000, 255.0000, 255.0000],
                  [200.0000, 227.5000, 255.0000, 255.0000]]]])
    """
    _check_images(images)
    height, width = _check_size(size)
    protocol = check_resize_protocol(protocol, name="protocol")
    if protocol == "tf1":
        return _resize_tf1(images.to(torch.float32), height, width)
    if protocol == "torch-antialias":
        return F.interpolate(
            images.to(torch.float32), size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
    return _resize_pil_bicubic(images, height, width)


def _check_images(images: Any) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"Expected `images` to be a torch.Tensor, got {type(images).__name__}.")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"Expected `images` to be uint8 or floating point, got dtype {images.dtype}.")
    if images.ndim != 4 or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(
            f"Expected `images` to have shape [N, C, H, W] with H, W > 0, got shape {tuple(images.shape)}."
        )


def _check_size(size: Any) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else size
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(isinstance(side, int) and not isinstance(side, bool) for side in pair)
    ):
        raise TypeError(f"Expected `size` to be an int or a (height, width) pair of ints, got {size!r}.")
    if pair[0] <= 0 or pair[1] <= 0:
        raise ValueError(f"Expected `size` to be positive, got {size!r}.")
    return pair[0], pair[1]


def _tf1_sample_points(in_size: int, out_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    # TF1 multiplies in float32 (``float in = i * scale``); doing the same keeps the weights bit-equal.
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    position = torch.arange(out_size, dtype=torch.float32, device=device) * scale
    lower = position.floor()
    below = lower.long()
    above = (below + 1).clamp_max(in_size - 1)
    return below, above, position - lower


def _resize_tf1(images: Tensor, height: int, width: int) -> Tensor:
    rows_below, rows_above, row_weight = _tf1_sample_points(images.shape[2], height, images.device)
    cols_below, cols_above, col_weight = _tf1_sample_points(images.shape[3], width, images.device)

    def along_width(rows: Tensor) -> Tensor:
        left = rows.index_select(3, cols_below)
        return left + (rows.index_select(3, cols_above) - left) * col_weight

    # Same operation order as TF1's kernel: interpolate each row pair horizontally, then vertically.
    top = along_width(images.index_select(2, rows_below))
    bottom = along_width(images.index_select(2, rows_above))
    return top + (bottom - top) * row_weight[:, None]


def _resize_pil_bicubic(images: Tensor, height: int, width: int) -> Tensor:
    image_module = _import_pillow()
    planes = images.detach().to("cpu", torch.float32).numpy()
    out = np.empty((*planes.shape[:2], height, width), dtype=np.float32)
    for index in np.ndindex(*planes.shape[:2]):
        plane = image_module.fromarray(np.ascontiguousarray(planes[index]))
        out[index] = np.asarray(plane.resize((width, height), resample=image_module.Resampling.BICUBIC))
    # Bicubic overshoots at edges; clean-fid clips back to the pixel range.
    return torch.from_numpy(out.clip(0, 255)).to(images.device)


def _import_pillow() -> Any:
    try:
        from PIL import Image
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("The 'clean' resize protocol needs Pillow: `pip install pillow`.") from error
    return Image
