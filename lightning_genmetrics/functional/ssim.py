r"""Structural similarity (SSIM) and multi-scale SSIM (MS-SSIM) from Gaussian-weighted local moments.

For images ``x``, ``y``, data range ``R`` and a Gaussian window ``w`` (``kernel_size`` taps of
standard deviation ``sigma``, normalised to sum 1), at every pixel:

    μx = w∗x,   σx² = w∗x² − μx²,   σxy = w∗(xy) − μx·μy
    SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),   C1 = (k1·R)², C2 = (k2·R)²

with population moments (no ``n − 1`` correction). An image's SSIM is the mean of this map over its
channels and pixels; a batch's is the mean over images.

**Computation.** Everything is float64: in float32, ``w∗x² − μx²`` loses about 1e-7·μx² to
cancellation, which is a 1e-4 error next to ``C2`` in flat regions. The window is applied as two 1-D
passes, along rows then along columns (never as one 2-D kernel); each pass is the product with a
banded matrix holding the window (plus, for ``border="symmetric"``, the mirrored taps folded onto
the pixels they copy), so one BLAS call filters a whole chunk of images. The sum and difference
images ``a = x + y`` and ``d = x − y`` give every term from four filtered maps instead of five:
``2μxμy = (μa² − μd²)/2``, ``μx² + μy² = (μa² + μd²)/2``, ``2σxy = (σa² − σd²)/2`` and
``σx² + σy² = (σa² + σd²)/2``. Swapping ``x`` and ``y`` only flips the sign of ``d``, so the value
is exactly symmetric, and ``SSIM(x, x)`` is exactly 1.

**Gradients.** Both functions are differentiable in ``preds`` and ``target``, so they can serve as
losses (``1 - SSIM``). When an input requires grad (and grad mode is on), the maps are computed out
of place, with the same operations in the same order, so the value is bit-identical to the one
without gradients; otherwise in place, which is faster and needs less memory. For MS-SSIM, a term
clamped to 0 (see below) has zero gradient.

**Border policy** (``border``):

- ``"valid"`` (default): the map is kept only where the window lies inside the image,
  ``(H − K + 1) × (W − K + 1)`` pixels, and nothing is padded. This is the value of scikit-image's
  ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=R)`` (and of torchmetrics). Images need ``H, W ≥ kernel_size``.
- ``"symmetric"``: the image is extended by mirroring with the edge pixel repeated
  (``d c b a | a b c d``: scipy.ndimage's ``"reflect"``, numpy's ``"symmetric"``) and the map is
  averaged over every pixel: the mean of scikit-image's ``full=True`` map.

**MS-SSIM** over ``M = len(betas)`` scales, with images averaged over 2×2 blocks between scales
(an odd last row or column is dropped, as ``avg_pool2d``)::

    MS-SSIM = SSIM_M^β_M · Π_{j<M} cs_j^β_j

where ``cs_j`` is the per-image mean of the contrast-structure map ``(2σxy + C2)/(σx² + σy² + C2)``
at scale ``j`` and ``SSIM_M`` the per-image SSIM at the coarsest scale; the standard weights are
:data:`MS_SSIM_BETAS` (Wang, Simoncelli and Bovik, 2003). **Negative terms**: a ``cs_j`` or
``SSIM_M`` below 0 (locally anti-correlated images) has no real fractional power, so it is set to 0
first and such an image scores 0 (pytorch-msssim's rule, torchmetrics' ``normalize="relu"``).
**Size**: the coarsest scale, ``⌊H / 2^(M−1)⌋ × ⌊W / 2^(M−1)⌋``, must hold the window, so five
scales with ``kernel_size=11`` need images of at least 176×176 pixels (``border="valid"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_genmetrics._checks import check_data_range, check_image_pair, check_option, check_positive_number
from lightning_genmetrics.functional.psnr import Reduction

SSIMBorder = Literal["valid", "symmetric"]
SSIM_BORDERS: tuple[str, ...] = ("valid", "symmetric")
MS_SSIM_BETAS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Images are filtered in chunks of about this many pixels (four float64 maps: 32 MiB, near a CPU's
# last-level cache), which is faster than one pass over a large batch and bounds the memory used.
_CHUNK_PIXELS = 1 << 20


def check_ssim_options(kernel_size: Any, sigma: Any, k1: Any, k2: Any, border: Any) -> tuple[int, float, float, float]:
    """Validate the window and constants shared by SSIM and MS-SSIM; return ``(kernel_size, sigma, k1, k2)``.

    Raises:
        TypeError: a non-numeric value (or a non-int ``kernel_size``).
        ValueError: an even or non-positive ``kernel_size``, a non-positive ``sigma``, ``k1`` or
            ``k2``, or an unknown ``border``.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(
            f"Expected `kernel_size` to be an int, got {kernel_size!r} of type {type(kernel_size).__name__}."
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"Expected `kernel_size` to be an odd positive number, got {kernel_size}.")
    check_option(border, "border", SSIM_BORDERS)
    return (
        kernel_size,
        check_positive_number(sigma, "sigma"),
        check_positive_number(k1, "k1"),
        check_positive_number(k2, "k2"),
    )


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


def ssim_min_size(kernel_size: int, border: SSIMBorder = "valid", scales: int = 1) -> int:
    """The smallest height and width that SSIM (``scales=1``) or MS-SSIM accepts.

    Example:
        >>> ssim_min_size(11), ssim_min_size(11, scales=5), ssim_min_size(11, "symmetric", scales=5)
        (11, 176, 16)
    """
    coarsest = kernel_size if border == "valid" else 1
    return coarsest * 2 ** (scales - 1)


def gaussian_window(kernel_size: int, sigma: float) -> Tensor:
    """The 1-D Gaussian window: ``exp(-t² / 2σ²)`` at ``t = -(K-1)/2 … (K-1)/2``, normalised to sum 1 (float64).

    Example:
        >>> gaussian_window(3, 1.0)
        tensor([0.2741, 0.4519, 0.2741], dtype=torch.float64)
    """
    offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _pass_matrix(length: int, window: Tensor, border: str) -> Tensor:
    """The ``[length, out]`` matrix ``M`` for which ``row @ M`` filters a row of ``length`` pixels by ``window``.

    ``"valid"``: ``out = length - K + 1`` outputs, column ``j`` holds the window at rows ``j … j+K-1``.
    ``"symmetric"``: ``out = length``; the valid matrix of the mirrored row (``K // 2`` extra pixels
    each side) with each mirrored pixel's row added onto the pixel it copies.
    """
    size = window.numel()
    if border == "valid":
        out = length - size + 1
        band = torch.zeros(out, length, dtype=window.dtype, device=window.device)
        band.as_strided((out, size), (length + 1, 1)).copy_(window)
        return band.T.contiguous()
    radius = size // 2
    padded = _pass_matrix(length + 2 * radius, window, "valid")
    positions = torch.arange(-radius, length + radius, device=window.device) % (2 * length)
    source = torch.where(positions < length, positions, 2 * length - 1 - positions)
    return torch.zeros(length, length, dtype=window.dtype, device=window.device).index_add_(0, source, padded)


def _chunk_sums(x: Tensor, y: Tensor, along_w: Tensor, along_h: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor]:
    """Per-plane sums of the SSIM map and of the contrast-structure map, for planes ``[P, H, W]``."""
    maps = torch.empty((4, *x.shape), dtype=torch.float64, device=x.device)
    # In place and in float64 (the sum and difference of two float32 images are exact in float64).
    maps[0].copy_(x).add_(y)
    maps[1].copy_(x).sub_(y)
    torch.square(maps[:2], out=maps[2:])
    # Rows, then columns: the maps come out transposed ([.., W', H']), which their sums do not see.
    filtered = (maps @ along_w).transpose(-1, -2) @ along_h
    mean_sum, mean_diff, second_sum, second_diff = filtered.unbind(0)
    mean_sum_sq, mean_diff_sq = mean_sum.square_(), mean_diff.square_()
    var_sum, var_diff = second_sum.sub_(mean_sum_sq), second_diff.sub_(mean_diff_sq)
    # In place, numerator = denominator - 2·(difference term): fewer passes over memory-bound maps.
    luminance_den = mean_sum_sq.add_(mean_diff_sq).add_(2 * c1)
    luminance_num = torch.add(luminance_den, mean_diff_sq, alpha=-2)
    cs_den = var_sum.add_(var_diff).add_(2 * c2)
    contrast_structure = torch.add(cs_den, var_diff, alpha=-2).div_(cs_den)
    ssim = luminance_num.div_(luminance_den).mul_(contrast_structure)
    return ssim.sum((-2, -1)), contrast_structure.sum((-2, -1))


def _differentiable_chunk_sums(
    x: Tensor, y: Tensor, along_w: Tensor, along_h: Tensor, c1: float, c2: float
) -> tuple[Tensor, Tensor]:
    """``_chunk_sums`` out of place, for autograd: the same operations in the same order, so the same values."""
    sum_images = x.to(torch.float64) + y.to(torch.float64)
    diff_images = x.to(torch.float64) - y.to(torch.float64)
    maps = torch.stack([sum_images, diff_images, sum_images.square(), diff_images.square()])
    filtered = (maps @ along_w).transpose(-1, -2) @ along_h
    mean_sum, mean_diff, second_sum, second_diff = filtered.unbind(0)
    mean_sum_sq, mean_diff_sq = mean_sum.square(), mean_diff.square()
    var_sum, var_diff = second_sum - mean_sum_sq, second_diff - mean_diff_sq
    luminance_den = mean_sum_sq + mean_diff_sq + 2 * c1
    luminance_num = torch.add(luminance_den, mean_diff_sq, alpha=-2)
    cs_den = var_sum + var_diff + 2 * c2
    contrast_structure = torch.add(cs_den, var_diff, alpha=-2) / cs_den
    ssim = luminance_num / luminance_den * contrast_structure
    return ssim.sum((-2, -1)), contrast_structure.sum((-2, -1))


def _ssim_and_contrast_structure(
    preds: Tensor, target: Tensor, window: Tensor, c1: float, c2: float, border: str
) -> tuple[Tensor, Tensor]:
    """Per-image means ``[N]`` of the SSIM map and of the contrast-structure map (float64)."""
    n, channels, height, width = preds.shape
    along_w = _pass_matrix(width, window, border)
    along_h = _pass_matrix(height, window, border)
    x, y = preds.reshape(n * channels, height, width), target.reshape(n * channels, height, width)
    per_chunk = max(1, _CHUNK_PIXELS // (height * width))
    # The in-place arithmetic is faster and lighter, but autograd cannot follow it.
    tracked = torch.is_grad_enabled() and (preds.requires_grad or target.requires_grad)
    chunk_sums = _differentiable_chunk_sums if tracked else _chunk_sums
    sums = [
        chunk_sums(x[i : i + per_chunk], y[i : i + per_chunk], along_w, along_h, c1, c2)
        for i in range(0, n * channels, per_chunk)
    ]
    pixels = channels * along_w.shape[1] * along_h.shape[1]
    ssim = torch.cat([s for s, _ in sums]).view(n, channels).sum(1) / pixels
    contrast_structure = torch.cat([cs for _, cs in sums]).view(n, channels).sum(1) / pixels
    return ssim, contrast_structure


def _check_size(images: Tensor, kernel_size: int, border: str, scales: int) -> None:
    minimum = ssim_min_size(kernel_size, border, scales)  # type: ignore[arg-type]
    if min(images.shape[-2:]) >= minimum:
        return
    if scales == 1:
        raise ValueError(
            f"Expected images of at least {minimum}×{minimum} pixels for kernel_size={kernel_size} with "
            f"border={border!r}, got shape {tuple(images.shape)}."
        )
    raise ValueError(
        f"MS-SSIM with {scales} scales and kernel_size={kernel_size} needs images of at least {minimum}×{minimum} "
        f"pixels with border={border!r} (the coarsest scale, 1/{2 ** (scales - 1)} of the size, must hold the "
        f"window), got shape {tuple(images.shape)}. Use fewer `betas` for smaller images."
    )


def _reduce(per_image: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_image
    if per_image.numel() == 0:
        raise ValueError("Expected at least one image for `reduction='mean'`, got an empty batch.")
    return per_image.mean()


def structural_similarity_index_measure(
    preds: Tensor,
    target: Tensor,
    data_range: float,
    *,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    border: SSIMBorder = "valid",
    reduction: Reduction = "mean",
) -> Tensor:
    """SSIM between two batches of images ``[N, C, H, W]`` (float64): the mean over images, or per image.

    See the module docstring for the formula, the border policy and how it is computed.

    Args:
        preds: uint8 or floating images, any number of channels.
        target: images of the same shape.
        data_range: the width of the value range (1.0 for [0, 1], 2.0 for [-1, 1], 255 for uint8);
            required, never inferred from the data.
        kernel_size: the window's number of taps (odd).
        sigma: the window's standard deviation in pixels.
        k1: luminance constant, ``C1 = (k1·data_range)²``.
        k2: contrast constant, ``C2 = (k2·data_range)²``.
        border: ``"valid"`` (no padding) or ``"symmetric"`` (mirrored edges, full-size map).
        reduction: ``"mean"`` (a scalar) or ``"none"`` (``[N]``, one value per image).

    Raises:
        TypeError: bad tensor types or dtypes, or non-numeric options.
        ValueError: bad shapes, images smaller than the window (``"valid"``), NaN/Inf, values spanning
            more than ``data_range``, a bad option, or an empty batch with ``reduction="mean"``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> target = torch.rand(2, 3, 16, 16)
        >>> structural_similarity_index_measure(target, target, data_range=1.0)
        tensor(1., dtype=torch.float64)
        >>> noisy = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
        >>> structural_similarity_index_measure(noisy, target, data_range=1.0, reduction="none").shape
        torch.Size([2])
    """
    data_range = check_data_range(data_range)
    kernel_size, sigma, k1, k2 = check_ssim_options(kernel_size, sigma, k1, k2, border)
    check_option(reduction, "reduction", ("mean", "none"))
    check_image_pair(preds, target, data_range)
    _check_size(preds, kernel_size, border, scales=1)
    window = gaussian_window(kernel_size, sigma).to(preds.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    if preds.shape[0] == 0:
        return _reduce(torch.zeros(0, dtype=torch.float64, device=preds.device), reduction)
    ssim, _ = _ssim_and_contrast_structure(preds, target, window, c1, c2, border)
    return _reduce(ssim, reduction)


def multiscale_structural_similarity_index_measure(
    preds: Tensor,
    target: Tensor,
    data_range: float,
    *,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    betas: Sequence[float] = MS_SSIM_BETAS,
    border: SSIMBorder = "valid",
    reduction: Reduction = "mean",
) -> Tensor:
    """MS-SSIM between two batches of images ``[N, C, H, W]`` (float64): the mean over images, or per image.

    One scale per weight in ``betas``; negative terms count as 0 and images must be at least
    ``kernel_size · 2^(len(betas) - 1)`` pixels high and wide with ``border="valid"`` (see the module
    docstring). With ``betas=(1.0,)`` it is exactly SSIM.

    Args:
        preds: uint8 or floating images, any number of channels.
        target: images of the same shape.
        data_range: the width of the value range; required.
        kernel_size: the window's number of taps (odd).
        sigma: the window's standard deviation in pixels.
        k1: luminance constant.
        k2: contrast constant.
        betas: the weight of each scale, finest first.
        border: ``"valid"`` or ``"symmetric"``, at every scale.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (``[N]``).

    Raises:
        TypeError: bad tensor types or dtypes, or non-numeric options.
        ValueError: bad shapes, images too small for the scales (the message names the minimum),
            NaN/Inf, values spanning more than ``data_range``, or a bad option.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> target = torch.rand(1, 1, 176, 176)
        >>> multiscale_structural_similarity_index_measure(target, target, data_range=1.0)
        tensor(1., dtype=torch.float64)
        >>> multiscale_structural_similarity_index_measure(target[..., :100, :100], target[..., :100, :100], 1.0)
        Traceback (most recent call last):
            ...
        ValueError: MS-SSIM with 5 scales and kernel_size=11 needs images of at least 176×176 pixels ...
    """
    data_range = check_data_range(data_range)
    kernel_size, sigma, k1, k2 = check_ssim_options(kernel_size, sigma, k1, k2, border)
    betas = check_betas(betas)
    check_option(reduction, "reduction", ("mean", "none"))
    check_image_pair(preds, target, data_range)
    _check_size(preds, kernel_size, border, scales=len(betas))
    window = gaussian_window(kernel_size, sigma).to(preds.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    x, y = preds.to(torch.float64), target.to(torch.float64)
    value = torch.ones(preds.shape[0], dtype=torch.float64, device=preds.device)
    if preds.shape[0] == 0:
        return _reduce(value, reduction)
    for scale, beta in enumerate(betas):
        ssim, contrast_structure = _ssim_and_contrast_structure(x, y, window, c1, c2, border)
        coarsest = scale == len(betas) - 1
        value = value * (ssim if coarsest else contrast_structure).clamp(min=0) ** beta
        if not coarsest:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return _reduce(value, reduction)
