"""OpenAI CLIP image encoders (ViT-B/32, ViT-L/14@336px) in plain PyTorch, for CLIP-FID and CMMD.

The network is the image tower of OpenAI's ``clip/model.py`` ``VisionTransformer``: a patch embedding
convolution without bias, a class token and learned positional embeddings, ``ln_pre``, pre-LayerNorm residual
attention blocks whose MLP uses QuickGELU (``x * sigmoid(1.702 x)``), ``ln_post`` on the class token and the
``proj`` matrix into the joint image-text space. Its ``state_dict`` uses OpenAI's names without the ``visual.``
prefix, so the ``visual.*`` part of an official checkpoint loads with ``strict=True``.

Which reference computes what:

- clean-fid's ``clip_vit_b_32`` and torch-fidelity 0.4's ``clip-vit-b-32``: ViT-B/32, the projected image
  embedding (``encode_image``), not normalised, into the Fréchet distance. clean-fid resizes as OpenAI's
  ``preprocess`` (``"clip"`` here); torch-fidelity resizes the whole image to 224×224 with TF1's bilinear
  (``"torch-fidelity"`` here). clean-fid runs the model in float16 on CUDA (``clip.load`` keeps the
  checkpoint's half weights there); this module computes in float32 (or the dtype of its parameters).
- CMMD (Jayasumana et al. 2024, ``google-research/cmmd``): ViT-L/14@336px, the projected image embedding
  normalised to unit length, after a centred square crop and a PIL bicubic resize to 336×336 (``"cmmd"``).

The official weights are OpenAI's TorchScript archives; :func:`load_clip_visual_state_dict` reads their tensors
without unpickling anything but tensors and plain containers and without running TorchScript.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_genmetrics.features.precision import full_fp32_precision
from lightning_genmetrics.features.resize import resize_images
from lightning_genmetrics.features.weights import WeightsFile, fetch_weights, load_state_dict_file

CLIPModelName = Literal["ViT-B/32", "ViT-L/14@336px"]
CLIP_MODEL_NAMES: tuple[str, ...] = get_args(CLIPModelName)
CLIPPreprocess = Literal["clip", "cmmd", "torch-fidelity", "torch-antialias"]
CLIP_PREPROCESS_MODES: tuple[str, ...] = get_args(CLIPPreprocess)

# OpenAI's `clip/clip.py` (`_transform`): the statistics every CLIP model was trained with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class CLIPVisionConfig:
    """Hyperparameters of a CLIP ViT image tower (OpenAI's ``build_model`` reads them off the checkpoint).

    Example:
        >>> config = CLIP_CONFIGS["ViT-L/14@336px"]
        >>> config.num_tokens, config.heads
        (577, 16)
    """

    image_size: int
    patch_size: int
    width: int
    layers: int
    output_dim: int

    @property
    def heads(self) -> int:
        """Attention heads: OpenAI's ViTs use 64 channels per head."""
        return self.width // 64

    @property
    def num_tokens(self) -> int:
        """The class token and one token per patch."""
        return (self.image_size // self.patch_size) ** 2 + 1


CLIP_CONFIGS: dict[str, CLIPVisionConfig] = {
    "ViT-B/32": CLIPVisionConfig(image_size=224, patch_size=32, width=768, layers=12, output_dim=512),
    "ViT-L/14@336px": CLIPVisionConfig(image_size=336, patch_size=14, width=1024, layers=24, output_dim=768),
}

# The full SHA-256 of each file is the second-to-last part of its URL in OpenAI's `clip/clip.py` (`_MODELS`),
# which `clip._download` checks the download against; torch-fidelity 0.4 (`feature_extractor_clip.py`,
# `MODEL_METADATA`) and scenic (`baselines/clip/model.py`, `CHECKPOINTS_TORCH`) pin the same values.
_OPENAI_BASE_URL = "https://openaipublic.azureedge.net/clip/models"
CLIP_WEIGHTS: dict[str, WeightsFile] = {
    "ViT-B/32": WeightsFile(
        filename="ViT-B-32.pt",
        sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        urls=(f"{_OPENAI_BASE_URL}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",),
        source="OpenAI CLIP ViT-B/32 (TorchScript archive, github.com/openai/CLIP)",
        license="MIT",
    ),
    "ViT-L/14@336px": WeightsFile(
        filename="ViT-L-14-336px.pt",
        sha256="3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
        urls=(
            f"{_OPENAI_BASE_URL}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
        ),
        source="OpenAI CLIP ViT-L/14@336px (TorchScript archive, github.com/openai/CLIP)",
        license="MIT",
    ),
}

# One variable per model: each file is checked against its own model's pinned hash, so one variable shared by both
# would refuse the other model's file.
CLIP_WEIGHTS_ENV_VARS: dict[str, str] = {
    "ViT-B/32": "LIGHTNING_GENMETRICS_CLIP_VIT_B32_WEIGHTS",
    "ViT-L/14@336px": "LIGHTNING_GENMETRICS_CLIP_VIT_L14_336_WEIGHTS",
}


def clip_weights_env_var(model: str) -> str:
    """The environment variable that may hold a local copy of ``model``'s weights.

    Raises:
        ValueError: an unknown ``model``.

    Example:
        >>> clip_weights_env_var("ViT-L/14@336px")
        'LIGHTNING_GENMETRICS_CLIP_VIT_L14_336_WEIGHTS'
    """
    if not isinstance(model, str) or model not in CLIP_WEIGHTS_ENV_VARS:
        raise ValueError(f"Expected `model` to be one of {CLIP_MODEL_NAMES}, got {model!r}.")
    return CLIP_WEIGHTS_ENV_VARS[model]


# Encoder names (for the command line and the callback) and the settings of the metric they are the reference of.
CLIP_ENCODERS: dict[str, dict[str, Any]] = {
    # CLIP-FID as clean-fid computes it (`model_name="clip_vit_b_32"`): raw embeddings, OpenAI's preprocess.
    "clip-vit-b32": {"model": "ViT-B/32", "preprocess": "clip", "normalize": False},
    # CMMD's embeddings: unit length, the reference's crop-then-resize.
    "clip-vit-l14-336": {"model": "ViT-L/14@336px", "preprocess": "cmmd", "normalize": True},
}


class CLIPImageEncoder(nn.Module):
    """A CLIP image encoder: uint8 images of any size in, projected image embeddings out.

    ``forward`` preprocesses the images by the named ``preprocess`` mode, scales them with CLIP's mean and
    standard deviation and returns the image tower's output (``image_embeds``), ``[N, output_dim]`` float32,
    divided by its Euclidean norm when ``normalize``.

    =====================  ==========================================================================
    ``preprocess``         what it reproduces
    =====================  ==========================================================================
    ``"clip"``             OpenAI's ``preprocess`` and clean-fid's CLIP features: PIL bicubic resize of the
                           shorter side to the input size (the longer side truncated as torchvision does),
                           centre crop (torchvision's rounding), ``/ 255``. Bit-for-bit on uint8.
    ``"cmmd"``             the CMMD reference: crop the largest centred square (offsets rounded down), PIL
                           bicubic resize to the input size, ``/ 255``. Bit-for-bit on uint8; the same as
                           ``"clip"`` for square images.
    ``"torch-fidelity"``   torch-fidelity 0.4's CLIP extractors: the whole image to the input size with TF1's
                           bilinear resize, in float32, no crop.
    ``"torch-antialias"``  fast, on any device, for tracking during training: ``"clip"``'s geometry with
                           ``F.interpolate(mode="bicubic", antialias=True)`` in float32 (not rounded to
                           uint8 between passes, so close to but not equal to ``"clip"``).
    =====================  ==========================================================================

    The module never leaves eval mode and its parameters never require gradients. It computes in the dtype
    of its parameters (``.double()`` gives a float64 reference) and returns float32, with TF32 off.

    Args:
        model: ``"ViT-B/32"`` (CLIP-FID) or ``"ViT-L/14@336px"`` (CMMD).
        preprocess: the preprocessing mode (see the table).
        normalize: divide each embedding by its norm (CMMD does; CLIP-FID does not).
        pretrained: load OpenAI's weights; ``False`` leaves a random initialisation and downloads nothing.
        weights_path: a local file to load instead of the cache/download: OpenAI's TorchScript archive, or a
            ``torch.save``-d state dict with OpenAI's names (with or without the ``visual.`` prefix). Without
            it, the file named by the model's environment variable (:func:`clip_weights_env_var`:
            ``LIGHTNING_GENMETRICS_CLIP_VIT_B32_WEIGHTS`` or ``LIGHTNING_GENMETRICS_CLIP_VIT_L14_336_WEIGHTS``)
            is used, else the torch hub cache, else the download.
        verify_weights: check a user-given ``weights_path`` against the pinned SHA-256; ``False`` only for
            your own files (e.g. a state dict saved from OpenAI's or open_clip's model).

    Raises:
        ValueError: an unknown ``model`` or ``preprocess``; ``normalize`` not a bool.

    Example:
        >>> import torch
        >>> encoder = CLIPImageEncoder("ViT-B/32", pretrained=False)
        >>> encoder.num_features, encoder.layer, encoder.resize
        (512, 'image_embeds', 'clip')
        >>> images = torch.randint(0, 256, (1, 3, 40, 30), dtype=torch.uint8)
        >>> encoder(images).shape
        torch.Size([1, 512])
    """

    input_dtype = torch.uint8

    def __init__(
        self,
        model: CLIPModelName = "ViT-L/14@336px",
        *,
        preprocess: CLIPPreprocess = "clip",
        normalize: bool = False,
        pretrained: bool = True,
        weights_path: str | os.PathLike[str] | None = None,
        verify_weights: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(model, str) or model not in CLIP_CONFIGS:
            raise ValueError(f"Expected `model` to be one of {CLIP_MODEL_NAMES}, got {model!r}.")
        if not isinstance(preprocess, str) or preprocess not in CLIP_PREPROCESS_MODES:
            raise ValueError(f"Expected `preprocess` to be one of {CLIP_PREPROCESS_MODES}, got {preprocess!r}.")
        if not isinstance(normalize, bool):
            raise ValueError(f"Expected `normalize` to be a bool, got {normalize!r}.")
        self.model_name: CLIPModelName = model
        self.config = CLIP_CONFIGS[model]
        self.preprocess: CLIPPreprocess = preprocess
        self.normalize = normalize
        self.extractor_name = f"CLIP-{model}"
        self.layer = "image_embeds_normalized" if normalize else "image_embeds"
        self.resize: str = preprocess
        self.num_features: int = self.config.output_dim
        self.weights_sha256: str | None = None
        self.visual = CLIPVisionTransformer(self.config)
        if pretrained:
            spec = CLIP_WEIGHTS[model]
            env_var = clip_weights_env_var(model)
            path = fetch_weights(spec, path=weights_path, env_var=env_var, verify=verify_weights)
            self.visual.load_state_dict(load_clip_visual_state_dict(path), strict=True)
            self.weights_sha256 = spec.sha256 if verify_weights or weights_path is None else None
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> CLIPImageEncoder:
        """The encoder an encoder name stands for, set up as its reference computes (see ``CLIP_ENCODERS``);
        ``kwargs`` override the settings or pass ``weights_path``/``pretrained``.

        Raises:
            ValueError: an unknown ``name``.

        Example:
            >>> encoder = CLIPImageEncoder.from_name("clip-vit-b32", pretrained=False)
            >>> encoder.extractor_name, encoder.resize, encoder.normalize
            ('CLIP-ViT-B/32', 'clip', False)
        """
        if not isinstance(name, str) or name not in CLIP_ENCODERS:
            raise ValueError(f"Expected `name` to be one of {tuple(CLIP_ENCODERS)}, got {name!r}.")
        return cls(**{**CLIP_ENCODERS[name], **kwargs})

    def train(self, mode: bool = True) -> CLIPImageEncoder:
        """Stay in eval mode whatever ``mode`` says."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """Embeddings of uint8 ``images`` ``[N, 3, H, W]``, as float32 ``[N, num_features]``.

        Raises:
            TypeError: ``images`` not a uint8 tensor.
            ValueError: ``images`` not ``[N, 3, H, W]`` with ``H, W > 0``.
        """
        pixels = clip_preprocess(images, self.config.image_size, self.preprocess)
        with torch.no_grad(), full_fp32_precision():
            embeddings = self.visual(pixels.to(device=self.visual.proj.device, dtype=self.visual.proj.dtype))
            if self.normalize:
                embeddings = embeddings / embeddings.norm(dim=1, keepdim=True)
        return embeddings.float()


class CLIPVisionTransformer(nn.Module):
    """OpenAI CLIP's ``VisionTransformer``: normalised ``[N, 3, S, S]`` pixels in, ``[N, output_dim]`` out.

    Parameter names are OpenAI's (``conv1.weight``, ``class_embedding``, ``positional_embedding``,
    ``ln_pre.*``, ``transformer.resblocks.{i}.attn.in_proj_weight``/..., ``ln_post.*``, ``proj``).

    Example:
        >>> import torch
        >>> tower = CLIPVisionTransformer(CLIPVisionConfig(image_size=32, patch_size=16, width=64, layers=1,
        ...                                                output_dim=8))
        >>> tower(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 8])
    """

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(config.num_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = _Transformer(width, config.layers, config.heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, config.output_dim))

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.conv1(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*(_ResidualAttentionBlock(width, heads) for _ in range(layers)))

    def forward(self, x: Tensor) -> Tensor:
        return self.resblocks(x)


class _Attention(nn.Module):
    """Self-attention with ``nn.MultiheadAttention``'s parameter names, on batch-first ``[N, L, D]`` tokens."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, tokens, width))


class _QuickGELU(nn.Module):
    """OpenAI's GELU approximation ``x * sigmoid(1.702 x)``, which the CLIP weights were trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class _ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = _Attention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, 4 * width)), ("gelu", _QuickGELU()), ("c_proj", nn.Linear(4 * width, width))]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def clip_preprocess(images: Tensor, size: int, mode: CLIPPreprocess) -> Tensor:
    """Resize uint8 images for a CLIP model by the named mode and scale them with CLIP's mean and std.

    Args:
        images: uint8 ``[N, 3, H, W]``.
        size: the model's input side (224 or 336).
        mode: ``"clip"``, ``"cmmd"``, ``"torch-fidelity"`` or ``"torch-antialias"`` (see
            :class:`CLIPImageEncoder`).

    Returns:
        float32 ``[N, 3, size, size]`` on the device of ``images``.

    Raises:
        TypeError: ``images`` not a uint8 tensor.
        ValueError: ``images`` not ``[N, 3, H, W]`` with ``H, W > 0``; an unknown ``mode``.

    Example:
        >>> import torch
        >>> images = torch.full((1, 3, 5, 7), 255, dtype=torch.uint8)
        >>> pixels = clip_preprocess(images, 4, "clip")
        >>> pixels.shape, round(float(pixels[0, 0, 0, 0]), 4)
        (torch.Size([1, 3, 4, 4]), 1.9303)
    """
    _check_images(images)
    if not isinstance(mode, str) or mode not in CLIP_PREPROCESS_MODES:
        raise ValueError(f"Expected `mode` to be one of {CLIP_PREPROCESS_MODES}, got {mode!r}.")
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    if mode == "torch-fidelity":
        # torch-fidelity normalises 0..255 values by 255·mean and 255·std, products taken in float64.
        mean_255 = torch.tensor([255 * m for m in CLIP_MEAN], dtype=torch.float32, device=images.device)
        std_255 = torch.tensor([255 * s for s in CLIP_STD], dtype=torch.float32, device=images.device)
        return (resize_images(images, size, "tf1") - mean_255.view(1, 3, 1, 1)) / std_255.view(1, 3, 1, 1)
    if mode == "torch-antialias":
        height, width = _shorter_side_size(images.shape[2], images.shape[3], size)
        resized = images.to(torch.float32)
        if (height, width) != tuple(images.shape[2:]):
            resized = F.interpolate(resized, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
        top, left = _center_crop_offsets(height, width, size)
        pixels = resized[:, :, top : top + size, left : left + size].clamp(0, 255)
    else:
        resize = _pil_resize_and_crop if mode == "clip" else _pil_crop_and_resize
        pixels = _per_image_pil(images, size, resize)
    return (pixels / 255 - mean) / std


def _shorter_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    # torchvision's `Resize(size)`: the shorter side to `size`, the longer one scaled and truncated.
    if width <= height:
        return (int(size * height / width), size)
    return (size, int(size * width / height))


def _center_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    # torchvision's `CenterCrop`: Python's round (half to even) of the margins.
    return round((height - size) / 2.0), round((width - size) / 2.0)


def _pil_resize_and_crop(image: Any, size: int) -> Any:
    from PIL import Image

    height, width = _shorter_side_size(image.height, image.width, size)
    if (height, width) != (image.height, image.width):
        image = image.resize((width, height), resample=Image.Resampling.BICUBIC)
    top, left = _center_crop_offsets(height, width, size)
    return image.crop((left, top, left + size, top + size))


def _pil_crop_and_resize(image: Any, size: int) -> Any:
    from PIL import Image

    side = min(image.width, image.height)
    top, left = (image.height - side) // 2, (image.width - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return image.resize((size, size), resample=Image.Resampling.BICUBIC)


def _per_image_pil(images: Tensor, size: int, resize: Callable[[Any, int], Any]) -> Tensor:
    try:
        from PIL import Image
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("The 'clip' and 'cmmd' preprocessing needs Pillow: `pip install pillow`.") from error
    arrays = images.detach().to("cpu").permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty((images.shape[0], size, size, 3), dtype=np.uint8)
    for index, array in enumerate(arrays):
        out[index] = np.asarray(resize(Image.fromarray(array, mode="RGB"), size))
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=images.device, dtype=torch.float32)


def _check_images(images: Any) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"Expected `images` to be a uint8 torch.Tensor, got {type(images).__name__}.")
    if images.dtype != torch.uint8:
        raise TypeError(f"Expected `images` to have dtype torch.uint8 (values 0..255), got dtype {images.dtype}.")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(
            f"Expected `images` to have shape [N, 3, H, W] with H, W > 0, got shape {tuple(images.shape)}."
        )


def load_clip_visual_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The image tower's tensors (OpenAI's names, ``visual.`` removed) from a CLIP weights file, run nothing.

    Accepts OpenAI's TorchScript archives (``ViT-B-32.pt``, ``ViT-L-14-336px.pt``) and ``torch.save``-d state
    dicts with OpenAI's names (from ``clip.load(..., jit=False)``'s model or open_clip's OpenAI-architecture
    models), with or without the ``visual.`` prefix. A TorchScript archive is read as a zip: its ``data.pkl``
    goes through an unpickler that builds only tensors (from the archive's ``data/`` records), plain containers
    and inert records standing in for the scripted modules; any other global is refused, and the archive's
    TorchScript code is never compiled or run (``torch.jit.load`` would run the classes' ``__setstate__``).
    Tensors keep their stored dtype (OpenAI's files are float16; ``load_state_dict`` casts them exactly).

    Args:
        path: the weights file.

    Returns:
        ``{name: tensor}`` for every tensor under ``visual`` (every tensor, for a file without ``visual.*`` names).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is corrupt or holds objects the restricted loaders refuse.

    Example:
        >>> import pathlib, tempfile
        >>> import torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     file = pathlib.Path(tmp) / "visual.pth"
        ...     torch.save({"visual.proj": torch.ones(4, 2), "logit_scale": torch.ones([])}, file)
        ...     sorted(load_clip_visual_state_dict(file))
        ['proj']
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Weights file '{file}' does not exist.")
    archive = _torchscript_prefix(file)
    if archive is None:
        state = load_state_dict_file(file)
    else:
        try:
            state = _read_torchscript_tensors(file, archive)
        except (
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            KeyError,
            ValueError,
            TypeError,
            EOFError,
            RuntimeError,
        ) as err:
            raise ValueError(
                f"Refusing to load TorchScript weights '{file}': {type(err).__name__}: {err}. Only tensors and "
                "plain containers are read from such archives; their code is never run."
            ) from err
    visual = {name.removeprefix("visual."): tensor for name, tensor in state.items() if name.startswith("visual.")}
    # A file without `visual.*` names is taken as the image tower's own state dict.
    return visual or state


def _torchscript_prefix(file: pathlib.Path) -> str | None:
    """The archive's top folder if ``file`` is a TorchScript zip (it holds ``constants.pkl``), else ``None``."""
    if not zipfile.is_zipfile(file):
        return None
    with zipfile.ZipFile(file) as archive:
        for name in archive.namelist():
            folder, _, base = name.rpartition("/")
            if base == "constants.pkl" and "/" not in folder:
                return folder
    return None


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptedObject:
    """Stands in for a scripted module or class in an archive: keeps the attributes it is built with."""

    attributes: dict[str, Any]

    def __setstate__(self, state: Any) -> None:
        self.attributes = dict(state) if isinstance(state, Mapping) else {}


def _rebuild_tensor(storage: Tensor, offset: int, size: Any, stride: Any, *rest: Any) -> Tensor:
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


def _identity(value: Any, *rest: Any) -> Any:
    return value


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    # TorchScript's typed-container markers carry the plain value as their first argument.
    ("torch.jit._pickle", "restore_type_tag"): _identity,
    ("torch.jit._pickle", "build_intlist"): _identity,
    ("torch.jit._pickle", "build_doublelist"): _identity,
    ("torch.jit._pickle", "build_boollist"): _identity,
    ("torch.jit._pickle", "build_tensorlist"): _identity,
}


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Builds tensors, plain containers and ``_ScriptedObject`` records; refuses every other global."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptedObject
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not a tensor or a plain container")
        return allowed

    def persistent_load(self, pid: Any) -> Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError(f"unexpected persistent record {pid!r}")
        _, dtype, key, _, numel = pid
        data = self._archive.read(f"{self._prefix}/data/{key}")
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(data) != int(numel) * itemsize:
            raise pickle.UnpicklingError(f"storage {key!r} has {len(data)} bytes, expected {int(numel) * itemsize}")
        return torch.frombuffer(bytearray(data), dtype=dtype) if data else torch.empty(0, dtype=dtype)


def _read_torchscript_tensors(file: pathlib.Path, prefix: str) -> dict[str, Tensor]:
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
        if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
            raise ValueError("the archive's tensors are big-endian")
        root = _TensorsOnlyUnpickler(archive.read(f"{prefix}/data.pkl"), archive, prefix).load()
    found: dict[str, Tensor] = {}
    _collect_tensors(root, "", found)
    return found


def _collect_tensors(node: Any, prefix: str, found: dict[str, Tensor]) -> None:
    if isinstance(node, _ScriptedObject):
        for name, value in getattr(node, "attributes", {}).items():
            if isinstance(value, Tensor):
                found[f"{prefix}{name}"] = value
            elif isinstance(value, _ScriptedObject):
                _collect_tensors(value, f"{prefix}{name}.", found)


__all__ = [
    "CLIP_CONFIGS",
    "CLIP_ENCODERS",
    "CLIP_MEAN",
    "CLIP_MODEL_NAMES",
    "CLIP_PREPROCESS_MODES",
    "CLIP_STD",
    "CLIP_WEIGHTS",
    "CLIP_WEIGHTS_ENV_VARS",
    "CLIPImageEncoder",
    "CLIPModelName",
    "CLIPPreprocess",
    "CLIPVisionConfig",
    "CLIPVisionTransformer",
    "clip_preprocess",
    "clip_weights_env_var",
    "load_clip_visual_state_dict",
]
