r"""LPIPS from two images' feature maps (Zhang et al., 2018, "The Unreasonable Effectiveness of Deep Features").

For feature maps ``f_l`` of layers ``l`` and per-channel head weights ``w_l``:

    d(x, y) = Σ_l  mean_{h,w}  Σ_c  w_{l,c} · (f̂_l(x) − f̂_l(y))²_{c,h,w},    f̂ = f / (‖f‖_c + 1e-10)

where ``‖f‖_c`` is the Euclidean norm over channels at each pixel. The head is a 1×1 convolution
without bias, applied as such (the same operation order as the reference ``lpips`` package).
The networks that produce ``f_l`` are in :mod:`lightning_genmetrics.features.lpips_nets`;
:func:`learned_perceptual_image_patch_similarity` is the image-level form with torchmetrics' arguments. Every
step is differentiable with respect to the images (the networks' weights stay frozen): LPIPS serves as a loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_finite, check_reduction, check_tensor, values_outside

if TYPE_CHECKING:
    from lightning_genmetrics.features.lpips_nets import LPIPSNet, LPIPSNetwork

LPIPSReduction = Literal["mean", "sum", "none"]
LPIPS_REDUCTIONS: tuple[str | None, ...] = ("mean", "sum", "none", None)
_NORM_EPS = 1e-10


def normalize_channels(features: Tensor, eps: float = _NORM_EPS) -> Tensor:
    """Divide a feature map ``[N, C, H, W]`` by its channel norm at each pixel, plus ``eps``.

    Example:
        >>> import torch
        >>> normalize_channels(torch.tensor([[[[3.0]], [[4.0]]]])).flatten()
        tensor([0.6000, 0.8000])
    """
    # vector_norm's gradient at a zero vector is 0, where sqrt(sum(f²)) gives NaN (0/0): LPIPS serves as a loss.
    return features / (torch.linalg.vector_norm(features, dim=1, keepdim=True) + eps)


def features_to_lpips(
    features_a: Sequence[Tensor], features_b: Sequence[Tensor], head_weights: Sequence[Tensor]
) -> Tensor:
    """LPIPS distances ``[N]`` between two images' per-layer feature maps.

    Args:
        features_a: one ``[N, C_l, H_l, W_l]`` map per layer, for the first images.
        features_b: the same layers for the second images.
        head_weights: per layer, the head's ``[1, C_l, 1, 1]`` weight (a 1×1 convolution, no bias).

    Raises:
        ValueError: different numbers of layers, or shapes that do not match.

    Example:
        >>> import torch
        >>> a = [torch.tensor([[[[1.0]], [[0.0]]]])]
        >>> b = [torch.tensor([[[[0.0]], [[1.0]]]])]
        >>> features_to_lpips(a, b, [torch.full((1, 2, 1, 1), 0.5)])
        tensor([1.])
    """
    if not len(features_a) == len(features_b) == len(head_weights):
        raise ValueError(
            f"Expected as many feature maps for both images as head weights, got {len(features_a)}, "
            f"{len(features_b)} and {len(head_weights)}."
        )
    total: Tensor | None = None
    for layer, (a, b, weight) in enumerate(zip(features_a, features_b, head_weights, strict=True)):
        if a.shape != b.shape or a.ndim != 4 or weight.shape != (1, a.shape[1], 1, 1):
            raise ValueError(
                f"Expected layer {layer}'s feature maps to share a shape [N, C, H, W] and its head weight to be "
                f"[1, C, 1, 1], got {tuple(a.shape)}, {tuple(b.shape)} and {tuple(weight.shape)}."
            )
        difference = (normalize_channels(a) - normalize_channels(b)) ** 2
        layer_value = F.conv2d(difference, weight).mean(dim=(2, 3), keepdim=True)
        total = layer_value if total is None else total + layer_value
    if total is None:
        raise ValueError("Expected at least one layer of features, got none.")
    return total.flatten()


def check_lpips_images(images: Any, name: str, *, normalize: bool, min_size: int, net: str) -> Tensor:
    """Check images for LPIPS: floating point ``[N, C, H, W]`` with C = 1 or 3, at least ``min_size`` pixels
    per side, finite, in ``[0, 1]`` with ``normalize`` else ``[-1, 1]`` (beyond 1e-6 of the width: a [0, 1]
    image read as [-1, 1] gives a plausible but wrong distance).

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: a bad shape, NaN/Inf, or values outside the declared range.
    """
    low, high = (0.0, 1.0) if normalize else (-1.0, 1.0)
    check_tensor(images, name)
    if not images.is_floating_point():
        raise TypeError(f"Expected `{name}` to be floating point in [{low:g}, {high:g}], got dtype {images.dtype}.")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"Expected `{name}` to have shape [N, C, H, W] with C = 1 or 3, got {tuple(images.shape)}.")
    if min(images.shape[-2:]) < min_size:
        raise ValueError(
            f"Expected `{name}` of at least {min_size}×{min_size} pixels for net={net!r}, "
            f"got shape {tuple(images.shape)}."
        )
    if images.numel() == 0:
        return images
    check_finite(images, name)
    outside = values_outside(images.detach(), low, high)
    if outside is not None:
        hint = "" if normalize else " Pass normalize=True for images in [0, 1]."
        raise ValueError(
            f"Expected `{name}` in [{low:g}, {high:g}] (normalize={normalize}), got values in "
            f"[{outside[0]:.6g}, {outside[1]:.6g}].{hint}"
        )
    return images


def images_to_lpips(network: LPIPSNetwork, img1: Tensor, img2: Tensor, *, normalize: bool = False) -> Tensor:
    """LPIPS distances ``[N]`` (float64) between checked images, run in the network's device and dtype (TF32 off);
    differentiable with respect to the images. Grayscale images are repeated to three channels.

    Raises:
        ValueError: the two batches differ in shape.
    """
    if img1.shape != img2.shape:
        raise ValueError(
            f"Expected `img1` and `img2` to have the same shape, got {tuple(img1.shape)} and {tuple(img2.shape)}."
        )
    parameter = next(network.parameters())
    if img1.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64, device=img1.device)
    pair = []
    for images in (img1, img2):
        if normalize:
            images = 2 * images - 1
        pair.append(images.expand(-1, 3, -1, -1).to(device=parameter.device, dtype=parameter.dtype))
    return network(*pair).to(torch.float64)


def learned_perceptual_image_patch_similarity(
    img1: Tensor,
    img2: Tensor,
    net_type: LPIPSNet = "alex",
    reduction: LPIPSReduction | None = "mean",
    normalize: bool = False,
    *,
    network: LPIPSNetwork | None = None,
) -> Tensor:
    """LPIPS between two batches of images (torchmetrics' arguments, order and value), float64.

    The network is built once per ``(net_type, device, dtype)`` with the pinned pretrained weights (fetched
    and verified as :class:`~lightning_genmetrics.features.lpips_nets.LPIPSNetwork` does) and kept for later
    calls; it runs in the images' device and dtype. ``network`` gives one instead (local weight files,
    ``pretrained=False`` for tests), run in its own device and dtype.

    Args:
        img1: images ``[N, C, H, W]``, C = 1 or 3, in ``[-1, 1]`` (or ``[0, 1]`` with ``normalize``).
        img2: images of the same shape.
        net_type: the backbone, ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        reduction: ``"mean"``, ``"sum"``, or ``"none"``/``None`` (the per-pair distances ``[N]``).
        normalize: ``True`` for images in ``[0, 1]`` (mapped by ``2x - 1``).
        network: an :class:`~lightning_genmetrics.features.lpips_nets.LPIPSNetwork` of ``net_type`` to use.

    Raises:
        TypeError: ``normalize`` not a bool, ``network`` not an LPIPS network, bad tensor types.
        ValueError: an unknown ``net_type`` or ``reduction``, a ``network`` of another backbone, bad shapes,
            NaN/Inf, values outside the declared range, or an empty batch with ``reduction="mean"``.
        RuntimeError: pretrained weights neither local nor downloadable (the message says which file to put where).

    Example:
        >>> import torch
        >>> from lightning_genmetrics.features.lpips_nets import LPIPSNetwork
        >>> _ = torch.manual_seed(0)
        >>> network = LPIPSNetwork("squeeze", pretrained=False)
        >>> images = torch.rand(2, 3, 32, 32)
        >>> learned_perceptual_image_patch_similarity(images, images, "squeeze", normalize=True, network=network)
        tensor(0., dtype=torch.float64)
    """
    # Imported here: the networks' module imports this one's math.
    from lightning_genmetrics.features.lpips_nets import (
        LPIPS_MIN_SIZE,
        LPIPSNetwork,
        check_lpips_net,
        pretrained_lpips_network,
    )

    net_type = check_lpips_net(net_type, "net_type")
    reduction = check_reduction(reduction, LPIPS_REDUCTIONS)
    check_bool(normalize, "normalize")
    if network is not None and not isinstance(network, LPIPSNetwork):
        raise TypeError(f"Expected `network` to be an LPIPSNetwork, got {type(network).__name__}.")
    if network is not None and network.net != net_type:
        raise ValueError(f"Expected `network` to be an LPIPS {net_type} network (net_type), got {network.net!r}.")
    min_size = LPIPS_MIN_SIZE[net_type]
    img1 = check_lpips_images(img1, "img1", normalize=normalize, min_size=min_size, net=net_type)
    img2 = check_lpips_images(img2, "img2", normalize=normalize, min_size=min_size, net=net_type)
    if reduction == "mean" and img1.shape[0] == 0:
        raise ValueError("Expected at least one pair of images for `reduction='mean'`, got an empty batch.")
    if network is None:
        network = pretrained_lpips_network(net_type, img1.device, img1.dtype)
    distances = images_to_lpips(network, img1, img2, normalize=normalize)
    if reduction == "mean":
        return distances.mean()
    return distances.sum() if reduction == "sum" else distances
