"""The CLIP image encoders against open_clip and transformers on seeded weights; preprocessing against the
reference pipelines; OpenAI's TorchScript weights read safely, downloaded from a local server, verified."""

from __future__ import annotations

import dataclasses
import pickle
import socket
import warnings
import zipfile
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from transformers import CLIPVisionConfig as HFVisionConfig
from transformers import CLIPVisionModelWithProjection

from lightning_genmetrics.features import clip
from lightning_genmetrics.features.clip import (
    CLIP_CONFIGS,
    CLIP_MEAN,
    CLIP_STD,
    CLIP_WEIGHTS,
    CLIP_WEIGHTS_ENV_VARS,
    CLIPImageEncoder,
    CLIPVisionConfig,
    CLIPVisionTransformer,
    clip_preprocess,
    clip_weights_env_var,
    load_clip_visual_state_dict,
)
from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.features.weights import WeightsFile, file_sha256
from lightning_genmetrics.functional.cmmd import cmmd
from lightning_genmetrics.metrics.cmmd import CLIPMaximumMeanDiscrepancy

TOLERANCE = 1e-5
TINY = CLIPVisionConfig(image_size=32, patch_size=16, width=64, layers=2, output_dim=8)
# The models' hyperparameters (patch, input size, tokens, width, heads, output) at reduced depth, to keep the suite
# fast: every block runs the same code. At full depth the differences are of the same size (B/32: 1.0e-6 against
# open_clip, 9.2e-7 against transformers; L/14@336px: 1.5e-6 and 7.7e-7), and the full-size towers are checked
# for the references' parameter shapes and counts below.
B32_SHALLOW = dataclasses.replace(CLIP_CONFIGS["ViT-B/32"], layers=3)
L14_336_SHALLOW = dataclasses.replace(CLIP_CONFIGS["ViT-L/14@336px"], layers=1)


@pytest.fixture(autouse=True)
def _frugal_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _seeded_state(module: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights with the scale of trained ones: LayerNorm gains near 1, everything else N(0, 0.05²)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in module.state_dict().items():
        noise = torch.randn(tensor.shape, generator=generator)
        gain = name.endswith(".weight") and name.split(".")[-2].startswith("ln")
        state[name] = 1 + 0.1 * noise if gain else 0.05 * noise
    return state


def _open_clip_tower(config: CLIPVisionConfig) -> nn.Module:
    # The OpenAI-pretrained architecture in open_clip: QuickGELU, class-token pooling, OpenAI's parameter names.
    return open_clip.transformer.VisionTransformer(
        image_size=config.image_size,
        patch_size=config.patch_size,
        width=config.width,
        layers=config.layers,
        heads=config.heads,
        mlp_ratio=4.0,
        output_dim=config.output_dim,
        act_layer=open_clip.transformer.QuickGELU,
    ).eval()


def _hf_tower(config: CLIPVisionConfig) -> nn.Module:
    hf_config = HFVisionConfig(
        hidden_size=config.width,
        intermediate_size=4 * config.width,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.output_dim,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    return CLIPVisionModelWithProjection(hf_config).eval()


def _openai_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI's image-tower names to transformers' (q, k, v split out of ``in_proj``; ``proj`` transposed)."""
    mapped = {
        "vision_model.embeddings.class_embedding": state["class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "vision_model.pre_layrnorm.weight": state["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["ln_post.weight"],
        "vision_model.post_layernorm.bias": state["ln_post.bias"],
        "visual_projection.weight": state["proj"].T,
    }
    blocks = {name.split(".")[2] for name in state if name.startswith("transformer.resblocks.")}
    for index in blocks:
        ours, theirs = f"transformer.resblocks.{index}.", f"vision_model.encoder.layers.{index}."
        for part, weight, bias in zip(
            ("q_proj", "k_proj", "v_proj"),
            state[f"{ours}attn.in_proj_weight"].chunk(3),
            state[f"{ours}attn.in_proj_bias"].chunk(3),
            strict=True,
        ):
            mapped[f"{theirs}self_attn.{part}.weight"], mapped[f"{theirs}self_attn.{part}.bias"] = weight, bias
        for old, new in (
            ("attn.out_proj", "self_attn.out_proj"),
            ("ln_1", "layer_norm1"),
            ("ln_2", "layer_norm2"),
            ("mlp.c_fc", "mlp.fc1"),
            ("mlp.c_proj", "mlp.fc2"),
        ):
            for kind in ("weight", "bias"):
                mapped[f"{theirs}{new}.{kind}"] = state[f"{ours}{old}.{kind}"]
    return mapped


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize(
    ("config", "batch"), [(B32_SHALLOW, 2), (L14_336_SHALLOW, 1)], ids=["ViT-B/32", "ViT-L/14@336px"]
)
def test_tower_equals_open_clip_and_transformers_on_seeded_weights(config, batch):
    ours = CLIPVisionTransformer(config).eval()
    state = _seeded_state(ours)
    ours.load_state_dict(state, strict=True)
    reference = _open_clip_tower(config)
    # OpenAI's names load into open_clip's OpenAI architecture key for key.
    reference.load_state_dict(state, strict=True)
    hf = _hf_tower(config)
    missing, unexpected = hf.load_state_dict(_openai_to_hf(state), strict=False)
    assert not unexpected
    assert all("position_ids" in name for name in missing)
    pixels = torch.randn(batch, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embeddings = ours(pixels)
        open_clip_embeddings = reference(pixels)
        hf_embeddings = hf(pixel_values=pixels).image_embeds
    assert embeddings.shape == (batch, config.output_dim)
    assert _relative_error(embeddings, open_clip_embeddings) < TOLERANCE
    assert _relative_error(embeddings, hf_embeddings) < TOLERANCE


@pytest.mark.parametrize("model", ["ViT-B/32", "ViT-L/14@336px"])
def test_full_size_towers_have_the_references_parameters(model):
    config = CLIP_CONFIGS[model]
    with torch.device("meta"):
        ours = CLIPVisionTransformer(config)
        reference = _open_clip_tower(config)
        hf = _hf_tower(config)
    shapes = {name: tuple(tensor.shape) for name, tensor in ours.state_dict().items()}
    assert shapes == {name: tuple(tensor.shape) for name, tensor in reference.state_dict().items()}
    count = sum(parameter.numel() for parameter in ours.parameters())
    assert count == sum(parameter.numel() for parameter in hf.parameters())
    assert len(ours.transformer.resblocks) == config.layers
    assert ours.positional_embedding.shape == (config.num_tokens, config.width)


@pytest.mark.parametrize(("model", "open_clip_name"), [("ViT-B/32", "ViT-B-32"), ("ViT-L/14@336px", "ViT-L-14-336")])
def test_hyperparameters_are_open_clips(model, open_clip_name):
    config, reference = CLIP_CONFIGS[model], open_clip.get_model_config(open_clip_name)
    vision = reference["vision_cfg"]
    assert (config.image_size, config.patch_size) == (vision["image_size"], vision["patch_size"])
    assert (config.width, config.layers) == (vision["width"], vision["layers"])
    assert config.output_dim == reference["embed_dim"]
    # open_clip's default head width, as OpenAI's `build_model` (`vision_width // 64`).
    assert config.heads == vision["width"] // vision.get("head_width", 64)
    assert config.num_tokens == (vision["image_size"] // vision["patch_size"]) ** 2 + 1


# --- preprocessing ---------------------------------------------------------------------------------------------

SIZES = [(224, 224), (37, 53), (300, 200), (225, 224), (20, 331), (480, 640)]


def _images(rng: np.random.Generator, height: int, width: int, n: int = 2) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, (n, 3, height, width), dtype=np.uint8))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_clip_mode_equals_openai_preprocess_bit_for_bit(rng, height, width):
    images = _images(rng, height, width)
    # OpenAI's `clip._transform(224)` on PIL images (clean-fid's resize and crop, then its ToTensor/Normalize).
    transform = T.Compose(
        [
            T.Resize(224, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )
    expected = torch.stack([transform(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in images])
    assert torch.equal(clip_preprocess(images, 224, "clip"), expected)


def _cmmd_reference(image: torch.Tensor, size: int) -> torch.Tensor:
    """google-research/cmmd: `io_util._center_crop_and_resize` on the PIL image, float32 / 255, then CLIP's
    `normalize_image` (the embedding's own bicubic resize to the same size is the identity)."""
    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    width, height = picture.size
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    picture = picture.crop((left, top, left + side, top + side)).resize((size, size), resample=Image.BICUBIC)
    pixels = np.asarray(picture).astype(np.float32) / 255.0
    pixels = (pixels - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_cmmd_mode_equals_the_cmmd_reference_bit_for_bit(rng, height, width):
    images = _images(rng, height, width)
    expected = torch.stack([_cmmd_reference(image, 336) for image in images])
    assert torch.equal(clip_preprocess(images, 336, "cmmd"), expected)


def test_clip_and_cmmd_modes_agree_on_square_images_only(rng):
    square, wide = _images(rng, 100, 100), _images(rng, 90, 140)
    assert torch.equal(clip_preprocess(square, 336, "clip"), clip_preprocess(square, 336, "cmmd"))
    assert not torch.equal(clip_preprocess(wide, 336, "clip"), clip_preprocess(wide, 336, "cmmd"))


@pytest.mark.parametrize(("height", "width"), [(37, 53), (480, 640)])
def test_torch_fidelity_mode_equals_torch_fidelity(rng, height, width):
    images = _images(rng, height, width)
    # torch-fidelity 0.4's `FeatureExtractorCLIP.forward` up to the network.
    resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(224, 224), align_corners=False)
    expected = TF.normalize(resized, tuple(255 * m for m in CLIP_MEAN), tuple(255 * s for s in CLIP_STD))
    assert torch.equal(clip_preprocess(images, 224, "torch-fidelity"), expected)


def test_torch_antialias_mode_is_close_to_clip_mode(rng):
    # Smooth images: resampling differences stay small; the fast mode skips PIL's uint8 rounding between passes.
    coarse = _images(rng, 12, 16)
    images = torch.nn.functional.interpolate(coarse.float(), size=(120, 160), mode="bilinear").round().to(torch.uint8)
    fast = clip_preprocess(images, 224, "torch-antialias")
    exact = clip_preprocess(images, 224, "clip")
    assert fast.shape == exact.shape
    assert float((fast - exact).abs().mean()) * 255 * min(CLIP_STD) < 1.0


def test_bad_preprocess_inputs_raise():
    with pytest.raises(TypeError, match="uint8"):
        clip_preprocess(torch.zeros(1, 3, 8, 8), 224, "clip")
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        clip_preprocess(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 224, "clip")
    with pytest.raises(ValueError, match="`mode`"):
        clip_preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 224, "bilinear")


# --- the encoder module -------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_models(monkeypatch):
    """Both model names with the tiny tower, so that the encoder's whole path runs in milliseconds."""
    monkeypatch.setitem(CLIP_CONFIGS, "ViT-B/32", TINY)
    monkeypatch.setitem(CLIP_CONFIGS, "ViT-L/14@336px", TINY)


def test_encoder_embeds_preprocessed_images_and_normalizes_on_request(tiny_models, rng):
    encoder = CLIPImageEncoder("ViT-B/32", preprocess="cmmd", pretrained=False)
    encoder.visual.load_state_dict(_seeded_state(encoder.visual))
    unit = CLIPImageEncoder("ViT-B/32", preprocess="cmmd", normalize=True, pretrained=False)
    unit.visual.load_state_dict(encoder.visual.state_dict())
    images = _images(rng, 40, 50, n=3)
    expected = encoder.visual(clip_preprocess(images, TINY.image_size, "cmmd"))
    embeddings = encoder(images)
    assert embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=0)
    torch.testing.assert_close(unit(images), expected / expected.norm(dim=1, keepdim=True))
    assert (encoder.layer, unit.layer) == ("image_embeds", "image_embeds_normalized")
    assert (encoder.resize, encoder.extractor_name, encoder.num_features) == ("cmmd", "CLIP-ViT-B/32", 8)


def test_encoder_stays_in_eval_mode_without_gradients_and_computes_in_float64(tiny_models, rng):
    encoder = CLIPImageEncoder("ViT-B/32", pretrained=False).train()
    assert not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    images = _images(rng, 32, 32)
    single = encoder(images)
    double = encoder.double()(images)
    assert double.dtype == torch.float32
    assert _relative_error(single, double) < TOLERANCE


def test_encoder_is_an_image_features_module(tiny_models, rng):
    encoder = CLIPImageEncoder("ViT-L/14@336px", pretrained=False)
    features = ImageFeatures(encoder, input_range=(0, 1))
    images = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    uint8 = features.prepare(images)
    torch.testing.assert_close(features(images), encoder(uint8), rtol=0, atol=0)
    fields = features.provenance_fields()
    assert (fields["layer"], fields["resize"]) == ("image_embeds", "clip")


def test_encoder_names_set_up_their_metrics_reference_settings(tiny_models):
    b32 = CLIPImageEncoder.from_name("clip-vit-b32", pretrained=False)
    l14 = CLIPImageEncoder.from_name("clip-vit-l14-336", pretrained=False)
    assert (b32.model_name, b32.resize, b32.layer) == ("ViT-B/32", "clip", "image_embeds")
    assert (l14.model_name, l14.resize, l14.layer) == ("ViT-L/14@336px", "cmmd", "image_embeds_normalized")
    assert CLIPImageEncoder.from_name("clip-vit-l14-336", normalize=False, pretrained=False).layer == "image_embeds"
    with pytest.raises(ValueError, match="`name`"):
        CLIPImageEncoder.from_name("dinov2-vitl14", pretrained=False)


def test_bad_encoder_arguments_raise():
    with pytest.raises(ValueError, match="`model`"):
        CLIPImageEncoder("ViT-B/16", pretrained=False)
    with pytest.raises(ValueError, match="`preprocess`"):
        CLIPImageEncoder("ViT-B/32", preprocess="tf1", pretrained=False)
    with pytest.raises(ValueError, match="`normalize`"):
        CLIPImageEncoder("ViT-B/32", normalize=1, pretrained=False)


def test_cmmd_metric_with_the_l14_336_encoder_equals_functional_cmmd(monkeypatch, rng):
    monkeypatch.setitem(CLIP_CONFIGS, "ViT-L/14@336px", L14_336_SHALLOW)
    encoder = CLIPImageEncoder("ViT-L/14@336px", preprocess="cmmd", pretrained=False)
    encoder.visual.load_state_dict(_seeded_state(encoder.visual, seed=3))
    real, fake = _images(rng, 24, 24, n=2), _images(rng, 24, 30, n=2)
    metric = CLIPMaximumMeanDiscrepancy(encoder)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    real_embeddings, fake_embeddings = encoder(real).double(), encoder(fake).double()
    expected = cmmd(
        real_embeddings / real_embeddings.norm(dim=1, keepdim=True),
        fake_embeddings / fake_embeddings.norm(dim=1, keepdim=True),
    )
    value = metric.compute()
    assert float(value) > 0
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-9)


# --- weights ----------------------------------------------------------------------------------------------------


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for env_var in CLIP_WEIGHTS_ENV_VARS.values():
        monkeypatch.delenv(env_var, raising=False)
    return tmp_path / "torch-home" / "hub" / "checkpoints"


class _OpenAIStyleCLIP(nn.Module):
    """What OpenAI's archives hold around the image tower: text-side tensors and buffers beside ``visual``."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = CLIPVisionTransformer(TINY)
        self.logit_scale = nn.Parameter(torch.ones([]))
        self.text_projection = nn.Parameter(torch.randn(16, TINY.output_dim))
        self.register_buffer("input_resolution", torch.tensor(TINY.image_size))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels) * self.logit_scale


@pytest.fixture
def torchscript_file(tmp_path) -> Path:
    """A TorchScript archive of a seeded tiny CLIP, in float16 like OpenAI's files."""
    model = _OpenAIStyleCLIP().eval()
    model.visual.load_state_dict(_seeded_state(model.visual, seed=5))
    file = tmp_path / "tiny-clip.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.randn(1, 3, TINY.image_size, TINY.image_size))
        torch.jit.save(traced.half(), str(file))
    return file


def _jit_visual_state(file: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torch.jit.load(str(file), map_location="cpu").state_dict()
    return {name.removeprefix("visual."): tensor for name, tensor in state.items() if name.startswith("visual.")}


def test_torchscript_tensors_are_read_without_running_the_archive(torchscript_file):
    loaded = load_clip_visual_state_dict(torchscript_file)
    expected = _jit_visual_state(torchscript_file)
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[name], expected[name]) for name in expected)
    assert loaded["proj"].dtype == torch.float16
    CLIPVisionTransformer(TINY).load_state_dict(loaded, strict=True)


def test_plain_state_dicts_load_with_or_without_the_visual_prefix(tmp_path):
    state = _seeded_state(CLIPVisionTransformer(TINY))
    prefixed, bare = tmp_path / "prefixed.pth", tmp_path / "bare.pth"
    torch.save({**{f"visual.{name}": t for name, t in state.items()}, "logit_scale": torch.ones([])}, prefixed)
    torch.save(state, bare)
    for file in (prefixed, bare):
        loaded = load_clip_visual_state_dict(file)
        assert set(loaded) == set(state)
        assert all(torch.equal(loaded[k], state[k]) for k in state)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_archive_with_code_in_its_pickle_is_refused_without_side_effects(torchscript_file, tmp_path):
    marker = tmp_path / "marker.txt"
    poisoned = tmp_path / "poisoned.pt"
    with zipfile.ZipFile(torchscript_file) as source, zipfile.ZipFile(poisoned, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_Payload(marker), protocol=2)
            target.writestr(item, data)
    with pytest.raises(ValueError, match="Refusing to load TorchScript weights"):
        load_clip_visual_state_dict(poisoned)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker), protocol=2))
    assert marker.exists()  # the payload is live: the refusal above is what kept it from running


def test_archive_with_a_truncated_tensor_record_is_refused(torchscript_file, tmp_path):
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(torchscript_file) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data[:-2] if "/data/" in item.filename else data)
    with pytest.raises(ValueError, match="bytes, expected"):
        load_clip_visual_state_dict(damaged)


def test_only_the_image_tower_is_taken_and_a_missing_file_raises(tmp_path):
    file = tmp_path / "full-model.pth"
    torch.save({"transformer.x": torch.ones(1), "visual.proj": torch.ones(1)}, file)
    assert set(load_clip_visual_state_dict(file)) == {"proj"}
    with pytest.raises(FileNotFoundError):
        load_clip_visual_state_dict(tmp_path / "missing.pt")


def _spec(file: Path, *urls: str, sha256: str | None = None) -> WeightsFile:
    return WeightsFile(
        filename="ViT-B-32.pt",
        sha256=sha256 or file_sha256(file),
        urls=urls,
        source="a seeded test archive",
        license="MIT",
    )


def test_encoder_downloads_verifies_caches_and_loads_the_archive(
    tiny_models, server, torch_home, torchscript_file, monkeypatch
):
    url = server.serve("/clip/ViT-B-32.pt", torchscript_file.read_bytes())
    monkeypatch.setitem(CLIP_WEIGHTS, "ViT-B/32", _spec(torchscript_file, url))
    encoder = CLIPImageEncoder("ViT-B/32")
    cached = torch_home / "ViT-B-32.pt"
    assert file_sha256(cached) == file_sha256(torchscript_file)
    expected = _jit_visual_state(torchscript_file)
    assert all(torch.equal(encoder.visual.state_dict()[name], expected[name].float()) for name in expected)
    assert encoder.weights_sha256 == file_sha256(torchscript_file)
    # A second encoder uses the cache: the server is gone.
    server.routes.clear()
    again = CLIPImageEncoder("ViT-B/32", normalize=True)
    assert torch.equal(again.visual.proj, encoder.visual.proj)


def test_wrong_hash_is_refused_and_nothing_is_cached(tiny_models, server, torch_home, torchscript_file, monkeypatch):
    url = server.serve("/clip/ViT-B-32.pt", torchscript_file.read_bytes())
    monkeypatch.setitem(CLIP_WEIGHTS, "ViT-B/32", _spec(torchscript_file, url, sha256="0" * 64))
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        CLIPImageEncoder("ViT-B/32")
    assert not torch_home.exists() or not any(torch_home.iterdir())
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        CLIPImageEncoder("ViT-B/32", weights_path=torchscript_file)
    assert CLIPImageEncoder("ViT-B/32", weights_path=torchscript_file, verify_weights=False).weights_sha256 is None


def test_offline_error_says_what_to_download_and_where(tiny_models, torch_home, torchscript_file, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = _spec(torchscript_file, f"http://127.0.0.1:{port}/ViT-B-32.pt")
    monkeypatch.setitem(CLIP_WEIGHTS, "ViT-B/32", spec)
    with pytest.raises(RuntimeError) as error:
        CLIPImageEncoder("ViT-B/32")
    message = str(error.value)
    env_var = clip_weights_env_var("ViT-B/32")
    for part in (spec.sha256, spec.urls[0], str(torch_home / "ViT-B-32.pt"), env_var, "weights_path="):
        assert part in message
    assert clip_weights_env_var("ViT-L/14@336px") not in message


def test_environment_variable_names_a_local_copy(tiny_models, torch_home, torchscript_file, monkeypatch):
    monkeypatch.setitem(CLIP_WEIGHTS, "ViT-B/32", _spec(torchscript_file, "http://127.0.0.1:9/unused"))
    monkeypatch.setenv(clip_weights_env_var("ViT-B/32"), str(torchscript_file))
    encoder = CLIPImageEncoder("ViT-B/32")
    assert torch.equal(encoder.visual.proj, _jit_visual_state(torchscript_file)["proj"].float())


def test_each_model_has_its_own_environment_variable(tiny_models, torch_home, torchscript_file, tmp_path, monkeypatch):
    # Two different files, each pinned for one model: a variable shared by both models would hand one model the
    # other's file, which its hash check refuses.
    other_file = tmp_path / "tiny-clip-l14.pt"
    other = _OpenAIStyleCLIP().eval()
    other.visual.load_state_dict(_seeded_state(other.visual, seed=6))
    torch.save(other.state_dict(), other_file)
    monkeypatch.setitem(CLIP_WEIGHTS, "ViT-B/32", _spec(torchscript_file, "http://127.0.0.1:9/unused"))
    large = dataclasses.replace(_spec(other_file, "http://127.0.0.1:9/unused"), filename="ViT-L-14-336px.pt")
    monkeypatch.setitem(CLIP_WEIGHTS, "ViT-L/14@336px", large)
    monkeypatch.setenv(clip_weights_env_var("ViT-B/32"), str(torchscript_file))
    monkeypatch.setenv(clip_weights_env_var("ViT-L/14@336px"), str(other_file))
    small_encoder = CLIPImageEncoder("ViT-B/32")
    large_encoder = CLIPImageEncoder("ViT-L/14@336px", preprocess="cmmd", normalize=True)
    assert torch.equal(small_encoder.visual.proj, _jit_visual_state(torchscript_file)["proj"].float())
    assert torch.equal(large_encoder.visual.proj, other.visual.proj)
    assert large_encoder.weights_sha256 == file_sha256(other_file)
    assert len(set(CLIP_WEIGHTS_ENV_VARS.values())) == len(clip.CLIP_MODEL_NAMES)
    with pytest.raises(ValueError, match="Expected `model` to be one of"):
        clip_weights_env_var("ViT-H/14")


def test_encoder_equals_torch_fidelity_extractor_on_the_same_archive(tiny_models, torchscript_file, rng):
    # torch-fidelity loads OpenAI's archive with torch.jit.load and rebuilds the tower from its state dict.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = FeatureExtractorCLIP(
            "clip-vit-b-32", ["clip"], feature_extractor_weights_path=str(torchscript_file)
        )
    encoder = CLIPImageEncoder(
        "ViT-B/32", preprocess="torch-fidelity", weights_path=torchscript_file, verify_weights=False
    )
    images = _images(rng, 45, 37, n=3)
    with torch.no_grad():
        (expected,) = reference(images)
    assert _relative_error(encoder(images), expected) < TOLERANCE


def test_pinned_openai_files_carry_their_hash_in_the_url():
    for model, spec in CLIP_WEIGHTS.items():
        assert model in clip.CLIP_MODEL_NAMES
        assert all(url.split("/")[-2] == spec.sha256 and url.endswith(spec.filename) for url in spec.urls)
        assert spec.license == "MIT"
