"""The InceptionV3 that FID, IS and KID are defined with, in plain PyTorch.

This is TensorFlow's "2015-12-05" Inception graph (the one the original FID and Inception Score
code froze), not torchvision's ImageNet InceptionV3. Its differences from torchvision's network:
batch norm with ``eps=0.001``; the pooling branch of the 35×35, 17×17 and first 8×8 mixed blocks
averages over valid pixels only (TF's ``SAME`` average pool, ``count_include_pad=False``); the last
8×8 block max-pools in that branch; and the classifier has 1008 outputs. Its ``state_dict`` has
the names of torch-fidelity's converted weights file ``weights-inception-2015-12-05-6726825d.pth``,
so that file loads with ``strict=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.precision import full_fp32_precision
from lightning_genmetrics.features.resize import ResizeProtocol, check_resize_protocol, resize_images

InceptionLayer = Literal["64", "192", "2023", "768", "2048", "logits_unbiased", "logits"]
INCEPTION_LAYERS: tuple[str, ...] = get_args(InceptionLayer)
INCEPTION_INPUT_SIZE = 299
INCEPTION_LAYER_DIMS: dict[str, int] = {
    "64": 64,
    "192": 192,
    "2023": 2023,
    "768": 768,
    "2048": 2048,
    "logits_unbiased": 1008,
    "logits": 1008,
}


class FIDInceptionV3(nn.Module):
    """The FID InceptionV3 feature extractor: uint8 images of any size in, one layer's features out.

    ``forward`` resizes the images to 299×299 by the named ``resize`` protocol (see
    :mod:`lightning_genmetrics.features.resize`), scales them to ``(x - 128) / 128`` and runs the
    network in float32 with TF32 off. The spatial layers are averaged over height and width:

    ========================  ====  =====================================================
    layer                     dim   taken after
    ========================  ====  =====================================================
    ``"64"``                  64    the first max pool (73×73)
    ``"192"``                 192   the second max pool (35×35)
    ``"2023"``                2023  ``Mixed_6d``'s 1×1 branch (17×17), its first 7 channels, not averaged: the
                                    sFID features
    ``"768"``                 768   ``Mixed_6e`` (17×17)
    ``"2048"``                2048  ``Mixed_7c`` (8×8): the FID and KID features
    ``"logits_unbiased"``     1008  ``fc`` without its bias: the Inception Score's logits
    ``"logits"``              1008  ``fc``
    ========================  ====  =====================================================

    The module never leaves eval mode (``train(True)`` is ignored) and its parameters never
    require gradients. It computes in the dtype of its parameters (``.double()`` gives a float64
    reference) and returns float32.

    Args:
        layer: the layer ``forward`` returns.
        resize: the resize protocol, ``"tf1"`` (torch-fidelity's and the original FID's),
            ``"torch-antialias"`` (torchmetrics') or ``"clean"`` (clean-fid's PIL bicubic).
        pretrained: load the real weights; ``False`` leaves PyTorch's random initialisation and
            downloads nothing.
        weights_path: a local copy of the weights to use instead of the cache/download (see
            :func:`~lightning_genmetrics.features.weights.inception_weights_path`); it is checked
            against the pinned SHA-256, read with ``weights_only=True`` and loaded with ``strict=True``.
        verify_weights: check a user-given ``weights_path`` against the pinned SHA-256; ``False``
            only for your own re-converted weights.

    Raises:
        ValueError: an unknown ``layer`` or ``resize``.
        ModuleNotFoundError: ``resize="clean"`` without Pillow installed.

    Example:
        >>> import torch
        >>> network = FIDInceptionV3("2048", pretrained=False)
        >>> network.num_features
        2048
        >>> images = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
        >>> network(images).shape
        torch.Size([1, 2048])
    """

    input_dtype = torch.uint8
    extractor_name = "FIDInceptionV3"

    def __init__(
        self,
        layer: InceptionLayer = "2048",
        *,
        resize: ResizeProtocol = "tf1",
        pretrained: bool = True,
        weights_path: str | os.PathLike[str] | None = None,
        verify_weights: bool = True,
    ) -> None:
        super().__init__()
        self.layer: InceptionLayer = _check_layer(layer)
        self.resize: ResizeProtocol = check_resize_protocol(resize)
        self.num_features: int = INCEPTION_LAYER_DIMS[layer]
        self._shared_layers: tuple[str, ...] = (self.layer,)

        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _Mixed35(192, pool_channels=32)
        self.Mixed_5c = _Mixed35(256, pool_channels=64)
        self.Mixed_5d = _Mixed35(288, pool_channels=64)
        self.Mixed_6a = _Reduce35To17(288)
        self.Mixed_6b = _Mixed17(768, mid_channels=128)
        self.Mixed_6c = _Mixed17(768, mid_channels=160)
        self.Mixed_6d = _Mixed17(768, mid_channels=160)
        self.Mixed_6e = _Mixed17(768, mid_channels=192)
        self.Mixed_7a = _Reduce17To8(768)
        self.Mixed_7b = _Mixed8(1280, pool="avg")
        self.Mixed_7c = _Mixed8(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)

        if pretrained:
            self.load_state_dict(_load_weights(weights_path, verify_weights), strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        """Stay in eval mode whatever ``mode`` says: batch norm must use the stored statistics."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """Features of ``layer`` for uint8 ``images`` ``[N, 3, H, W]``, as float32 ``[N, num_features]``.

        Raises:
            TypeError: ``images`` not a uint8 tensor.
            ValueError: ``images`` not ``[N, 3, H, W]`` with ``H, W > 0``.
        """
        return self.forward_layers(images, (self.layer,))[self.layer]

    def forward_batch(self, batch: ImageBatch) -> Tensor:
        """``forward(batch.uint8)``, from the pass this network's views share on ``batch`` (see ``layer_view``)."""
        return self.shared_outputs(batch)[self.layer]

    def layer_view(self, layer: InceptionLayer) -> InceptionLayerView:
        """A module giving ``layer`` of this network. Fed an :class:`~lightning_genmetrics.features.batch.ImageBatch`
        (through ``ImageFeatures``, so through any metric's ``update``), the network and all its views compute their
        layers in one pass per batch: e.g. the Inception Score's logits beside FID's pool features.

        Example:
            >>> import torch
            >>> network = FIDInceptionV3(pretrained=False)
            >>> logits = network.layer_view("logits_unbiased")
            >>> images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
            >>> torch.equal(logits(images), network.forward_layers(images, ["logits_unbiased"])["logits_unbiased"])
            True
        """
        layer = _check_layer(layer)
        if layer not in self._shared_layers:
            self._shared_layers = (*self._shared_layers, layer)
        return InceptionLayerView(self, layer)

    def shared_outputs(self, batch: ImageBatch) -> dict[str, Tensor]:
        """This network's layer and its views' layers for ``batch.uint8``, from one pass remembered by the batch."""
        layers = self._shared_layers  # a view made later asks for a pass with its layer
        return batch.computed(("inception layers", layers), self, lambda: self.forward_layers(batch.uint8, layers))

    def forward_layers(self, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Features of several layers in one pass, stopping after the deepest one requested.

        Args:
            images: uint8 ``[N, 3, H, W]``, any ``H, W``.
            layers: names from ``INCEPTION_LAYERS``.

        Returns:
            ``{layer: float32 [N, dim]}`` in the order of ``layers``.

        Raises:
            TypeError: ``images`` not a uint8 tensor; ``layers`` not a sequence of names.
            ValueError: ``images`` not ``[N, 3, H, W]`` with ``H, W > 0``; ``layers`` empty or
                naming an unknown layer.

        Example:
            >>> import torch
            >>> network = FIDInceptionV3(pretrained=False)
            >>> images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
            >>> {name: tuple(value.shape) for name, value in network.forward_layers(images, ["64", "192"]).items()}
            {'64': (2, 64), '192': (2, 192)}
        """
        _check_images(images)
        if isinstance(layers, str) or not isinstance(layers, Sequence):
            raise TypeError(f"Expected `layers` to be a sequence of layer names, got {layers!r}.")
        if len(layers) == 0 or not all(isinstance(name, str) and name in INCEPTION_LAYERS for name in layers):
            raise ValueError(f"Expected `layers` to be a non-empty selection of {INCEPTION_LAYERS}, got {layers!r}.")
        wanted = set(layers)
        found: dict[str, Tensor] = {}
        with torch.no_grad(), full_fp32_precision():
            for name, value in self._layers(images):
                if name in wanted:
                    found[name] = value.float().contiguous()
                    wanted.remove(name)
                    if not wanted:
                        break
        return {name: found[name] for name in layers}

    def _layers(self, images: Tensor) -> Iterator[tuple[str, Tensor]]:
        x = resize_images(images, INCEPTION_INPUT_SIZE, self.resize)
        # channels_last: about 1.5x faster convolutions on CPU (oneDNN), measured on this network.
        x = ((x - 128) / 128).to(self.fc.weight.dtype).contiguous(memory_format=torch.channels_last)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        yield "64", x.mean(dim=(2, 3))
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
        yield "192", x.mean(dim=(2, 3))
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        x = self.Mixed_6c(self.Mixed_6b(x))
        # sFID (Nash et al. 2021, as the ADM evaluator computes it): the 2015 graph's `mixed_6/conv` (the 1×1 branch
        # of its seventh mixed block, Mixed_6d, after ReLU), channels [:7], flattened in TF's NHWC order so that
        # statistics files of the ADM evaluator (`mu_s`, `sigma_s`) are in the same coordinates.
        spatial = self.Mixed_6d.branch1x1(x)[:, :7]
        yield "2023", spatial.permute(0, 2, 3, 1).reshape(spatial.shape[0], -1)
        x = self.Mixed_6e(self.Mixed_6d(x))
        yield "768", x.mean(dim=(2, 3))
        pooled = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x))).mean(dim=(2, 3))
        yield "2048", pooled
        # The Inception Score uses the logits before the bias (the 2015 graph's softmax input).
        unbiased = pooled @ self.fc.weight.T
        yield "logits_unbiased", unbiased
        yield "logits", unbiased + self.fc.bias


class InceptionLayerView(nn.Module):
    """Another layer of a ``FIDInceptionV3``, sharing its weights and, on an ``ImageBatch``, its pass.

    Made by :meth:`FIDInceptionV3.layer_view`; takes uint8 ``[N, 3, H, W]`` like the network. Its provenance
    (extractor name, weights fingerprint, layer, resize) is that of a ``FIDInceptionV3(layer)`` with the same weights,
    so statistics computed through a view and through a standalone network of that layer are compatible.

    Example:
        >>> from lightning_genmetrics.features.extractor import ImageFeatures
        >>> network = FIDInceptionV3("2048", pretrained=False)
        >>> standalone = FIDInceptionV3("2023", pretrained=False)
        >>> _ = standalone.load_state_dict(network.state_dict())
        >>> view = ImageFeatures(network.layer_view("2023"))
        >>> view.provenance_fields() == ImageFeatures(standalone).provenance_fields()
        True
    """

    input_dtype = torch.uint8
    extractor_name = FIDInceptionV3.extractor_name

    def __init__(self, network: FIDInceptionV3, layer: InceptionLayer) -> None:
        super().__init__()
        self.network = network
        self.layer: InceptionLayer = layer
        self.resize: ResizeProtocol = network.resize
        self.num_features: int = INCEPTION_LAYER_DIMS[layer]

    @property
    def weights_module(self) -> FIDInceptionV3:
        """The network whose weights the view computes with, for ``stats.weights_fingerprint`` (the view's own state
        dict names them ``network.*``)."""
        return self.network

    def train(self, mode: bool = True) -> InceptionLayerView:
        """Stay in eval mode, like the network."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """Features of ``layer`` for uint8 ``images`` ``[N, 3, H, W]`` (a pass of the network of its own)."""
        return self.network.forward_layers(images, (self.layer,))[self.layer]

    def forward_batch(self, batch: ImageBatch) -> Tensor:
        """Features of ``layer`` for ``batch.uint8``, from the network's pass shared on ``batch``."""
        return self.network.shared_outputs(batch)[self.layer]


class _ConvBN(nn.Sequential):
    """Convolution without bias, batch norm with TF's epsilon, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU(inplace=True)


def _avg_pool_valid(x: Tensor) -> Tensor:
    # TF's SAME average pool divides by the number of real pixels under the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _Mixed35(nn.Module):
    """35×35 mixed block (Mixed_5b/c/d): 1×1, 5×5 and double 3×3 towers, and a pooled 1×1."""

    def __init__(self, in_channels: int, pool_channels: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = _ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(in_channels, pool_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        towers = (
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_valid(x)),
        )
        return torch.cat(towers, dim=1)


class _Reduce35To17(nn.Module):
    """Grid reduction 35×35 → 17×17 (Mixed_6a): strided 3×3, strided double 3×3, max pool."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        towers = (
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        )
        return torch.cat(towers, dim=1)


class _Mixed17(nn.Module):
    """17×17 mixed block (Mixed_6b–e): 7×7 convolutions factorised into 1×7 and 7×1."""

    def __init__(self, in_channels: int, mid_channels: int) -> None:
        super().__init__()
        mid = mid_channels
        self.branch1x1 = _ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = _ConvBN(in_channels, mid, 1)
        self.branch7x7_2 = _ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(mid, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(in_channels, mid, 1)
        self.branch7x7dbl_2 = _ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(mid, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        double = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
        towers = (
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            self.branch7x7dbl_5(self.branch7x7dbl_4(double)),
            self.branch_pool(_avg_pool_valid(x)),
        )
        return torch.cat(towers, dim=1)


class _Reduce17To8(nn.Module):
    """Grid reduction 17×17 → 8×8 (Mixed_7a)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))
        towers = (
            self.branch3x3_2(self.branch3x3_1(x)),
            self.branch7x7x3_4(seven),
            F.max_pool2d(x, kernel_size=3, stride=2),
        )
        return torch.cat(towers, dim=1)


class _Mixed8(nn.Module):
    """8×8 mixed block (Mixed_7b/c): towers that split into parallel 1×3 and 3×1 convolutions.

    The 2015 graph max-pools the pooling branch of its last block (Mixed_7c) where the paper
    and the other blocks average; FID inherits that, so ``pool`` selects it.
    """

    def __init__(self, in_channels: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = _ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = _ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.pool == "max" else _avg_pool_valid(x)
        towers = (
            self.branch1x1(x),
            self.branch3x3_2a(single),
            self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double),
            self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        )
        return torch.cat(towers, dim=1)


def _check_layer(layer: Any) -> InceptionLayer:
    if not isinstance(layer, str) or layer not in INCEPTION_LAYERS:
        raise ValueError(f"Expected `layer` to be one of {INCEPTION_LAYERS}, got {layer!r}.")
    return layer  # type: ignore[return-value]


def _check_images(images: Any) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"Expected `images` to be a uint8 torch.Tensor, got {type(images).__name__}.")
    if images.dtype != torch.uint8:
        raise TypeError(f"Expected `images` to have dtype torch.uint8 (values 0..255), got dtype {images.dtype}.")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(
            f"Expected `images` to have shape [N, 3, H, W] with H, W > 0, got shape {tuple(images.shape)}."
        )


def _load_weights(weights_path: str | os.PathLike[str] | None, verify: bool) -> dict[str, Tensor]:
    # Imported here so that this module needs nothing from the download code until it is used.
    from lightning_genmetrics.features.weights import inception_weights_path, load_state_dict_file

    return load_state_dict_file(inception_weights_path(weights_path, verify=verify))
