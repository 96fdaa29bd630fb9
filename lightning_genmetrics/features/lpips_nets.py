"""The LPIPS networks: torchvision backbones tapped after the layers of Zhang et al. (2018), and the v0.1 heads.

The backbones are torchvision's own ``features`` definitions (AlexNet, VGG-16, SqueezeNet 1.1),
cut after the last tapped layer; the classifiers are never built. The tapped outputs are:

=========  ======================================  ==================================  ========
``net``    taps (indices into ``features``)        channels                            min size
=========  ======================================  ==================================  ========
alex       1, 4, 7, 9, 11 (the five ReLUs)         64, 192, 384, 256, 256              31
vgg        3, 8, 15, 22, 29 (relu1_2 … relu5_3)    64, 128, 256, 512, 512              16
squeeze    1, 4, 7, 9, 10, 11, 12                  64, 128, 256, 384, 384, 512, 512    17
=========  ======================================  ==================================  ========

"min size" is the smallest height and width for which the deepest tap still has a pixel.

Weights, each fetched and verified through :func:`~lightning_genmetrics.features.weights.fetch_weights`
(or read from a path you give) and loaded with ``weights_only=True`` and ``strict=True``:

- the v0.1 linear heads of richzhang/PerceptualSimilarity (BSD-2-Clause), :data:`LPIPS_HEAD_WEIGHTS`;
  the files' ``lin{i}.model.1.weight`` entries (``lin{i}.model.0.weight`` in files saved without
  dropout) become ``heads.{i}.weight``;
- torchvision's ImageNet weights, the files of ``AlexNet_Weights.IMAGENET1K_V1``,
  ``VGG16_Weights.IMAGENET1K_V1`` and ``SqueezeNet1_1_Weights.IMAGENET1K_V1`` (same URLs; the file
  names carry the first hex digits of the SHA-256 pinned here), :data:`LPIPS_BACKBONE_WEIGHTS`; only
  their ``features.*`` entries are used, the classifier's are ignored. They land in the torch hub
  cache under torchvision's names, so a copy torchvision already downloaded is reused.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from lightning_genmetrics.features.precision import full_fp32_precision
from lightning_genmetrics.features.weights import WeightsFile, fetch_weights, load_state_dict_file
from lightning_genmetrics.functional.lpips import features_to_lpips

LPIPSNet = Literal["alex", "vgg", "squeeze"]
LPIPS_NETS: tuple[str, ...] = get_args(LPIPSNet)

# The v0.1 scaling layer: inputs in [-1, 1] are shifted and scaled to ImageNet statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


@dataclass(frozen=True)
class _Backbone:
    constructor: str
    taps: tuple[int, ...]
    channels: tuple[int, ...]
    min_size: int


_BACKBONES: dict[str, _Backbone] = {
    "alex": _Backbone("alexnet", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256), 31),
    "vgg": _Backbone("vgg16", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512), 16),
    "squeeze": _Backbone("squeezenet1_1", (1, 4, 7, 9, 10, 11, 12), (64, 128, 256, 384, 384, 512, 512), 17),
}
LPIPS_MIN_SIZE: dict[str, int] = {net: backbone.min_size for net, backbone in _BACKBONES.items()}

_HEADS_SOURCE = "richzhang/PerceptualSimilarity, lpips/weights/v0.1/{net}.pth (LPIPS v0.1 linear heads)"
_HEADS_URLS = (
    "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/{net}.pth",
    "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth",
)
_HEADS_SHA256 = {
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "squeeze": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
}
LPIPS_HEAD_WEIGHTS: dict[str, WeightsFile] = {
    net: WeightsFile(
        filename=f"lpips-v0.1-{net}-{sha256[:8]}.pth",
        sha256=sha256,
        urls=tuple(url.format(net=net) for url in _HEADS_URLS),
        source=_HEADS_SOURCE.format(net=net),
        license="BSD-2-Clause",
    )
    for net, sha256 in _HEADS_SHA256.items()
}

# Full SHA-256 of torchvision's files; torchvision's names carry their first 8 hex digits.
_TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms of access also apply"
LPIPS_BACKBONE_WEIGHTS: dict[str, WeightsFile] = {
    "alex": WeightsFile(
        filename="alexnet-owt-7be5be79.pth",
        sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
        source="torchvision AlexNet_Weights.IMAGENET1K_V1 (ImageNet-1k classifier)",
        license=_TORCHVISION_LICENSE,
    ),
    "vgg": WeightsFile(
        filename="vgg16-397923af.pth",
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
        source="torchvision VGG16_Weights.IMAGENET1K_V1 (ImageNet-1k classifier)",
        license=_TORCHVISION_LICENSE,
    ),
    "squeeze": WeightsFile(
        filename="squeezenet1_1-b8a52dc0.pth",
        sha256="b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
        urls=("https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",),
        source="torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1 (ImageNet-1k classifier)",
        license=_TORCHVISION_LICENSE,
    ),
}

_HEAD_KEY = re.compile(r"(?:lin(\d+)\.model\.[01]|heads\.(\d+))\.weight")
_FEATURES_PREFIX = "features."


def check_lpips_net(net: Any, name: str = "net") -> LPIPSNet:
    """Return ``net`` if it names an LPIPS backbone, else raise ``ValueError`` naming the argument ``name``."""
    if not isinstance(net, str) or net not in LPIPS_NETS:
        raise ValueError(f"Expected `{name}` to be one of {LPIPS_NETS}, got {net!r}.")
    return net  # type: ignore[return-value]


def lpips_heads_from_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an LPIPS heads state dict (the ``lpips`` package's or this module's names) to ``{i}.weight``.

    Raises:
        ValueError: an entry that is not a head weight.

    Example:
        >>> import torch
        >>> sorted(lpips_heads_from_state_dict({"lin1.model.1.weight": torch.ones(1, 3, 1, 1)}))
        ['1.weight']
    """
    renamed = {}
    for key, value in state_dict.items():
        match = _HEAD_KEY.fullmatch(key)
        if match is None:
            raise ValueError(
                f"Expected only LPIPS head weights ('lin{{i}}.model.1.weight' or 'heads.{{i}}.weight'), got {key!r}."
            )
        renamed[f"{match.group(1) or match.group(2)}.weight"] = value
    return renamed


def _load_strict(module: nn.Module, state_dict: dict[str, Tensor], path: os.PathLike[str], what: str) -> None:
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(f"Weights file '{path}' does not hold the {what}: {err}") from err


def _build_features(backbone: _Backbone) -> nn.Sequential:
    """torchvision's ``features`` up to the last tap, randomly initialised (PyTorch's defaults)."""
    import torchvision.models

    # Built on the meta device, so the classifier (most of AlexNet's and VGG's parameters) is never allocated.
    with torch.device("meta"):
        model = getattr(torchvision.models, backbone.constructor)(weights=None)
    features = model.features[: backbone.taps[-1] + 1].to_empty(device="cpu")
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            module.reset_parameters()
    return features


class LPIPSNetwork(nn.Module):
    """An LPIPS network: images in ``[-1, 1]`` → per-pair distances ``[N]``.

    ``forward(x0, x1)`` scales both batches by the v0.1 scaling layer, runs them through the
    backbone together, and applies :func:`~lightning_genmetrics.functional.features_to_lpips` to the
    tapped layers (see the module docstring). The module never leaves eval mode and its parameters
    never require gradients; gradients still flow to the inputs. Its ``state_dict`` holds
    ``features.*`` (torchvision's names) and ``heads.{i}.weight``.

    Weights: each part is read from its path when one is given; otherwise it is fetched (cache, then
    download, SHA-256 verified) when ``pretrained``, else left at PyTorch's random initialisation.

    Args:
        net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        pretrained: fetch the parts without a path (v0.1 heads, torchvision ImageNet backbone).
        head_weights_path: a local heads file (the ``lpips`` package's ``weights/v0.1/{net}.pth``).
        backbone_weights_path: a local torchvision checkpoint of the backbone (``features.*`` entries).
        verify_weights: check user-given files against the pinned SHA-256 (``False`` for your own weights).

    Raises:
        ValueError: an unknown ``net``; a file with the wrong SHA-256 or the wrong entries.
        FileNotFoundError: a given path does not exist.
        RuntimeError: a file is not available locally and cannot be downloaded; the message names
            the file, its SHA-256, its URLs and where to put it.

    Example:
        >>> import torch
        >>> network = LPIPSNetwork("squeeze", pretrained=False)
        >>> network.min_size, len(network.heads)
        (17, 7)
        >>> x = torch.rand(2, 3, 32, 32) * 2 - 1
        >>> network(x, x)
        tensor([0., 0.])
    """

    def __init__(
        self,
        net: LPIPSNet = "alex",
        *,
        pretrained: bool = True,
        head_weights_path: str | os.PathLike[str] | None = None,
        backbone_weights_path: str | os.PathLike[str] | None = None,
        verify_weights: bool = True,
    ) -> None:
        super().__init__()
        self.net = check_lpips_net(net)
        backbone = _BACKBONES[net]
        self.taps = backbone.taps
        self.min_size = backbone.min_size
        self.features = _build_features(backbone)
        self.heads = nn.ModuleList(nn.Conv2d(channels, 1, 1, bias=False) for channels in backbone.channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        if head_weights_path is not None or pretrained:
            path = fetch_weights(
                LPIPS_HEAD_WEIGHTS[net],
                path=head_weights_path,
                verify=verify_weights,
                path_argument="head_weights_path",
            )
            self.load_heads(path)
        if backbone_weights_path is not None or pretrained:
            path = fetch_weights(
                LPIPS_BACKBONE_WEIGHTS[net],
                path=backbone_weights_path,
                verify=verify_weights,
                path_argument="backbone_weights_path",
            )
            self.load_backbone(path)
        self.requires_grad_(False)
        super().train(False)

    def load_heads(self, path: str | os.PathLike[str]) -> None:
        """Load the linear heads from a file, all of them and nothing else (``strict``); no hash check.

        Raises:
            ValueError: the file does not hold exactly this network's heads with the right shapes.
        """
        _load_strict(
            self.heads, lpips_heads_from_state_dict(load_state_dict_file(path)), path, f"LPIPS {self.net} heads"
        )

    def load_backbone(self, path: str | os.PathLike[str]) -> None:
        """Load the backbone from a torchvision checkpoint's ``features.*`` entries (``strict``); no hash check.

        Raises:
            ValueError: the ``features.*`` entries are not exactly this backbone's.
        """
        state_dict = load_state_dict_file(path)
        features = {k[len(_FEATURES_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(_FEATURES_PREFIX)}
        _load_strict(self.features, features, path, f"{self.net} backbone (`features.*` entries)")

    def train(self, mode: bool = True) -> LPIPSNetwork:
        """Ignored: the network always stays in eval mode."""
        return self

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        """The tapped layers' outputs for images ``[N, 3, H, W]`` in ``[-1, 1]``."""
        hidden = (images - self.shift) / self.scale
        maps = []
        for index, layer in enumerate(self.features):
            hidden = layer(hidden)
            if index in self.taps:
                maps.append(hidden)
        return maps

    def forward(self, images_a: Tensor, images_b: Tensor) -> Tensor:
        """LPIPS distances ``[N]`` between two batches of images ``[N, 3, H, W]`` in ``[-1, 1]`` (TF32 off)."""
        n = images_a.shape[0]
        with full_fp32_precision():
            maps = self.feature_maps(torch.cat((images_a, images_b)))
            heads = [head.weight for head in self.heads]
            return features_to_lpips([m[:n] for m in maps], [m[n:] for m in maps], heads)


@functools.lru_cache(maxsize=6)
def pretrained_lpips_network(net: LPIPSNet, device: torch.device, dtype: torch.dtype) -> LPIPSNetwork:
    """The pretrained LPIPS network of ``net`` on ``device`` in ``dtype``, built once and kept (a few at a time).

    Raises:
        RuntimeError: the weights are neither local nor downloadable (the message says which file to put where).
    """
    return LPIPSNetwork(net).to(device=device, dtype=dtype)
