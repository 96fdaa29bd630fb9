"""LPIPS as a streaming metric: a float64 sum of per-pair distances and an int64 pair count."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_reduction
from lightning_genmetrics.features.extractor import keep_out_of_state_dict
from lightning_genmetrics.features.lpips_nets import LPIPSNet, LPIPSNetwork, check_lpips_net
from lightning_genmetrics.functional.lpips import (
    LPIPS_REDUCTIONS,
    LPIPSReduction,
    check_lpips_images,
    images_to_lpips,
)
from lightning_genmetrics.metrics.psnr import ItemReducedMetric


class LearnedPerceptualImagePatchSimilarity(ItemReducedMetric):
    """LPIPS v0.1, the perceptual distance between paired images, streamed over batches (torchmetrics' arguments).

    The network is :class:`~lightning_genmetrics.features.lpips_nets.LPIPSNetwork`: a torchvision
    backbone (``"alex"``, ``"vgg"`` or ``"squeeze"``) and the v0.1 linear heads of
    richzhang/PerceptualSimilarity, both verified by SHA-256; it gives the values of the ``lpips``
    package and of torchmetrics with the same weights. It runs in float32 with TF32 off.

    Images are floating point ``[N, C, H, W]`` with C = 1 or 3 (grayscale is repeated), in
    ``[-1, 1]``, or in ``[0, 1]`` with ``normalize=True``. Values outside the declared range (beyond
    1e-6 of its width) raise instead of being silently accepted: a [0, 1] image read as [-1, 1] gives
    a plausible but wrong distance. Images must be at least ``network.min_size`` pixels per side
    (31 for alex, 16 for vgg, 17 for squeeze).

    State: for ``reduction="mean"`` and ``"sum"``, the float64 sum of per-pair distances and the int64
    number of pairs (constant size, where torchmetrics keeps every distance); ``"none"``/``None`` keeps
    every pair's distance (one float64 per pair, gathered across ranks) and returns them in update order.
    ``forward`` returns the batch's own value and is differentiable with respect to the images (the
    network's weights stay frozen), so the metric serves as a loss.

    Args:
        net_type: the backbone, ``"alex"``, ``"vgg"`` or ``"squeeze"`` (``net`` before; refused with that hint).
        reduction: over the pairs: ``"mean"``, ``"sum"``, or ``"none"``/``None``.
        normalize: ``True`` for images in ``[0, 1]`` (mapped by ``2x - 1``).
        pretrained: fetch the weights not given by path (else random weights; nothing downloaded).
        head_weights_path: a local copy of the v0.1 heads file.
        backbone_weights_path: a local copy of torchvision's backbone checkpoint.
        verify_weights: check user-given files against the pinned SHA-256.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: ``normalize`` not a bool; the renamed ``net`` argument (the message names ``net_type``).
        ValueError: an unknown ``net_type`` or ``reduction``, or a weights file that is wrong (hash or entries).
        RuntimeError: weights neither local nor downloadable (the message says which file, its
            SHA-256, its URLs and where to put it).

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> metric = LearnedPerceptualImagePatchSimilarity("squeeze", normalize=True, pretrained=False)
        >>> images = torch.rand(2, 3, 32, 32)
        >>> metric(images, images)
        tensor(0., dtype=torch.float64)
        >>> metric.compute()
        tensor(0., dtype=torch.float64)
    """

    is_differentiable = True
    higher_is_better = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        net_type: LPIPSNet = "alex",
        reduction: LPIPSReduction | None = "mean",
        normalize: bool = False,
        *,
        pretrained: bool = True,
        head_weights_path: str | os.PathLike[str] | None = None,
        backbone_weights_path: str | os.PathLike[str] | None = None,
        verify_weights: bool = True,
        **kwargs: Any,
    ) -> None:
        if "net" in kwargs:
            raise TypeError(
                f"`net` is now `net_type`, torchmetrics' name: pass net_type={kwargs['net']!r} "
                "(or the backbone as the first positional argument)."
            )
        super().__init__(**kwargs)
        net_type = check_lpips_net(net_type, "net_type")
        self.reduction = check_reduction(reduction, LPIPS_REDUCTIONS)
        self.normalize = check_bool(normalize, "normalize")
        check_bool(pretrained, "pretrained")
        check_bool(verify_weights, "verify_weights")
        self.network = LPIPSNetwork(
            net_type,
            pretrained=pretrained,
            head_weights_path=head_weights_path,
            backbone_weights_path=backbone_weights_path,
            verify_weights=verify_weights,
        )
        # Pinned weights the constructor loads again: checkpoints of a module holding this metric need not carry them.
        keep_out_of_state_dict(self, "network")
        self._keep_values(self.reduction == "none")
        if not self._keeps_values:
            self.add_state("distance_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("num_pairs", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def net_type(self) -> str:
        """The backbone's name."""
        return self.network.net

    @property
    def input_range(self) -> tuple[float, float]:
        """The declared range of the images: ``(0, 1)`` with ``normalize``, else ``(-1, 1)``."""
        return (0.0, 1.0) if self.normalize else (-1.0, 1.0)

    def update(self, img1: Tensor, img2: Tensor) -> None:
        """Add a batch of image pairs (torchmetrics' argument names).

        Raises:
            TypeError: not tensors, or not floating point.
            ValueError: bad shapes (not 4-D, C not 1 or 3, different shapes, smaller than the
                network's minimum size), NaN/Inf, or values outside the declared range.
        """
        for name, images in (("img1", img1), ("img2", img2)):
            check_lpips_images(
                images, name, normalize=self.normalize, min_size=self.network.min_size, net=self.network.net
            )
        distances = images_to_lpips(self.network, img1, img2, normalize=self.normalize)
        if self._keeps_values:
            self.values.append(distances)
        else:
            self._accumulate_batch(distance_sum=distances.sum(), num_pairs=torch.tensor(distances.shape[0]))

    def _count(self) -> int:
        return super()._count() if self._keeps_values else int(self.num_pairs)

    def compute(self) -> Tensor:
        """The mean (or sum) LPIPS distance over all pairs seen, a float64 scalar; every distance for ``"none"``.

        Raises:
            RuntimeError: no pairs yet.
        """
        self._check_not_empty()
        if self._keeps_values:
            return self._kept_values()
        return self.distance_sum / self.num_pairs if self.reduction == "mean" else self.distance_sum


LPIPS = LearnedPerceptualImagePatchSimilarity
