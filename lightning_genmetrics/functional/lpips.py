r"""LPIPS from two images' feature maps (Zhang et al., 2018, "The Unreasonable Effectiveness of Deep Features").

For feature maps ``f_l`` of layers ``l`` and per-channel head weights ``w_l``:

    d(x, y) = Σ_l  mean_{h,w}  Σ_c  w_{l,c} · (f̂_l(x) − f̂_l(y))²_{c,h,w},    f̂ = f / (‖f‖_c + 1e-10)

where ``‖f‖_c`` is the Euclidean norm over channels at each pixel. The head is a 1×1 convolution
without bias, applied as such (the same operation order as the reference ``lpips`` package).
The networks that produce ``f_l`` are in :mod:`lightning_genmetrics.features.lpips_nets`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

_NORM_EPS = 1e-10


def normalize_channels(features: Tensor, eps: float = _NORM_EPS) -> Tensor:
    """Divide a feature map ``[N, C, H, W]`` by its channel norm at each pixel, plus ``eps``.

    Example:
        >>> import torch
        >>> normalize_channels(torch.tensor([[[[3.0]], [[4.0]]]])).flatten()
        tensor([0.6000, 0.8000])
    """
    norm = torch.sqrt(torch.sum(features**2, dim=1, keepdim=True))
    return features / (norm + eps)


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
