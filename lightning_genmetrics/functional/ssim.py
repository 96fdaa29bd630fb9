r"""Structural similarity (SSIM) and multi-scale SSIM (MS-SSIM), with torchmetrics 1.9's arguments and numbers.

For images ``x``, ``y``, data range ``R`` and a window ``w`` normalised to sum 1, at every pixel:

    μx = w∗x,   σx² = w∗x² − μx²,   σxy = w∗(xy) − μx·μy
    SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),   C1 = (k1·R)², C2 = (k2·R)²

with population moments (no ``n − 1`` correction); ``cs = (2σxy + C2)/(σx² + σy² + C2)`` is the
contrast-structure ("contrast sensitivity") term. An image's SSIM is the mean of the map over its channels
and pixels; the batch's is reduced over images by ``reduction``.

**Window.** ``gaussian_kernel=True`` (default): a Gaussian of standard deviation ``sigma`` whose size comes
from ``sigma``, ``2·⌊3.5σ + 0.5⌋ + 1`` taps (11 for σ = 1.5, 5 for σ = 0.5), as scikit-image
(``truncate=3.5``) and torchmetrics choose it; ``kernel_size`` is then not used (except for the depth
padding of a volume, below). ``gaussian_kernel=False``: a uniform ``kernel_size`` window and ``sigma`` is
not used. Either may be one number or one per spatial axis (``(H, W)`` or ``(D, H, W)``): images
``[N, C, H, W]`` and volumes ``[N, C, D, H, W]`` are both accepted.

**Border** (``border``, keyword-only):

- ``"reflect"`` (default, torchmetrics 1.9's): each axis is padded by half the window, mirrored without
  repeating the edge pixel (``c b | a b c``: ``torch.nn.functional.pad(mode="reflect")``), and the map
  is averaged over every pixel. The contrast-structure term (``return_contrast_sensitivity`` and MS-SSIM's
  finer scales) is averaged only where the window lies inside the image, as torchmetrics crops it. For a
  volume with a Gaussian window, torchmetrics pads the last axis by ``(kernel_size[2] − 1) // 2`` rather
  than by half the Gaussian's size; this is kept, so the numbers stay torchmetrics'. (With a 1-tap window
  torchmetrics' crop is empty and its cs term NaN; here it is the whole image's.)
- ``"valid"``: the map is kept only where the window lies inside the image, nothing is padded: the
  protocol of Wang et al.'s reference code and of scikit-image's ``structural_similarity(x, y,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R)``, which published SSIM
  numbers use. MS-SSIM with it is pytorch-msssim's for one channel and sides divisible by
  ``2^(scales − 1)`` (pytorch-msssim averages the per-channel MS-SSIM of colour images, and pads an odd
  side before pooling). Images need every side ≥ the window.
- ``"symmetric"``: mirrored with the edge pixel repeated (``b a | a b``: scipy.ndimage's ``"reflect"``),
  every pixel counted: the mean of scikit-image's ``full=True`` map.

torchmetrics' number and scikit-image's differ by the border only, which matters on small images: at
32×32 the valid region is 22×22, so 540 of the default map's 1024 pixels are computed from mirrored ones.

**Computation.** Everything is float64: in float32, ``w∗x² − μx²`` loses about 1e-7·μx² to cancellation,
a 1e-4 error next to ``C2`` in flat regions (torchmetrics computes in the input's dtype, so float32
inputs agree with it to about 1e-6). The window is applied as one 1-D pass per axis, each the product
with a matrix holding the window (and, for the padded borders, the mirrored taps folded onto the pixels
they copy). The sum and difference images ``a = x + y`` and ``d = x − y`` give every term from four
filtered maps instead of five: ``2μxμy = (μa² − μd²)/2``, ``μx² + μy² = (μa² + μd²)/2``,
``2σxy = (σa² − σd²)/2`` and ``σx² + σy² = (σa² + σd²)/2``; so the value is exactly symmetric in
``x`` and ``y`` and ``SSIM(x, x)`` is exactly 1.

**Gradients.** Both functions are differentiable in ``preds`` and ``target`` (nothing is detached), so
``1 - SSIM`` serves as a loss; ``data_range=(low, high)`` clamps, whose gradient is 0 outside the range.

**MS-SSIM** over ``M = len(betas)`` scales, with images averaged over 2×2 (2×2×2) blocks between scales
(an odd last row or column is dropped, as ``avg_pool2d``)::

    MS-SSIM = SSIM_M^β_M · Π_{j<M} cs_j^β_j

where ``cs_j`` is the per-image mean contrast-structure term at scale ``j`` and ``SSIM_M`` the per-image
SSIM at the coarsest scale; :data:`MS_SSIM_BETAS` are Wang, Simoncelli and Bovik's (2003) weights.
``normalize="relu"`` (default) counts a negative term as 0 first (a negative number has no real
fractional power; pytorch-msssim's rule), ``"simple"`` maps every term ``t`` to ``(t + 1)/2``, and ``None``
leaves them, so that a negative term gives NaN (as in torchmetrics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_genmetrics._checks import (
    RANGE_TOLERANCE,
    check_finite,
    check_option,
    check_positive_number,
    check_reduction,
    check_tensor,
)

SSIMBorder = Literal["reflect", "valid", "symmetric"]
SSIM_BORDERS: tuple[str, ...] = ("reflect", "valid", "symmetric")
SSIMReduction = Literal["elementwise_mean", "sum", "none", None]
MSSSIMNormalize = Literal["relu", "simple", None]
MS_SSIM_BETAS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DataRange = float | tuple[float, float]
# Images are filtered in chunks of about this many pixels (four float64 maps: 32 MiB, near a CPU's
# last-level cache), which bounds the memory a large batch needs.
_CHUNK_PIXELS = 1 << 20
_DATA_RANGE_HINT = "pass data_range=1.0 for images in [0, 1], 255 for uint8 (or data_range=(low, high) to clamp)"


def gaussian_kernel_size(sigma: float) -> int:
    """The Gaussian window's number of taps for ``sigma``: ``2·⌊3.5σ + 0.5⌋ + 1`` (scikit-image, torchmetrics).

    Example:
        >>> gaussian_kernel_size(1.5), gaussian_kernel_size(0.5), gaussian_kernel_size(0.1)
        (11, 5, 1)
    """
    return 2 * int(3.5 * sigma + 0.5) + 1


def gaussian_window(kernel_size: int, sigma: float) -> Tensor:
    """The 1-D Gaussian window: ``exp(-t² / 2σ²)`` at ``t = -(K-1)/2 … (K-1)/2``, normalised to sum 1 (float64).

    Example:
        >>> gaussian_window(3, 1.0)
        tensor([0.2741, 0.4519, 0.2741], dtype=torch.float64)
    """
    offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _as_tuple(value: Any, name: str) -> tuple[Any, ...]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) not in (2, 3):
            raise ValueError(f"Expected `{name}` to be a number or a sequence of 2 or 3 numbers, got {value!r}.")
        return tuple(value)
    return (value,)


def _expand(values: tuple[Any, ...], name: str, spatial: int) -> tuple[Any, ...]:
    """One entry per spatial axis: a single value is repeated, a sequence must have one per axis."""
    if len(values) == 1:
        return values * spatial
    if len(values) != spatial:
        raise ValueError(
            f"Expected `{name}` to have one entry per spatial axis ({spatial} for inputs with {spatial + 2} "
            f"dimensions), got {values!r}."
        )
    return values


def check_window_options(
    gaussian_kernel: Any, sigma: Any, kernel_size: Any, k1: Any, k2: Any
) -> tuple[bool, tuple[float, ...], tuple[int, ...], float, float]:
    """Validate the window and constants shared by SSIM and MS-SSIM.

    Returns ``(gaussian_kernel, sigma, kernel_size, k1, k2)`` with ``sigma`` and ``kernel_size`` as tuples
    (one entry for a single number, else one per spatial axis).

    Raises:
        TypeError: a ``gaussian_kernel`` that is not a bool (a number there is an old positional
            ``data_range``: the message says to pass it by keyword), or non-numeric options.
        ValueError: an even or non-positive kernel size, a non-positive ``sigma``, ``k1`` or ``k2``, or a
            sequence of the wrong length.
    """
    if not isinstance(gaussian_kernel, bool):
        hint = (
            " The first argument is `gaussian_kernel`, as in torchmetrics: pass the range by keyword, "
            f"`data_range={gaussian_kernel!r}`."
            if isinstance(gaussian_kernel, (int, float, tuple))
            else ""
        )
        raise TypeError(f"Expected `gaussian_kernel` to be a bool, got {gaussian_kernel!r}.{hint}")
    sigmas = tuple(check_positive_number(s, "sigma") for s in _as_tuple(sigma, "sigma"))
    sizes = _as_tuple(kernel_size, "kernel_size")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"Expected `kernel_size` to be an int or a sequence of ints, got {kernel_size!r}.")
        if size < 1 or size % 2 == 0:
            raise ValueError(f"Expected `kernel_size` to be odd positive numbers, got {kernel_size!r}.")
    return gaussian_kernel, sigmas, sizes, check_positive_number(k1, "k1"), check_positive_number(k2, "k2")


def check_ssim_data_range(data_range: Any) -> float | tuple[float, float]:
    """Validate ``data_range``: a positive width, or a ``(low, high)`` pair to clamp to; ``None`` is refused.

    Raises:
        ValueError: ``None`` (torchmetrics infers the range per batch, which makes batches incomparable:
            the message says what to pass), a non-positive width, or ``low >= high``.
        TypeError: neither a number nor a pair of numbers.

    Example:
        >>> check_ssim_data_range(255), check_ssim_data_range((-1, 1))
        (255.0, (-1.0, 1.0))
    """
    if data_range is None:
        raise ValueError(
            "Expected `data_range` to be given: torchmetrics infers it from each batch (max - min), so values "
            f"of different batches are not comparable; {_DATA_RANGE_HINT}."
        )
    if isinstance(data_range, (tuple, list)):
        if len(data_range) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in data_range):
            raise TypeError(f"Expected `data_range` to be a number or a (low, high) pair, got {data_range!r}.")
        low, high = float(data_range[0]), float(data_range[1])
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"Expected `data_range=(low, high)` with finite low < high, got {data_range!r}.")
        return low, high
    return check_positive_number(data_range, "data_range")


def check_betas(betas: Any) -> tuple[float, ...]:
    """Validate MS-SSIM scale weights: a non-empty sequence of finite numbers ≥ 0; return them as a tuple.

    Raises:
        TypeError: not a sequence of numbers.
        ValueError: empty, or a negative or non-finite weight.
    """
    if not isinstance(betas, Sequence) or isinstance(betas, str):
        raise TypeError(f"Expected `betas` to be a sequence of numbers, got {betas!r}.")
    if len(betas) == 0:
        raise ValueError("Expected `betas` to hold at least one weight, got an empty sequence.")
    for beta in betas:
        if isinstance(beta, bool) or not isinstance(beta, (int, float)):
            raise TypeError(f"Expected `betas` to be a sequence of numbers, got {betas!r}.")
        if not math.isfinite(beta) or beta < 0:
            raise ValueError(f"Expected every weight in `betas` to be a finite number >= 0, got {tuple(betas)}.")
    return tuple(float(beta) for beta in betas)


def _check_images(preds: Any, target: Any, data_range: float | tuple[float, float]) -> tuple[Tensor, Tensor, float]:
    """Check two batches ``[N, C, H, W]`` or ``[N, C, D, H, W]``; return them as float64 and the range's width."""
    for name, images in (("preds", preds), ("target", target)):
        check_tensor(images, name)
        if not (images.is_floating_point() or images.dtype == torch.uint8):
            raise TypeError(f"Expected `{name}` to be uint8 or floating point, got dtype {images.dtype}.")
        if images.ndim not in (4, 5) or 0 in images.shape[1:]:
            raise ValueError(
                f"Expected `{name}` to have shape [N, C, H, W] or [N, C, D, H, W] with every size but N > 0, "
                f"got shape {tuple(images.shape)}."
            )
    if preds.shape != target.shape:
        raise ValueError(
            f"Expected `preds` and `target` to have the same shape, got {tuple(preds.shape)} and {tuple(target.shape)}."
        )
    x, y = preds.to(torch.float64), target.to(torch.float64)
    if preds.numel() > 0:
        for name, images in (("preds", x), ("target", y)):
            smallest, largest = (float(value) for value in torch.aminmax(images.detach()))
            if not (math.isfinite(smallest) and math.isfinite(largest)):
                check_finite(images, name)
            if not isinstance(data_range, tuple) and largest - smallest > data_range * (1 + RANGE_TOLERANCE):
                raise ValueError(
                    f"Expected the values of `{name}` to span at most data_range={data_range:g}, got values in "
                    f"[{smallest:.6g}, {largest:.6g}]. Pass the range the images really have, or "
                    "data_range=(low, high) to clamp them to it as torchmetrics does."
                )
    width = data_range[1] - data_range[0] if isinstance(data_range, tuple) else data_range
    return x, y, width


def _clamped(images: Tensor, data_range: float | tuple[float, float]) -> Tensor:
    """Images clamped to a ``(low, high)`` range; unchanged for a width."""
    return images.clamp(*data_range) if isinstance(data_range, tuple) else images


class _Windows:
    """The per-axis windows and paddings of one call, resolved for inputs with ``spatial`` axes."""

    def __init__(
        self,
        gaussian_kernel: bool,
        sigma: tuple[float, ...],
        kernel_size: tuple[int, ...],
        border: str,
        spatial: int,
    ) -> None:
        sigma = _expand(sigma, "sigma", spatial)
        kernel_size = _expand(kernel_size, "kernel_size", spatial)
        if gaussian_kernel:
            sizes = [gaussian_kernel_size(s) for s in sigma]
            self.windows = [gaussian_window(k, s) for k, s in zip(sizes, sigma, strict=True)]
        else:
            sizes = list(kernel_size)
            self.windows = [torch.full((k,), 1.0 / k, dtype=torch.float64) for k in sizes]
        self.sizes = sizes
        self.border = border
        self.pads = [(k - 1) // 2 for k in sizes]
        if border == "reflect" and gaussian_kernel and spatial == 3:
            # torchmetrics 1.9 pads a volume's last axis by the uniform-window size even for a Gaussian window.
            self.pads[2] = (kernel_size[2] - 1) // 2
        elif border == "symmetric":
            self.pads = [k // 2 for k in sizes]

    def minimum(self, axis: int, contrast_structure: bool) -> int:
        """The smallest side along ``axis`` for an SSIM (or, with ``contrast_structure``, a cs) value."""
        size, pad = self.sizes[axis], self.pads[axis]
        if self.border == "valid" or (self.border == "reflect" and contrast_structure):
            return size
        if self.border == "reflect":
            # Padding mirrors at most length - 1 pixels, and the padded axis must hold the window.
            return max(pad + 1, size - 2 * pad)
        return 1

    def matrices(self, lengths: Sequence[int], device: torch.device) -> list[Tensor]:
        return [
            _pass_matrix(length, window.to(device), pad, self.border)
            for length, window, pad in zip(lengths, self.windows, self.pads, strict=True)
        ]


def _pass_matrix(length: int, window: Tensor, pad: int, border: str) -> Tensor:
    """The ``[length, out]`` matrix ``M`` for which ``row @ M`` filters a row of ``length`` pixels by ``window``.

    ``"valid"``: column ``j`` holds the window at rows ``j … j+K-1``. Padded borders: the valid matrix of
    the row padded by ``pad`` pixels each side, with each mirrored pixel's row added onto the pixel it copies.
    """
    size = window.numel()
    if border == "valid":
        out = length - size + 1
        band = torch.zeros(out, length, dtype=window.dtype, device=window.device)
        band.as_strided((out, size), (length + 1, 1)).copy_(window)
        return band.T.contiguous()
    padded = _pass_matrix(length + 2 * pad, window, 0, "valid")
    positions = torch.arange(-pad, length + pad, device=window.device)
    if border == "reflect":
        source = torch.where(positions < 0, -positions, positions)
        source = torch.where(source >= length, 2 * (length - 1) - source, source)
    else:
        positions = positions % (2 * length)
        source = torch.where(positions < length, positions, 2 * length - 1 - positions)
    out = torch.zeros(length, padded.shape[1], dtype=window.dtype, device=window.device)
    return out.index_add_(0, source, padded)


def _filter(maps: Tensor, matrices: Sequence[Tensor]) -> Tensor:
    """Filter the last ``len(matrices)`` axes of ``maps``, one 1-D pass per axis (``matrices[i]`` for axis ``i``)."""
    axes = len(matrices)
    for matrix in reversed(matrices):
        # Filter the last axis, then move it to the front of the spatial axes: after every pass, the order is back.
        maps = (maps @ matrix).movedim(-1, -axes)
    return maps


def _similarity_maps(x: Tensor, y: Tensor, matrices: Sequence[Tensor], c1: float, c2: float) -> tuple[Tensor, Tensor]:
    """The SSIM and contrast-structure maps of float64 images ``[..., *spatial]``.

    In place when no gradient is needed (faster, a quarter of the memory); out of place for autograd, with
    the same operations in the same order, so that the values are bit-identical.
    """
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        sum_images, diff_images = x + y, x - y
        maps = _filter(torch.stack([sum_images, diff_images, sum_images.square(), diff_images.square()]), matrices)
        mean_sum, mean_diff, second_sum, second_diff = maps.unbind(0)
        mean_sum_sq, mean_diff_sq = mean_sum.square(), mean_diff.square()
        var_sum, var_diff = second_sum - mean_sum_sq, second_diff - mean_diff_sq
        luminance_den = mean_sum_sq + mean_diff_sq + 2 * c1
        luminance_num = torch.add(luminance_den, mean_diff_sq, alpha=-2)
        cs_den = var_sum + var_diff + 2 * c2
        contrast_structure = torch.add(cs_den, var_diff, alpha=-2) / cs_den
        return luminance_num / luminance_den * contrast_structure, contrast_structure
    maps = torch.empty((4, *x.shape), dtype=torch.float64, device=x.device)
    maps[0].copy_(x).add_(y)
    maps[1].copy_(x).sub_(y)
    torch.square(maps[:2], out=maps[2:])
    mean_sum, mean_diff, second_sum, second_diff = _filter(maps, matrices).unbind(0)
    mean_sum_sq, mean_diff_sq = mean_sum.square_(), mean_diff.square_()
    var_sum, var_diff = second_sum.sub_(mean_sum_sq), second_diff.sub_(mean_diff_sq)
    # numerator = denominator - 2·(difference term), in place: fewer passes over memory-bound maps.
    luminance_den = mean_sum_sq.add_(mean_diff_sq).add_(2 * c1)
    luminance_num = torch.add(luminance_den, mean_diff_sq, alpha=-2)
    cs_den = var_sum.add_(var_diff).add_(2 * c2)
    contrast_structure = torch.add(cs_den, var_diff, alpha=-2).div_(cs_den)
    return luminance_num.div_(luminance_den).mul_(contrast_structure), contrast_structure


def _interior(maps: Tensor, windows: _Windows, spatial: int) -> Tensor:
    """The part of a padded border's maps where the window lies inside the image (torchmetrics' crop)."""
    if windows.border != "reflect":
        return maps
    index: list[Any] = [Ellipsis]
    for axis in range(spatial):
        pad, length = windows.pads[axis], maps.shape[maps.ndim - spatial + axis]
        index.append(slice(pad, length - pad))
    return maps[tuple(index)]


def _per_image(
    x: Tensor, y: Tensor, windows: _Windows, c1: float, c2: float, *, contrast_structure: bool, full_image: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per-image SSIM ``[N]``, per-image cs ``[N]`` (or None) and the SSIM map (or None) of float64 images."""
    spatial = x.ndim - 2
    matrices = windows.matrices(x.shape[2:], x.device)
    per_chunk = max(1, _CHUNK_PIXELS // math.prod(x.shape[1:]))
    ssim_parts, cs_parts, map_parts = [], [], []
    # An empty batch still runs once, so that its (empty) map has the right shape.
    for start in range(0, max(x.shape[0], 1), per_chunk):
        ssim_map, cs_map = _similarity_maps(
            x[start : start + per_chunk], y[start : start + per_chunk], matrices, c1, c2
        )
        # The maps come out of the passes with strided layouts, which a mean over several axes reads in place.
        per_image_axes = tuple(range(1, ssim_map.ndim))
        ssim_parts.append(ssim_map.mean(per_image_axes))
        if contrast_structure:
            cs_parts.append(_interior(cs_map, windows, spatial).mean(per_image_axes))
        if full_image:
            map_parts.append(ssim_map.contiguous())
    ssim = torch.cat(ssim_parts)
    return (
        ssim,
        torch.cat(cs_parts) if contrast_structure else None,
        torch.cat(map_parts) if full_image else None,
    )


def _check_size(images: Tensor, windows: _Windows, scales: int, contrast_structure: bool) -> None:
    spatial = images.ndim - 2
    minimum = [
        max(windows.minimum(axis, contrast_structure or scale < scales - 1) * 2**scale for scale in range(scales))
        for axis in range(spatial)
    ]
    if all(side >= need for side, need in zip(images.shape[2:], minimum, strict=True)):
        return
    needed = "×".join(str(m) for m in minimum)
    what = "SSIM" if scales == 1 else f"MS-SSIM with {scales} scales"
    raise ValueError(
        f"Expected images of at least {needed} pixels for {what} with a window of {windows.sizes} taps and "
        f"border={windows.border!r}, got shape {tuple(images.shape)}."
        + (" Use fewer `betas` for smaller images." if scales > 1 else "")
    )


def _reduce(per_image: Tensor, reduction: str | None) -> Tensor:
    if reduction in ("none", None):
        return per_image
    if reduction == "sum":
        return per_image.sum()
    if per_image.numel() == 0:
        raise ValueError("Expected at least one image for `reduction='elementwise_mean'`, got an empty batch.")
    return per_image.mean()


def structural_similarity_index_measure(
    preds: Tensor,
    target: Tensor,
    gaussian_kernel: bool = True,
    sigma: float | Sequence[float] = 1.5,
    kernel_size: int | Sequence[int] = 11,
    reduction: SSIMReduction = "elementwise_mean",
    data_range: DataRange | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
    return_full_image: bool = False,
    return_contrast_sensitivity: bool = False,
    *,
    border: SSIMBorder = "reflect",
) -> Tensor | tuple[Tensor, Tensor]:
    """SSIM between two batches of images ``[N, C, H, W]`` or volumes ``[N, C, D, H, W]`` (float64).

    torchmetrics 1.9's arguments, in its order and with its meaning; see the module docstring for the
    formula, the window, the border policy and how it is computed. ``data_range`` is required.

    Args:
        preds: uint8 or floating images, any number of channels.
        target: images of the same shape.
        gaussian_kernel: a Gaussian window (its size from ``sigma``) if True, else a uniform ``kernel_size`` one.
        sigma: the Gaussian's standard deviation in pixels, one number or one per spatial axis.
        kernel_size: the uniform window's number of taps (odd), one number or one per spatial axis.
        reduction: over images: ``"elementwise_mean"``, ``"sum"``, or ``"none"``/``None`` (``[N]``).
        data_range: the width of the value range (1.0 for [0, 1], 255 for uint8), or ``(low, high)``: the
            images are clamped to it and its width used. Never inferred from the data.
        k1: luminance constant, ``C1 = (k1·data_range)²``.
        k2: contrast constant, ``C2 = (k2·data_range)²``.
        return_full_image: also return the SSIM map ``[N, C, *spatial]``.
        return_contrast_sensitivity: also return each image's mean contrast-structure term ``[N]``.
        border: ``"reflect"`` (torchmetrics'), ``"valid"`` (scikit-image's, published numbers) or
            ``"symmetric"``.

    Returns:
        The reduced SSIM, or ``(SSIM, map)`` / ``(SSIM, cs)`` with one of the ``return_`` options.

    Raises:
        TypeError: bad tensor types or dtypes, a ``gaussian_kernel`` that is not a bool (an old positional
            ``data_range``: pass it by keyword), or non-numeric options.
        ValueError: ``data_range=None``, bad shapes, images smaller than the window needs, NaN/Inf, values
            spanning more than ``data_range``, a bad option, both ``return_`` options, or an empty batch
            with ``reduction="elementwise_mean"``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> target = torch.rand(2, 3, 16, 16)
        >>> structural_similarity_index_measure(target, target, data_range=1.0)
        tensor(1., dtype=torch.float64)
        >>> preds = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
        >>> structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none").shape
        torch.Size([2])
        >>> structural_similarity_index_measure(preds, target, 1.0)
        Traceback (most recent call last):
            ...
        TypeError: Expected `gaussian_kernel` to be a bool, got 1.0. The first argument is `gaussian_kernel`, ...
    """
    gaussian_kernel, sigmas, sizes, k1, k2 = check_window_options(gaussian_kernel, sigma, kernel_size, k1, k2)
    reduction = check_reduction(reduction)
    data_range = check_ssim_data_range(data_range)
    check_option(border, "border", SSIM_BORDERS)
    if return_full_image and return_contrast_sensitivity:
        raise ValueError("Expected at most one of `return_full_image` and `return_contrast_sensitivity` to be True.")
    x, y, width = _check_images(preds, target, data_range)
    windows = _Windows(gaussian_kernel, sigmas, sizes, border, x.ndim - 2)
    _check_size(x, windows, scales=1, contrast_structure=return_contrast_sensitivity)
    ssim, cs, full = _per_image(
        _clamped(x, data_range),
        _clamped(y, data_range),
        windows,
        (k1 * width) ** 2,
        (k2 * width) ** 2,
        contrast_structure=return_contrast_sensitivity,
        full_image=return_full_image,
    )
    value = _reduce(ssim, reduction)
    if return_full_image:
        return value, full  # type: ignore[return-value]
    if return_contrast_sensitivity:
        return value, cs  # type: ignore[return-value]
    return value


def ssim_min_size(kernel_size: int, border: SSIMBorder = "reflect", scales: int = 1) -> int:
    """The smallest height and width that SSIM (``scales=1``) or MS-SSIM accepts with a ``kernel_size``-tap window.

    Example:
        >>> ssim_min_size(11, "valid"), ssim_min_size(11, "valid", scales=5), ssim_min_size(11, scales=5)
        (11, 176, 96)
    """
    windows = _Windows(False, (1.0,), (kernel_size,), border, 2)
    return max(windows.minimum(0, scale < scales - 1) * 2**scale for scale in range(scales))


def _normalized(term: Tensor, normalize: str | None) -> Tensor:
    if normalize == "relu":
        return term.clamp(min=0)
    if normalize == "simple":
        return (term + 1) / 2
    return term


def multiscale_structural_similarity_index_measure(
    preds: Tensor,
    target: Tensor,
    gaussian_kernel: bool = True,
    sigma: float | Sequence[float] = 1.5,
    kernel_size: int | Sequence[int] = 11,
    reduction: SSIMReduction = "elementwise_mean",
    data_range: DataRange | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
    betas: Sequence[float] = MS_SSIM_BETAS,
    normalize: MSSSIMNormalize = "relu",
    *,
    border: SSIMBorder = "reflect",
) -> Tensor:
    """MS-SSIM between two batches of images ``[N, C, H, W]`` or volumes ``[N, C, D, H, W]`` (float64).

    torchmetrics 1.9's arguments, in its order and with its meaning. One scale per weight in ``betas``;
    images must be large enough for the window at every scale (the error names the size: 96×96 for the
    defaults, 176×176 with ``border="valid"``). With ``betas=(1.0,)`` it is SSIM (``"valid"``,
    ``"symmetric"``). See the module docstring.

    Args:
        preds: uint8 or floating images, any number of channels.
        target: images of the same shape.
        gaussian_kernel: a Gaussian window (its size from ``sigma``) if True, else a uniform ``kernel_size`` one.
        sigma: the Gaussian's standard deviation in pixels, one number or one per spatial axis.
        kernel_size: the uniform window's number of taps (odd), one number or one per spatial axis.
        reduction: over images: ``"elementwise_mean"``, ``"sum"``, or ``"none"``/``None`` (``[N]``).
        data_range: the width of the value range, or ``(low, high)``: each scale's images are clamped to
            it (and pooled from the unclamped ones, as torchmetrics does); required.
        k1: luminance constant.
        k2: contrast constant.
        betas: the weight of each scale, finest first.
        normalize: ``"relu"`` (negative terms count as 0), ``"simple"`` (``(t + 1)/2``) or ``None``.
        border: ``"reflect"`` (torchmetrics'), ``"valid"`` (pytorch-msssim's) or ``"symmetric"``.

    Raises:
        TypeError: bad tensor types or dtypes, a ``gaussian_kernel`` that is not a bool, or non-numeric options.
        ValueError: ``data_range=None``, bad shapes, images too small for the scales (the message names the
            minimum), NaN/Inf, values spanning more than ``data_range``, or a bad option.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> target = torch.rand(1, 1, 128, 128)
        >>> multiscale_structural_similarity_index_measure(target, target, data_range=1.0)
        tensor(1., dtype=torch.float64)
        >>> multiscale_structural_similarity_index_measure(target[..., :64, :64], target[..., :64, :64], data_range=1.0)
        Traceback (most recent call last):
            ...
        ValueError: Expected images of at least 96×96 pixels for MS-SSIM with 5 scales ...
    """
    gaussian_kernel, sigmas, sizes, k1, k2 = check_window_options(gaussian_kernel, sigma, kernel_size, k1, k2)
    reduction = check_reduction(reduction)
    data_range = check_ssim_data_range(data_range)
    betas = check_betas(betas)
    if normalize is not None:
        check_option(normalize, "normalize", ("relu", "simple"))
    check_option(border, "border", SSIM_BORDERS)
    x, y, width = _check_images(preds, target, data_range)
    spatial = x.ndim - 2
    windows = _Windows(gaussian_kernel, sigmas, sizes, border, spatial)
    _check_size(x, windows, scales=len(betas), contrast_structure=False)
    c1, c2 = (k1 * width) ** 2, (k2 * width) ** 2
    pool = F.avg_pool2d if spatial == 2 else F.avg_pool3d
    value = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
    for scale, beta in enumerate(betas):
        coarsest = scale == len(betas) - 1
        # torchmetrics clamps each scale's images to a (low, high) range, and pools the unclamped ones.
        ssim, cs, _ = _per_image(
            _clamped(x, data_range),
            _clamped(y, data_range),
            windows,
            c1,
            c2,
            contrast_structure=not coarsest,
            full_image=False,
        )
        value = value * _normalized(ssim if coarsest else cs, normalize) ** beta  # type: ignore[operator]
        if not coarsest:
            x, y = pool(x, 2), pool(y, 2)
    return _reduce(value, reduction)
