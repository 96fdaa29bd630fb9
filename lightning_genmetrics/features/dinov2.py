"""DINOv2 image encoders (ViT-S/14, B/14, L/14, g/14): the CLS embedding FD_DINOv2 is computed on, in plain PyTorch.

This is the network of facebookresearch/dinov2 (``dinov2/models/vision_transformer.py`` as its torch.hub backbones
build it: ``img_size=518``, ``patch_size=14``, layer scale, no register tokens, ``block_chunks=0``), written again
without xFormers: patch embedding, a class token, learned positional embeddings for a 37×37 grid, pre-norm blocks
(LayerNorm ``eps=1e-6`` → fused-qkv attention → layer scale; LayerNorm → MLP with exact GELU, or for g/14 the packed
SwiGLU → layer scale), a final LayerNorm, and the class token of its output (the hub model's ``x_norm_clstoken``,
which is what ``model(x)`` returns). Its ``state_dict`` has the key names of the official checkpoints
(``dinov2_vitl14_pretrain.pth`` etc.), so they load with ``strict=True``.

Positional embeddings at 224×224: the official code resamples the 37×37 grid to 16×16 with
``F.interpolate(..., scale_factor=((16 + 0.1) / 37, (16 + 0.1) / 37), mode="bicubic", antialias=False)``. Passing a
scale factor rather than a size changes the sampling positions (``(i + 0.5) · 37 / 16.1 - 0.5``, not
``(i + 0.5) · 37 / 16 - 0.5``); every version of the repository has done this for the models without registers, and
it is reproduced here. timm and transformers 5 resample by output size instead, so their features at 224 differ
slightly from the reference network's.

Preprocessing (``resize``), each the one its reference applies to uint8 RGB images of any size, without cropping:

- ``"dgm-eval"``: PIL ``Image.resize((224, 224), BICUBIC)`` on the uint8 RGB image (dgm-eval's default
  ``torchvision.transforms.Resize((224, 224), BICUBIC)`` on a PIL image calls exactly this, and EDM2's
  ``resize_mode='pil'`` does the same), then ``/ 255`` and ImageNet mean/std. The default: the definition of
  FD_DINOv2 (Stein et al. 2023). CPU only, through NumPy and Pillow.
- ``"edm2"``: ``F.interpolate(x.float(), size=(224, 224), mode="bicubic", antialias=True)`` on the 0..255 values,
  no rounding or clamping, then ``/ 255`` and ImageNet mean/std: EDM2's ``calculate_metrics.py`` default
  (``resize_mode='torch'``), fast on any device; FD_DINOv2 differs from ``"dgm-eval"``'s in the last digits.
- ``"dgm-eval-clean"``: dgm-eval's ``--clean_resize``: PIL bicubic on each channel as a float32 image, clipped to
  ``[0, 255]`` (clean-fid's resize), then ``/ 255`` and ImageNet mean/std.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_genmetrics.features.precision import full_fp32_precision
from lightning_genmetrics.features.resize import resize_images
from lightning_genmetrics.features.weights import WeightsFile, fetch_weights, file_sha256, load_state_dict_file

__all__ = [
    "DINOV2_ARCHITECTURES",
    "DINOV2_ENCODER_NAMES",
    "DINOV2_RESIZE_MODES",
    "DINOV2_VARIANTS",
    "DINOV2_WEIGHTS",
    "DINOv2Architecture",
    "DINOv2Encoder",
    "dinov2_preprocess",
    "dinov2_weights_env_var",
    "dinov2_weights_path",
]

DINOv2Variant = Literal["vits14", "vitb14", "vitl14", "vitg14"]
DINOV2_VARIANTS: tuple[str, ...] = get_args(DINOv2Variant)
DINOV2_ENCODER_NAMES: tuple[str, ...] = tuple(f"dinov2-{variant}" for variant in DINOV2_VARIANTS)
DINOv2Resize = Literal["dgm-eval", "edm2", "dgm-eval-clean"]
DINOV2_RESIZE_MODES: tuple[str, ...] = get_args(DINOv2Resize)
DINOV2_INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The official models add 0.1 to the target grid size when resampling positional embeddings (a work-around from
# facebookresearch/dino#8 kept for backward compatibility); it changes the bicubic sampling positions.
_POS_EMBED_OFFSET = 0.1
_LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class DINOv2Architecture:
    """The hyperparameters of a DINOv2 vision transformer (as ``dinov2/hub/backbones.py`` builds each variant).

    Args:
        name: e.g. ``"ViT-L/14"``; the extractor is named ``"DINOv2-" + name`` in provenance.
        embed_dim: token width (the feature dimension).
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        ffn: ``"mlp"`` (Linear → GELU → Linear, hidden ``4 · embed_dim``) or ``"swiglu"`` (the packed SwiGLU of
            g/14: one Linear to ``2 · h``, ``silu(first half) · second half``, one Linear back, with
            ``h = ((int(4 · embed_dim · 2 / 3) + 7) // 8) · 8``).
        patch_size: side of the square patches.
        pos_grid: side of the grid the positional embeddings were trained for (518 / 14 = 37).

    Example:
        >>> DINOV2_ARCHITECTURES["vitg14"].ffn_hidden
        4096
    """

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    ffn: Literal["mlp", "swiglu"] = "mlp"
    patch_size: int = 14
    pos_grid: int = 37

    @property
    def ffn_hidden(self) -> int:
        """Hidden width of a block's feed-forward layer."""
        hidden = 4 * self.embed_dim
        return hidden if self.ffn == "mlp" else (int(hidden * 2 / 3) + 7) // 8 * 8


DINOV2_ARCHITECTURES: dict[str, DINOv2Architecture] = {
    "vits14": DINOv2Architecture("ViT-S/14", embed_dim=384, depth=12, num_heads=6),
    "vitb14": DINOv2Architecture("ViT-B/14", embed_dim=768, depth=12, num_heads=12),
    "vitl14": DINOv2Architecture("ViT-L/14", embed_dim=1024, depth=24, num_heads=16),
    "vitg14": DINOv2Architecture("ViT-g/14", embed_dim=1536, depth=40, num_heads=24, ffn="swiglu"),
}

_DINOV2_SOURCE = "Meta AI DINOv2 backbone pretrained on LVD-142M (facebookresearch/dinov2, torch.hub)"
# Full SHA-256 of each official file, as finegrain-ai/refiners pins them next to these URLs
# (src/refiners/conversion/models/dinov2.py, `expected_sha256` of each `facebook/github_dinov2` original), and as
# many unrelated public projects that verify these exact file names pin them too; see the README's weights table.
DINOV2_WEIGHTS: dict[str, WeightsFile] = {
    variant: WeightsFile(
        filename=f"dinov2_{variant}_pretrain.pth",
        sha256=sha256,
        urls=(f"https://dl.fbaipublicfiles.com/dinov2/dinov2_{variant}/dinov2_{variant}_pretrain.pth",),
        source=f"{_DINOV2_SOURCE}, {DINOV2_ARCHITECTURES[variant].name}",
        license="Apache-2.0",
    )
    for variant, sha256 in (
        ("vits14", "b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9"),
        ("vitb14", "0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73"),
        ("vitl14", "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428"),
        ("vitg14", "baf8467e50af277596bbbafa06887c177ee899ab46033649c383577d7e9309d3"),
    )
}


def dinov2_weights_env_var(variant: str) -> str:
    """The environment variable that may hold a local copy of ``variant``'s weights.

    Example:
        >>> dinov2_weights_env_var("vitl14")
        'LIGHTNING_GENMETRICS_DINOV2_VITL14_WEIGHTS'
    """
    return f"LIGHTNING_GENMETRICS_DINOV2_{variant.upper()}_WEIGHTS"


def dinov2_weights_path(
    variant: DINOv2Variant, weights_path: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> pathlib.Path:
    """Return the path of the verified official weights of ``variant``, downloading them if needed.

    Looks at ``weights_path``, then the environment variable ``LIGHTNING_GENMETRICS_DINOV2_<VARIANT>_WEIGHTS``, then
    ``torch.hub.get_dir()/checkpoints`` (where ``torch.hub.load("facebookresearch/dinov2", ...)`` keeps the same
    file under the same name), then downloads :data:`DINOV2_WEIGHTS` ``[variant]``.

    Args:
        variant: ``"vits14"``, ``"vitb14"``, ``"vitl14"`` or ``"vitg14"``.
        weights_path: a local copy; takes precedence over everything else.
        verify: check a user-given file against the pinned SHA-256; ``False`` only for your own weights.

    Raises:
        ValueError: an unknown ``variant``; a file whose SHA-256 is not the pinned one.
        FileNotFoundError: the user-given file does not exist.
        RuntimeError: not available locally and the download failed; the message names the file, its SHA-256, its
            URL and where to put it.

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     mine = pathlib.Path(tmp) / "my-dinov2.pth"
        ...     _ = mine.write_bytes(b"my own fine-tuned weights")
        ...     dinov2_weights_path("vitb14", mine, verify=False) == mine
        True
    """
    if variant not in DINOV2_WEIGHTS:
        raise ValueError(f"Expected `variant` to be one of {DINOV2_VARIANTS}, got {variant!r}.")
    return fetch_weights(
        DINOV2_WEIGHTS[variant], path=weights_path, env_var=dinov2_weights_env_var(variant), verify=verify
    )


def dinov2_preprocess(images: Tensor, resize: DINOv2Resize = "dgm-eval") -> Tensor:
    """uint8 RGB images of any size → the 224×224 ImageNet-normalised float32 input of DINOv2, by a named protocol.

    Args:
        images: uint8 ``[N, 3, H, W]``.
        resize: ``"dgm-eval"`` (PIL bicubic on the uint8 image), ``"edm2"`` (antialiased torch bicubic) or
            ``"dgm-eval-clean"`` (PIL bicubic per float channel, clipped); see the module docstring.

    Returns:
        float32 ``[N, 3, 224, 224]`` on the device of ``images``: ``(x / 255 - mean) / std``.

    Raises:
        TypeError: ``images`` not a uint8 tensor.
        ValueError: ``images`` not ``[N, 3, H, W]`` with ``H, W > 0``; an unknown ``resize``.

    Example:
        >>> images = torch.full((1, 3, 5, 7), 255, dtype=torch.uint8)
        >>> x = dinov2_preprocess(images, "edm2")
        >>> tuple(x.shape), round(x[0, 0, 100, 100].item(), 4)
        ((1, 3, 224, 224), 2.2489)
    """
    _check_images(images)
    resize = _check_resize(resize)
    size = (DINOV2_INPUT_SIZE, DINOV2_INPUT_SIZE)
    if resize == "edm2":
        x = F.interpolate(images.to(torch.float32), size=size, mode="bicubic", antialias=True) / 255
    elif resize == "dgm-eval":
        x = _pil_resize_rgb(images, size).to(torch.float32) / 255
    else:
        x = resize_images(images, size, "clean") / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    return (x - mean) / std


class DINOv2Encoder(nn.Module):
    """A DINOv2 encoder as a feature extractor: uint8 images of any size in, the CLS embedding out.

    ``forward`` resizes the images to 224×224 by the named ``resize`` protocol, normalises them with the ImageNet
    mean and standard deviation (:func:`dinov2_preprocess`), runs the network in float32 with TF32 off, and returns
    the class token after the final LayerNorm, float32 ``[N, embed_dim]``. :meth:`encode` runs the network alone on
    already normalised inputs.

    =========  ===========  =====  =====  ==========  ===============  ==========================
    variant    name         dim    depth  heads       FFN              parameters
    =========  ===========  =====  =====  ==========  ===============  ==========================
    vits14     ViT-S/14     384    12     6           MLP 1536         22 M
    vitb14     ViT-B/14     768    12     12          MLP 3072         86 M
    vitl14     ViT-L/14     1024   24     16          MLP 4096         304 M (FD_DINOv2's)
    vitg14     ViT-g/14     1536   40     24          SwiGLU 2×4096    1.1 B
    =========  ===========  =====  =====  ==========  ===============  ==========================

    The module never leaves eval mode and its parameters never require gradients; ``.double()`` gives a float64
    network (the positional-embedding resampling stays float32, as in the reference). Attributes read by
    :class:`~lightning_genmetrics.ImageFeatures` and provenance: ``num_features``, ``layer`` (``"cls"``),
    ``resize``, ``extractor_name`` (e.g. ``"DINOv2-ViT-L/14"``) and ``weights_sha256`` (the SHA-256 of the weights
    file loaded, ``None`` for random weights).

    Args:
        variant: ``"vits14"``, ``"vitb14"``, ``"vitl14"`` or ``"vitg14"``; or a :class:`DINOv2Architecture` for
            your own checkpoint (``pretrained=True`` then needs ``weights_path``).
        resize: ``"dgm-eval"``, ``"edm2"`` or ``"dgm-eval-clean"`` (see :func:`dinov2_preprocess`).
        pretrained: load the official weights (pinned URL and SHA-256, see :func:`dinov2_weights_path`); ``False``
            keeps the reference's random initialisation and downloads nothing.
        weights_path: a local copy of the weights file, checked against the pinned SHA-256 (for a named variant),
            read with ``weights_only=True`` and loaded with ``strict=True``.
        verify_weights: check a user-given ``weights_path`` against the pinned SHA-256; ``False`` only for your
            own weights (their SHA-256 is then computed and recorded in ``weights_sha256``).

    Raises:
        ValueError: an unknown ``variant`` or ``resize``; a custom architecture with ``pretrained=True`` and no
            ``weights_path``; a weights file whose SHA-256 is not the pinned one.
        RuntimeError: the weights are not available locally and cannot be downloaded (the message says which file
            is needed, its SHA-256, its URL and where to put it); a file whose tensors do not match the network.

    Example:
        >>> tiny = DINOv2Architecture("tiny", embed_dim=32, depth=1, num_heads=2, pos_grid=4)
        >>> encoder = DINOv2Encoder(tiny, resize="edm2", pretrained=False)
        >>> encoder.num_features, encoder.extractor_name
        (32, 'DINOv2-tiny')
        >>> images = torch.randint(0, 256, (2, 3, 20, 30), dtype=torch.uint8)
        >>> encoder(images).shape
        torch.Size([2, 32])
    """

    input_dtype = torch.uint8

    def __init__(
        self,
        variant: DINOv2Variant | DINOv2Architecture = "vitl14",
        *,
        resize: DINOv2Resize = "dgm-eval",
        pretrained: bool = True,
        weights_path: str | os.PathLike[str] | None = None,
        verify_weights: bool = True,
    ) -> None:
        super().__init__()
        architecture = _check_variant(variant)
        self.architecture = architecture
        self.variant: str = variant if isinstance(variant, str) else "custom"
        self.resize: DINOv2Resize = _check_resize(resize)
        self.layer = "cls"
        self.num_features: int = architecture.embed_dim
        self.extractor_name = f"DINOv2-{architecture.name}"
        self.weights_sha256: str | None = None

        dim = architecture.embed_dim
        self.patch_embed = _PatchEmbed(architecture.patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, architecture.pos_grid**2 + 1, dim))
        # Used only by the masked-image pretraining; kept so that the official checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(_Block(architecture) for _ in range(architecture.depth))
        self.norm = nn.LayerNorm(dim, eps=_LAYER_NORM_EPS)
        self._init_weights()

        if pretrained:
            state_dict, self.weights_sha256 = _load_weights(self.variant, weights_path, verify_weights)
            self.load_state_dict(state_dict, strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> DINOv2Encoder:
        """Stay in eval mode whatever ``mode`` says: a frozen feature extractor."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """CLS embeddings of uint8 ``images`` ``[N, 3, H, W]``, float32 ``[N, num_features]``.

        Raises:
            TypeError: ``images`` not a uint8 tensor.
            ValueError: ``images`` not ``[N, 3, H, W]`` with ``H, W > 0``.
        """
        return self.encode(dinov2_preprocess(images, self.resize))

    def encode(self, pixels: Tensor) -> Tensor:
        """CLS embeddings of normalised float ``pixels`` ``[N, 3, H, W]`` (``H, W`` multiples of 14), float32.

        The network alone, as the reference's ``model(pixels)``: no resizing, no normalisation.

        Raises:
            TypeError: ``pixels`` not a floating-point tensor.
            ValueError: ``pixels`` not ``[N, 3, H, W]`` with ``H`` and ``W`` positive multiples of the patch size.

        Example:
            >>> tiny = DINOv2Architecture("tiny", embed_dim=32, depth=1, num_heads=2, pos_grid=4)
            >>> DINOv2Encoder(tiny, pretrained=False).encode(torch.zeros(1, 3, 28, 42)).shape
            torch.Size([1, 32])
        """
        patch = self.architecture.patch_size
        if not isinstance(pixels, Tensor) or not pixels.is_floating_point():
            raise TypeError(f"Expected `pixels` to be a floating-point torch.Tensor, got {_describe(pixels)}.")
        if (
            pixels.ndim != 4
            or pixels.shape[1] != 3
            or not all(side > 0 and side % patch == 0 for side in pixels.shape[2:])
        ):
            raise ValueError(
                f"Expected `pixels` to have shape [N, 3, H, W] with H and W positive multiples of {patch}, "
                f"got shape {tuple(pixels.shape)}."
            )
        with torch.no_grad(), full_fp32_precision():
            x = pixels.to(self.norm.weight.dtype)
            tokens = self.patch_embed(x)
            tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
            tokens = tokens + self.positional_embedding(x.shape[2] // patch, x.shape[3] // patch)
            for block in self.blocks:
                tokens = block(tokens)
            return self.norm(tokens)[:, 0].float().contiguous()

    def positional_embedding(self, rows: int, cols: int) -> Tensor:
        """The positional embeddings for a ``rows × cols`` patch grid, ``[1, 1 + rows · cols, dim]``.

        The trained grid as stored, or resampled as the reference does it: bicubic (no antialiasing) in float32 with
        ``scale_factor = ((rows + 0.1) / grid, (cols + 0.1) / grid)``.

        Example:
            >>> tiny = DINOv2Architecture("tiny", embed_dim=8, depth=1, num_heads=2, pos_grid=37)
            >>> DINOv2Encoder(tiny, pretrained=False).positional_embedding(16, 16).shape
            torch.Size([1, 257, 8])
        """
        grid = self.architecture.pos_grid
        if rows == grid and cols == grid:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        table = self.pos_embed.float()
        patches = table[:, 1:].reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
        scale = ((rows + _POS_EMBED_OFFSET) / grid, (cols + _POS_EMBED_OFFSET) / grid)
        patches = F.interpolate(patches, scale_factor=scale, mode="bicubic", antialias=False)
        patches = patches.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat((table[:, :1], patches), dim=1).to(self.pos_embed.dtype)

    def _init_weights(self) -> None:
        # The reference's initialisation (timm's ViT scheme), so that random weights are like its random weights.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)


class _PatchEmbed(nn.Module):
    """Non-overlapping ``patch × patch`` patches → tokens ``[N, patches, dim]`` (row-major)."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (biases on qkv and output)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, dim))


class _LayerScale(nn.Module):
    """Per-channel residual scale (``gamma``; the hub builds it with 1.0, training moves it)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _SwiGLU(nn.Module):
    """g/14's feed-forward: xFormers' packed SwiGLU (``w12`` holds the gate rows, then the value rows)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)


class _Block(nn.Module):
    def __init__(self, architecture: DINOv2Architecture) -> None:
        super().__init__()
        dim, hidden = architecture.embed_dim, architecture.ffn_hidden
        self.norm1 = nn.LayerNorm(dim, eps=_LAYER_NORM_EPS)
        self.attn = _Attention(dim, architecture.num_heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=_LAYER_NORM_EPS)
        self.mlp = _Mlp(dim, hidden) if architecture.ffn == "mlp" else _SwiGLU(dim, hidden)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def _check_variant(variant: Any) -> DINOv2Architecture:
    if isinstance(variant, DINOv2Architecture):
        if variant.ffn not in ("mlp", "swiglu") or variant.embed_dim % variant.num_heads:
            raise ValueError(
                f"Expected `variant` to have ffn 'mlp' or 'swiglu' and embed_dim divisible by num_heads, got {variant}."
            )
        return variant
    if not isinstance(variant, str) or variant not in DINOV2_ARCHITECTURES:
        raise ValueError(f"Expected `variant` to be one of {DINOV2_VARIANTS} or a DINOv2Architecture, got {variant!r}.")
    return DINOV2_ARCHITECTURES[variant]


def _check_resize(resize: Any) -> DINOv2Resize:
    if not isinstance(resize, str) or resize not in DINOV2_RESIZE_MODES:
        raise ValueError(f"Expected `resize` to be one of {DINOV2_RESIZE_MODES}, got {resize!r}.")
    return resize  # type: ignore[return-value]


def _describe(value: Any) -> str:
    return f"dtype {value.dtype}" if isinstance(value, Tensor) else type(value).__name__


def _check_images(images: Any) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"Expected `images` to be a uint8 torch.Tensor (values 0..255), got {_describe(images)}.")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(
            f"Expected `images` to have shape [N, 3, H, W] with H, W > 0, got shape {tuple(images.shape)}."
        )


def _pil_resize_rgb(images: Tensor, size: tuple[int, int]) -> Tensor:
    from PIL import Image

    height, width = size
    pixels = images.detach().permute(0, 2, 3, 1).to("cpu").numpy()
    out = np.empty((pixels.shape[0], height, width, 3), dtype=np.uint8)
    for index, pixel in enumerate(pixels):
        out[index] = np.asarray(Image.fromarray(pixel, "RGB").resize((width, height), Image.Resampling.BICUBIC))
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(images.device)


def _load_weights(
    variant: str, weights_path: str | os.PathLike[str] | None, verify: bool
) -> tuple[dict[str, Tensor], str]:
    if variant not in DINOV2_WEIGHTS:
        if weights_path is None:
            raise ValueError(
                "Expected `weights_path` for a custom DINOv2Architecture with pretrained=True: only the named "
                f"variants {DINOV2_VARIANTS} have pinned weights; got weights_path=None."
            )
        path = pathlib.Path(weights_path)
        return load_state_dict_file(path), file_sha256(path)
    path = dinov2_weights_path(variant, weights_path, verify=verify)  # type: ignore[arg-type]
    # Unverified user files (verify=False) are recorded by their own hash; everything else matched the pin.
    sha256 = DINOV2_WEIGHTS[variant].sha256 if verify else file_sha256(path)
    return load_state_dict_file(path), sha256
