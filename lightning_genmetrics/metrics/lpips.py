"""LPIPS as a streaming metric: a float64 sum of per-pair distances and an int64 pair count."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_finite, check_tensor, values_outside
from lightning_genmetrics.features.extractor import keep_out_of_state_dict
from lightning_genmetrics.features.lpips_nets import LPIPSNet, LPIPSNetwork
from lightning_genmetrics.features.precision import full_fp32_precision
from lightning_genmetrics.metrics._base import SummedStateMetric


class LearnedPerceptualImagePatchSimilarity(SummedStateMetric):
    """LPIPS v0.1, the mean perceptual distance between paired images, streamed over batches.

    The network is :class:`~lightning_genmetrics.features.lpips_nets.LPIPSNetwork`: a torchvision
    backbone (``"alex"``, ``"vgg"`` or ``"squeeze"``) and the v0.1 linear heads of
    richzhang/PerceptualSimilarity, both verified by SHA-256; it gives the values of the ``lpips``
    package with the same weights. It runs in float32 with TF32 off.

    Images are floating point ``[N, C, H, W]`` with C = 1 or 3 (grayscale is repeated), in
    ``[-1, 1]``, or in ``[0, 1]`` with ``normalize=True``. Values outside the declared range (beyond
    1e-6 of its width) raise instead of being silently accepted: a [0, 1] image read as [-1, 1] gives
    a plausible but wrong distance. Images must be at least ``network.min_size`` pixels per side
    (31 for alex, 16 for vgg, 17 for squeeze).

    State: the float64 sum of per-pair distances and the int64 number of pairs. ``forward``
    returns the batch's per-pair distances ``[N]``; nothing per-pair is kept.

    Args:
        net: the backbone.
        normalize: ``True`` for images in ``[0, 1]`` (mapped by ``2x - 1``).
        pretrained: fetch the weights not given by path (else random weights; nothing downloaded).
        head_weights_path: a local copy of the v0.1 heads file.
        backbone_weights_path: a local copy of torchvision's backbone checkpoint.
        verify_weights: check user-given files against the pinned SHA-256.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: ``normalize`` not a bool.
        ValueError: an unknown ``net``, or a weights file that is wrong (hash or entries).
        RuntimeError: weights neither local nor downloadable (the message says which file, its
            SHA-256, its URLs and where to put it).

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> metric = LearnedPerceptualImagePatchSimilarity("squeeze", normalize=True, pretrained=False)
        >>> images = torch.rand(2, 3, 32, 32)
        >>> metric(images, images)
        tensor([0., 0.], dtype=torch.float64)
        >>> metric.compute()
        tensor(0., dtype=torch.float64)
    """

    higher_is_better = False
    plot_lower_bound = 0.0

    def __init__(
        self,
        net: LPIPSNet = "alex",
        normalize: bool = False,
        *,
        pretrained: bool = True,
        head_weights_path: str | os.PathLike[str] | None = None,
        backbone_weights_path: str | os.PathLike[str] | None = None,
        verify_weights: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.normalize = check_bool(normalize, "normalize")
        check_bool(pretrained, "pretrained")
        check_bool(verify_weights, "verify_weights")
        self.network = LPIPSNetwork(
            net,
            pretrained=pretrained,
            head_weights_path=head_weights_path,
            backbone_weights_path=backbone_weights_path,
            verify_weights=verify_weights,
        )
        # Pinned weights the constructor loads again: checkpoints of a module holding this metric need not carry them.
        keep_out_of_state_dict(self, "network")
        self.add_state("distance_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_pairs", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def input_range(self) -> tuple[float, float]:
        """The declared range of the images: ``(0, 1)`` with ``normalize``, else ``(-1, 1)``."""
        return (0.0, 1.0) if self.normalize else (-1.0, 1.0)

    def _check_images(self, images: Any, name: str) -> Tensor:
        check_tensor(images, name)
        if not images.is_floating_point():
            raise TypeError(
                f"Expected `{name}` to be floating point in {list(self.input_range)}, got dtype {images.dtype}."
            )
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"Expected `{name}` to have shape [N, C, H, W] with C = 1 or 3, got {tuple(images.shape)}."
            )
        if min(images.shape[-2:]) < self.network.min_size:
            size = self.network.min_size
            raise ValueError(
                f"Expected `{name}` of at least {size}×{size} pixels for net={self.network.net!r}, "
                f"got shape {tuple(images.shape)}."
            )
        if images.numel() == 0:
            return images
        check_finite(images, name)
        low, high = self.input_range
        outside = values_outside(images, low, high)
        if outside is not None:
            hint = "" if self.normalize else " Pass normalize=True for images in [0, 1]."
            raise ValueError(
                f"Expected `{name}` in [{low:g}, {high:g}] (normalize={self.normalize}), got values in "
                f"[{outside[0]:.6g}, {outside[1]:.6g}].{hint}"
            )
        return images

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of image pairs.

        Raises:
            TypeError: not tensors, or not floating point.
            ValueError: bad shapes (not 4-D, C not 1 or 3, different shapes, smaller than the
                network's minimum size), NaN/Inf, or values outside the declared range.
        """
        preds = self._check_images(preds, "preds")
        target = self._check_images(target, "target")
        if preds.shape != target.shape:
            raise ValueError(
                f"Expected `preds` and `target` to have the same shape, got {tuple(preds.shape)} and "
                f"{tuple(target.shape)}."
            )
        distances = self._distances(preds, target).to(torch.float64)
        self._accumulate_batch(distances, distance_sum=distances.sum(), num_pairs=torch.tensor(distances.shape[0]))

    def _distances(self, preds: Tensor, target: Tensor) -> Tensor:
        if preds.shape[0] == 0:
            return torch.zeros(0, device=preds.device)
        parameter = next(self.network.parameters())
        pair = []
        for images in (preds, target):
            if self.normalize:
                images = 2 * images - 1
            pair.append(images.expand(-1, 3, -1, -1).to(device=parameter.device, dtype=parameter.dtype))
        with torch.no_grad(), full_fp32_precision():
            return self.network(*pair)

    def _count(self) -> int:
        return int(self.num_pairs)

    def compute(self) -> Tensor:
        """The mean LPIPS distance over all pairs seen (float64 scalar).

        Raises:
            RuntimeError: no pairs yet.
        """
        self._check_not_empty()
        return self.distance_sum / self.num_pairs


LPIPS = LearnedPerceptualImagePatchSimilarity
