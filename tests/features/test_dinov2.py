"""The DINOv2 port against timm's and transformers' DINOv2 on the same seeded weights, its preprocessing against the
reference transforms, its positional-embedding resampling against the reference formula, and its weights download."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision.transforms as tv
from PIL import Image
from transformers import Dinov2Config, Dinov2Model

from lightning_genmetrics.features.dinov2 import (
    DINOV2_ARCHITECTURES,
    DINOV2_VARIANTS,
    DINOV2_WEIGHTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DINOv2Architecture,
    DINOv2Encoder,
    dinov2_preprocess,
    dinov2_weights_env_var,
)
from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.features.weights import WeightsFile, file_sha256

TIMM_NAMES = {
    "vits14": "vit_small_patch14_dinov2",
    "vitb14": "vit_base_patch14_dinov2",
    "vitl14": "vit_large_patch14_dinov2",
    "vitg14": "vit_giant_patch14_dinov2",
}
# Depth used in the equality tests: ViT-S whole; B, L and g at full width (every distinct part: 12, 16 or 24 heads, the
# SwiGLU FFN of g/14) but fewer of their identical blocks, to keep the tests fast and small. (At full depth all four
# were bit-identical to timm's and transformers' outputs when this was written: benchmarks/encoder_throughput_dinov2.py
# prints the full-size comparison.)
TEST_DEPTH = {"vits14": 12, "vitb14": 4, "vitl14": 4, "vitg14": 2}
TOLERANCE = 1e-5
TINY = DINOv2Architecture("tiny", embed_dim=32, depth=2, num_heads=4, pos_grid=5)


def _seeded(architecture: DINOv2Architecture, seed: int = 0) -> DINOv2Encoder:
    """Seeded random weights with every parameter informative (layer scales, norms and biases drawn, not 1 or 0);
    built on the meta device and filled once, which is much faster than initialising and then overwriting."""
    with torch.device("meta"):
        encoder = DINOv2Encoder(architecture, pretrained=False)
    encoder = encoder.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if parameter.ndim == 1:
                centre = 1.0 if name.endswith(("gamma", "norm1.weight", "norm2.weight", "norm.weight")) else 0.0
                parameter.copy_(centre + 0.1 * torch.randn(parameter.shape, generator=generator))
            else:
                std = 0.5 if name in ("cls_token", "mask_token") else 0.02
                parameter.copy_(std * torch.randn(parameter.shape, generator=generator))
    return encoder


def _pixels(batch: int = 2, size: int = 56, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()


def _official_state_at(encoder: DINOv2Encoder, rows: int) -> dict[str, torch.Tensor]:
    """The encoder's (official-named) state dict with the positional table resampled for a ``rows × rows`` grid, the
    form a reference built for that input size holds (neither timm nor transformers resamples as the reference)."""
    state = dict(encoder.state_dict())
    state["pos_embed"] = encoder.positional_embedding(rows, rows).detach().clone()
    return state


def _timm_reference(variant: str, state: dict[str, torch.Tensor], depth: int, size: int) -> torch.nn.Module:
    with torch.device("meta"):
        model = timm.create_model(TIMM_NAMES[variant], pretrained=False, num_classes=0, img_size=size, depth=depth)
    renamed = {
        key.replace("mlp.w12.", "mlp.fc1.").replace("mlp.w3.", "mlp.fc2."): value
        for key, value in state.items()
        if key != "mask_token"
    }
    model.load_state_dict(renamed, strict=True, assign=True)
    return model.eval()


def _transformers_reference(
    architecture: DINOv2Architecture, state: dict[str, torch.Tensor], size: int
) -> torch.nn.Module:
    config = Dinov2Config(
        hidden_size=architecture.embed_dim,
        num_hidden_layers=architecture.depth,
        num_attention_heads=architecture.num_heads,
        mlp_ratio=4,
        image_size=size,
        patch_size=14,
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
        use_swiglu_ffn=architecture.ffn == "swiglu",
    )
    with torch.device("meta"):
        model = Dinov2Model(config)
    renamed = {
        "embeddings.cls_token": state["cls_token"],
        "embeddings.mask_token": state["mask_token"],
        "embeddings.position_embeddings": state["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "layernorm.weight": state["norm.weight"],
        "layernorm.bias": state["norm.bias"],
    }
    for index in range(architecture.depth):
        ours, theirs = f"blocks.{index}.", f"encoder.layer.{index}."
        for kind in ("weight", "bias"):
            for name, part in zip(("q", "k", "v"), state[f"{ours}attn.qkv.{kind}"].chunk(3), strict=True):
                renamed[f"{theirs}attention.{name}_proj.{kind}"] = part
            renamed[f"{theirs}attention.o_proj.{kind}"] = state[f"{ours}attn.proj.{kind}"]
            renamed[f"{theirs}norm1.{kind}"] = state[f"{ours}norm1.{kind}"]
            renamed[f"{theirs}norm2.{kind}"] = state[f"{ours}norm2.{kind}"]
            if architecture.ffn == "mlp":
                renamed[f"{theirs}mlp.fc1.{kind}"] = state[f"{ours}mlp.fc1.{kind}"]
                renamed[f"{theirs}mlp.fc2.{kind}"] = state[f"{ours}mlp.fc2.{kind}"]
            else:
                gate, up = state[f"{ours}mlp.w12.{kind}"].chunk(2)
                renamed[f"{theirs}mlp.gate_proj.{kind}"] = gate
                renamed[f"{theirs}mlp.up_proj.{kind}"] = up
                renamed[f"{theirs}mlp.down_proj.{kind}"] = state[f"{ours}mlp.w3.{kind}"]
        renamed[f"{theirs}layer_scale1.lambda1"] = state[f"{ours}ls1.gamma"]
        renamed[f"{theirs}layer_scale2.lambda1"] = state[f"{ours}ls2.gamma"]
    model.load_state_dict(renamed, strict=True, assign=True)
    return model.eval()


# --- the network against the references -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", DINOV2_VARIANTS)
def test_architecture_matches_timm_variant(variant):
    """Every hyperparameter (width, depth, heads, FFN kind and width) and every tensor shape of the full-size network,
    built on the meta device, against timm's registered DINOv2 model (its names mapped: g/14's w12/w3 are fc1/fc2)."""
    with torch.device("meta"):
        ours = DINOv2Encoder(variant, pretrained=False)
        reference = timm.create_model(TIMM_NAMES[variant], pretrained=False, num_classes=0)
    ours_shapes = {
        key.replace("mlp.w12.", "mlp.fc1.").replace("mlp.w3.", "mlp.fc2."): tuple(value.shape)
        for key, value in ours.state_dict().items()
        if key != "mask_token"
    }
    assert ours_shapes == {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    assert ours.num_features == reference.num_features == DINOV2_ARCHITECTURES[variant].embed_dim
    assert ours.architecture.num_heads == reference.blocks[0].attn.num_heads
    assert ours.state_dict()["mask_token"].shape == (1, ours.num_features)


def test_parameter_counts_are_the_published_ones():
    with torch.device("meta"):
        counts = {
            variant: sum(p.numel() for p in DINOv2Encoder(variant, pretrained=False).parameters())
            for variant in DINOV2_VARIANTS
        }
    # The model card's 21 M / 86 M / 300 M / 1.1 B (ViT-S's "21 M" is its 22.06 M rounded down).
    assert round(counts["vits14"] / 1e6) == 22
    assert round(counts["vitb14"] / 1e6) == 87
    assert round(counts["vitl14"] / 1e6) == 304
    assert round(counts["vitg14"] / 1e8) == 11


@pytest.mark.parametrize("variant", DINOV2_VARIANTS)
def test_equals_timm_on_seeded_weights(variant):
    """On 56×56 inputs (a 4×4 patch grid, the positional table resampled from 37×37 by the reference formula, which
    is tested on its own below) to keep the larger networks fast."""
    architecture = dataclasses.replace(DINOV2_ARCHITECTURES[variant], depth=TEST_DEPTH[variant])
    ours = _seeded(architecture)
    reference = _timm_reference(variant, _official_state_at(ours, 4), architecture.depth, 56)
    pixels = _pixels()
    with torch.no_grad():
        expected = reference(pixels)
    assert _relative_error(ours.encode(pixels), expected) <= TOLERANCE


@pytest.mark.parametrize(("variant", "size"), [("vits14", 224), ("vitl14", 56), ("vitg14", 56)])
def test_equals_transformers_on_seeded_weights(variant, size):
    architecture = dataclasses.replace(DINOV2_ARCHITECTURES[variant], depth=TEST_DEPTH[variant])
    ours = _seeded(architecture, seed=5)
    reference = _transformers_reference(architecture, _official_state_at(ours, size // 14), size)
    pixels = _pixels(batch=1, size=size, seed=7)
    with torch.no_grad():
        expected = reference(pixel_values=pixels).pooler_output
    assert _relative_error(ours.encode(pixels), expected) <= TOLERANCE


def _reference_bicubic(table: np.ndarray, out_size: int, scale: float) -> np.ndarray:
    """PyTorch's bicubic resampling by scale factor (align_corners=False, no antialias), written out in float64:
    output ``i`` reads the input at ``(i + 0.5) / scale - 0.5`` with Keys' cubic (a = -0.75), border-clamped."""
    in_size = table.shape[-1]

    def cubic(t: np.ndarray) -> np.ndarray:
        a, t = -0.75, np.abs(t)
        near = ((a + 2) * t - (a + 3)) * t * t + 1
        far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return np.where(t <= 1, near, np.where(t < 2, far, 0.0))

    source = (np.arange(out_size) + 0.5) / scale - 0.5
    base = np.floor(source)
    weights = np.zeros((out_size, in_size))
    for offset in (-1, 0, 1, 2):
        index = np.clip(base + offset, 0, in_size - 1).astype(int)
        np.add.at(weights, (np.arange(out_size), index), cubic(source - (base + offset)))
    return np.einsum("ih,jw,dhw->dij", weights, weights, table)


def test_positional_embedding_resampling_is_the_reference_formula():
    """518 → 224: the 37×37 table at 16×16 with scale factor 16.1 / 37, checked against a float64 re-implementation
    of the sampling positions; resampling to the output size instead (timm's and transformers 5's way) differs."""
    encoder = _seeded(DINOv2Architecture("grid", embed_dim=8, depth=1, num_heads=2, pos_grid=37))
    table = encoder.pos_embed.detach()[0, 1:].T.reshape(8, 37, 37).double().numpy()
    expected = _reference_bicubic(table, 16, 16.1 / 37)
    ours = encoder.positional_embedding(16, 16).detach()[0]
    assert torch.equal(ours[0], encoder.pos_embed.detach()[0, 0])
    ours_grid = ours[1:].T.reshape(8, 16, 16).double().numpy()
    # torch resamples in float32: equal to the float64 formula up to float32 rounding.
    assert np.abs(ours_grid - expected).max() <= TOLERANCE * np.abs(expected).max()
    by_size = _reference_bicubic(table, 16, 16 / 37)
    assert np.abs(by_size - expected).max() > 100 * TOLERANCE * np.abs(expected).max()


def test_native_grid_uses_the_table_as_stored():
    encoder = _seeded(TINY)
    assert encoder.positional_embedding(5, 5) is encoder.pos_embed
    assert encoder.positional_embedding(3, 4).shape == (1, 13, 32)


def test_double_precision_agrees_and_float32_is_returned():
    encoder = _seeded(TINY)
    pixels = _pixels(size=70)
    single = encoder.encode(pixels)
    double = encoder.double().encode(pixels)
    assert single.dtype == double.dtype == torch.float32
    assert _relative_error(single, double) <= TOLERANCE


# --- preprocessing -------------------------------------------------------------------------------------------------


def _images(seed: int = 0, shape: tuple[int, int] = (37, 53)) -> torch.Tensor:
    return torch.randint(0, 256, (3, 3, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return tv.Normalize(np.array(IMAGENET_MEAN), np.array(IMAGENET_STD))(x)


@pytest.mark.parametrize("shape", [(37, 53), (256, 256), (224, 224)])
def test_dgm_eval_mode_is_dgm_eval_transform_bit_for_bit(shape):
    """dgm-eval's DINOv2 transform (torchvision Resize((224, 224), BICUBIC) on the PIL image, ToTensor, Normalize)."""
    images = _images(shape=shape)
    transform = tv.Compose([tv.Resize((224, 224), tv.InterpolationMode.BICUBIC), tv.ToTensor()])
    expected = torch.stack([_normalise(transform(Image.fromarray(image.permute(1, 2, 0).numpy()))) for image in images])
    assert torch.equal(dinov2_preprocess(images, "dgm-eval"), expected)


def test_edm2_mode_is_edm2_resize_bit_for_bit():
    """EDM2's DINOv2Detector with resize_mode='torch': antialiased bicubic on the float 0..255 values, then /255."""
    images = _images(seed=1, shape=(512, 384))
    x = torch.nn.functional.interpolate(images.to(torch.float32), size=(224, 224), mode="bicubic", antialias=True)
    x = x.to(torch.float32) / 255
    x = x - torch.tensor(IMAGENET_MEAN).reshape(1, -1, 1, 1)
    expected = x / torch.tensor(IMAGENET_STD).reshape(1, -1, 1, 1)
    assert torch.equal(dinov2_preprocess(images, "edm2"), expected)


def test_dgm_eval_clean_mode_is_clean_resize_bit_for_bit():
    """dgm-eval's --clean_resize: PIL bicubic per float32 channel, clipped to [0, 255], then /255 and Normalize."""
    images = _images(seed=2, shape=(64, 48))
    expected = []
    for image in images.numpy().astype(np.float32):
        channels = [
            np.asarray(Image.fromarray(channel, mode="F").resize((224, 224), Image.BICUBIC)).clip(0, 255)
            for channel in image
        ]
        expected.append(_normalise(torch.from_numpy(np.stack(channels)) / 255))
    assert torch.equal(dinov2_preprocess(images, "dgm-eval-clean"), torch.stack(expected))


def test_the_modes_differ_and_forward_uses_its_mode():
    images = _images(seed=4, shape=(90, 90))
    modes = {mode: dinov2_preprocess(images, mode) for mode in ("dgm-eval", "edm2", "dgm-eval-clean")}
    assert not torch.equal(modes["dgm-eval"], modes["edm2"])
    assert not torch.equal(modes["dgm-eval"], modes["dgm-eval-clean"])
    torch.manual_seed(0)
    encoder = DINOv2Encoder(TINY, resize="edm2", pretrained=False)
    assert torch.equal(encoder(images), encoder.encode(modes["edm2"]))


# --- as a feature extractor ---------------------------------------------------------------------------------------


def test_image_features_hand_it_uint8_and_read_its_attributes():
    torch.manual_seed(0)
    encoder = DINOv2Encoder(TINY, pretrained=False)
    features = ImageFeatures(encoder, input_range=(0, 1))
    images = _images(seed=6, shape=(30, 30))
    assert features.num_features == 32
    assert torch.equal(features(images.float() / 255), encoder(images))
    provenance = features.provenance_fields()
    assert (provenance["layer"], provenance["resize"]) == ("cls", "dgm-eval")
    assert encoder.extractor_name == "DINOv2-tiny"
    assert encoder.training is False
    encoder.train()
    assert encoder.training is False
    assert not any(parameter.requires_grad for parameter in encoder.parameters())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda e: e(torch.zeros(1, 3, 8, 8)), TypeError, "uint8"),
        (lambda e: e(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)), ValueError, r"\[N, 3, H, W\]"),
        (lambda e: e(torch.zeros(1, 3, 0, 8, dtype=torch.uint8)), ValueError, "H, W > 0"),
        (lambda e: e.encode(torch.zeros(1, 3, 15, 14)), ValueError, "multiples of 14"),
        (lambda e: e.encode(torch.zeros(1, 3, 14, 14, dtype=torch.uint8)), TypeError, "floating-point"),
        (lambda e: dinov2_preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "bilinear"), ValueError, "resize"),
    ],
)
def test_bad_input_is_named(call, error, match):
    torch.manual_seed(0)
    with pytest.raises(error, match=match):
        call(DINOv2Encoder(TINY, pretrained=False))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "vitl16"}, "variant"),
        ({"variant": "vitl14", "resize": "clean"}, "resize"),
        ({"variant": TINY}, "custom DINOv2Architecture"),
    ],
)
def test_bad_configuration_raises_before_any_download(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DINOv2Encoder(**kwargs)


# --- weights ---------------------------------------------------------------------------------------------------------


def test_pinned_weights_are_the_official_files():
    assert set(DINOV2_WEIGHTS) == set(DINOV2_VARIANTS)
    for variant, spec in DINOV2_WEIGHTS.items():
        assert spec.urls == (f"https://dl.fbaipublicfiles.com/dinov2/dinov2_{variant}/dinov2_{variant}_pretrain.pth",)
        assert spec.filename == spec.urls[0].rsplit("/", 1)[1]
        assert spec.license == "Apache-2.0"
    assert len({spec.sha256 for spec in DINOV2_WEIGHTS.values()}) == 4


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """A fresh torch hub directory, no proxy for 127.0.0.1, and no weights named by the environment."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for variant in DINOV2_VARIANTS:
        monkeypatch.delenv(dinov2_weights_env_var(variant), raising=False)
    # Set torch's private override through monkeypatch so that it goes back to unset (None) afterwards: restoring
    # it with set_dir(get_dir()) would pin the directory and stop later tests from moving it with TORCH_HOME.
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


@pytest.fixture
def tiny_vits14(tmp_path, monkeypatch):
    """ViT-S/14's name bound to a tiny architecture and a seeded file: the download path of a real variant, fast."""
    monkeypatch.setitem(DINOV2_ARCHITECTURES, "vits14", TINY)
    source = _seeded(TINY, seed=11)
    file = tmp_path / "served" / "dinov2_vits14_pretrain.pth"
    file.parent.mkdir()
    torch.save(source.state_dict(), file)
    return source, file


def _pin(monkeypatch, file: Path, *urls: str) -> WeightsFile:
    spec = dataclasses.replace(
        DINOV2_WEIGHTS["vits14"], sha256=hashlib.sha256(file.read_bytes()).hexdigest(), urls=urls
    )
    monkeypatch.setitem(DINOV2_WEIGHTS, "vits14", spec)
    return spec


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/dinov2_vits14_pretrain.pth"


def test_download_verifies_caches_and_loads_strictly(server, hub_dir, tiny_vits14, monkeypatch):
    source, file = tiny_vits14
    spec = _pin(monkeypatch, file, server.serve("/dinov2_vits14_pretrain.pth", file.read_bytes()))
    encoder = DINOv2Encoder("vits14")
    assert sorted(path.name for path in hub_dir.iterdir()) == ["dinov2_vits14_pretrain.pth"]
    assert encoder.weights_sha256 == spec.sha256 == file_sha256(hub_dir / spec.filename)
    images = _images(seed=8, shape=(28, 28))
    assert torch.equal(encoder(images), source(images))
    server.routes.clear()  # the second construction reads the cache
    assert torch.equal(DINOv2Encoder("vits14")(images), source(images))


def test_wrong_bytes_from_the_mirror_are_refused_and_not_cached(server, hub_dir, tiny_vits14, monkeypatch):
    _, file = tiny_vits14
    corrupt = bytearray(file.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    _pin(monkeypatch, file, server.serve("/dinov2_vits14_pretrain.pth", bytes(corrupt)))
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        DINOv2Encoder("vits14")
    assert not (hub_dir / "dinov2_vits14_pretrain.pth").exists()


def test_offline_error_names_file_hash_url_and_alternatives(hub_dir, tiny_vits14, monkeypatch):
    _, file = tiny_vits14
    url = _refused_url()
    spec = _pin(monkeypatch, file, url)
    with pytest.raises(RuntimeError, match="Could not download") as info:
        DINOv2Encoder("vits14")
    for expected in (spec.filename, spec.sha256, url, str(hub_dir / spec.filename), "weights_path="):
        assert expected in str(info.value)
    assert dinov2_weights_env_var("vits14") in str(info.value)


def test_user_file_is_verified_unless_told_otherwise(hub_dir, tiny_vits14, tmp_path, monkeypatch):
    source, file = tiny_vits14
    _pin(monkeypatch, file, _refused_url())
    other = _seeded(TINY, seed=12)
    mine = tmp_path / "mine.pth"
    torch.save(other.state_dict(), mine)
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        DINOv2Encoder("vits14", weights_path=mine)
    unverified = DINOv2Encoder("vits14", weights_path=mine, verify_weights=False)
    assert unverified.weights_sha256 == file_sha256(mine)
    images = _images(seed=9, shape=(28, 28))
    assert torch.equal(unverified(images), other(images))
    monkeypatch.setenv(dinov2_weights_env_var("vits14"), str(file))
    assert torch.equal(DINOv2Encoder("vits14")(images), source(images))


def test_custom_architecture_loads_a_given_file_and_records_its_hash(tmp_path):
    source = _seeded(TINY, seed=13)
    file = tmp_path / "custom.pth"
    torch.save(source.state_dict(), file)
    encoder = DINOv2Encoder(TINY, weights_path=file)
    assert encoder.weights_sha256 == file_sha256(file)
    assert encoder.variant == "custom"
    incomplete = tmp_path / "incomplete.pth"
    torch.save({key: value for key, value in source.state_dict().items() if key != "mask_token"}, incomplete)
    with pytest.raises(RuntimeError, match="mask_token"):
        DINOv2Encoder(TINY, weights_path=incomplete)
