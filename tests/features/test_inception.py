"""The FID InceptionV3 port against torch-fidelity's outputs with seeded weights (tests/fixtures/fid_inception)."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_genmetrics.features import weights as weights_module
from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.features.inception import INCEPTION_LAYER_DIMS, INCEPTION_LAYERS, FIDInceptionV3
from lightning_genmetrics.metrics.frechet import FrechetInceptionDistance
from lightning_genmetrics.stats import check_compatible
from tests.helpers import INCEPTION_FIXTURES as FIXTURES
from tests.helpers import seeded_inception_network, seeded_inception_state

TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}
SPATIAL_LAYERS = ("64", "192", "768", "2048")


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, torch.Tensor]:
    return seeded_inception_state()


@pytest.fixture(scope="module")
def seeded_model() -> FIDInceptionV3:
    return seeded_inception_network()


@pytest.fixture(scope="module")
def random_model() -> FIDInceptionV3:
    return FIDInceptionV3("64", pretrained=False)


@pytest.fixture(scope="module")
def metric_features(seeded_model) -> dict[str, dict[str, np.ndarray]]:
    inputs = np.load(FIXTURES / "metric_inputs.npz")
    layers = (*SPATIAL_LAYERS, "logits_unbiased")
    return {
        name: {
            layer: value.double().numpy()
            for layer, value in seeded_model.forward_layers(torch.from_numpy(inputs[name]), layers).items()
        }
        for name in ("real", "fake")
    }


def _uint8_images(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, size=shape, dtype=np.uint8))


def _frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Exact float64 Fréchet distance: tr √(Σ1Σ2) = ‖A Bᵀ‖_* / √((n−1)(m−1)) for centred A, B."""
    (n, _), (m, _) = a.shape, b.shape
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    trace_sqrt = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / math.sqrt((n - 1) * (m - 1))
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    traces = (centred_a**2).sum() / (n - 1) + (centred_b**2).sum() / (m - 1)
    return float(mean_term + traces - 2 * trace_sqrt)


def test_state_dict_matches_the_weights_file_key_for_key(random_model):
    expected = [(name, tuple(shape)) for name, shape in json.loads((FIXTURES / "keys.json").read_text())]
    assert [(name, tuple(value.shape)) for name, value in random_model.state_dict().items()] == expected


@pytest.mark.parametrize("input_set", ["small", "native", "odd"])
def test_every_layer_matches_torch_fidelity(seeded_model, input_set):
    images = torch.from_numpy(np.load(FIXTURES / "inputs.npz")[input_set])
    expected = np.load(FIXTURES / "expected.npz")
    # The fixture holds torch-fidelity's layers; the sFID layer "2023" is checked in tests/suite/test_sfid.py.
    layers = [layer for layer in INCEPTION_LAYERS if layer != "2023"]
    features = seeded_model.forward_layers(images, layers)
    assert list(features) == layers
    for layer, value in features.items():
        assert value.dtype == torch.float32
        assert value.shape == (images.shape[0], INCEPTION_LAYER_DIMS[layer])
        np.testing.assert_allclose(value.numpy(), expected[f"{input_set}/{layer}"], **TOLERANCE, err_msg=layer)


@pytest.mark.parametrize("layer", ["64", "logits"])
def test_forward_returns_the_chosen_layer(seeded_state, layer):
    model = FIDInceptionV3(layer, pretrained=False)
    model.load_state_dict(seeded_state, strict=True)
    features = model(torch.from_numpy(np.load(FIXTURES / "inputs.npz")["odd"][:1]))
    assert features.shape == (1, model.num_features)
    np.testing.assert_allclose(features.numpy(), np.load(FIXTURES / "expected.npz")[f"odd/{layer}"][:1], **TOLERANCE)


@pytest.mark.parametrize("layer", SPATIAL_LAYERS)
def test_frechet_distance_of_the_features_matches_torch_fidelity(metric_features, layer):
    distance = _frechet_distance(metric_features["real"][layer], metric_features["fake"][layer])
    expected = float(np.load(FIXTURES / "expected.npz")[f"fid_tf1/{layer}"])
    assert distance == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_inception_score_of_the_unbiased_logits_matches_torch_fidelity(metric_features):
    logits = metric_features["fake"]["logits_unbiased"]
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    p = np.exp(log_p)
    kl = (p * (log_p - np.log(p.mean(0)))).sum(1)
    expected = float(np.load(FIXTURES / "expected.npz")["is/splits1/mean"])
    assert math.exp(kl.mean()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("resize", ["tf1", "torch-antialias"])
def test_fresh_images_match_torchmetrics_network(seeded_inception_weights, rng, resize):
    from torchmetrics.image.fid import NoTrainInceptionV3

    reference = NoTrainInceptionV3(
        "inception-v3-compat", ["2048"], str(seeded_inception_weights), antialias=resize == "torch-antialias"
    )
    model = FIDInceptionV3(resize=resize, weights_path=seeded_inception_weights, verify_weights=False)
    images = _uint8_images(rng, (1, 3, int(rng.integers(20, 400)), int(rng.integers(20, 400))))
    with torch.no_grad():
        expected = reference(images)
    np.testing.assert_allclose(model(images).numpy(), expected.numpy(), **TOLERANCE)


def test_weights_path_loads_strictly(seeded_state, seeded_inception_weights, tmp_path):
    model = FIDInceptionV3("64", weights_path=seeded_inception_weights, verify_weights=False)
    assert all(torch.equal(model.state_dict()[name], value) for name, value in seeded_state.items())
    torch.save({"fc.bias": seeded_state["fc.bias"], "aux.weight": torch.zeros(1)}, tmp_path / "partial.pth")
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*fc\.weight(?s:.*)Unexpected key\(s\).*aux\.weight"):
        FIDInceptionV3(weights_path=tmp_path / "partial.pth", verify_weights=False)


def test_weights_path_is_verified_by_default(seeded_inception_weights):
    with pytest.raises(ValueError, match="SHA-256"):
        FIDInceptionV3(weights_path=seeded_inception_weights)


def test_default_weights_come_from_the_weights_module(seeded_state, seeded_inception_weights, monkeypatch):
    calls = []

    def inception_weights_path(weights_path=None, *, verify=True) -> Path:
        calls.append(True)
        return seeded_inception_weights

    fake = types.ModuleType("lightning_genmetrics.features.weights")
    fake.inception_weights_path = inception_weights_path
    fake.load_state_dict_file = weights_module.load_state_dict_file
    monkeypatch.setitem(sys.modules, "lightning_genmetrics.features.weights", fake)
    model = FIDInceptionV3("64")
    assert calls == [True]
    assert torch.equal(model.state_dict()["fc.weight"], seeded_state["fc.weight"])


def test_not_pretrained_downloads_nothing(monkeypatch):
    fake = types.ModuleType("lightning_genmetrics.features.weights")
    monkeypatch.setitem(sys.modules, "lightning_genmetrics.features.weights", fake)
    FIDInceptionV3(pretrained=False)


def test_stays_in_eval_mode_without_gradients(random_model):
    random_model.train()
    random_model.train(True)
    assert not any(module.training for module in random_model.modules())
    assert not any(parameter.requires_grad for parameter in random_model.parameters())
    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    assert not random_model(images).requires_grad
    with torch.inference_mode():
        assert random_model(images).shape == (1, 64)
    with torch.enable_grad():
        assert not random_model(images).requires_grad


def test_metadata():
    assert FIDInceptionV3.input_dtype == torch.uint8
    assert set(INCEPTION_LAYER_DIMS) == set(INCEPTION_LAYERS)
    model = FIDInceptionV3("logits_unbiased", resize="clean", pretrained=False)
    assert (model.layer, model.resize, model.num_features) == ("logits_unbiased", "clean", 1008)


def test_float64_parameters_compute_in_float64(seeded_state, rng):
    model = FIDInceptionV3("192", pretrained=False)
    model.load_state_dict(seeded_state, strict=True)
    images = _uint8_images(rng, (1, 3, 20, 30))
    features = model(images)
    reference = model.double()(images)
    assert reference.dtype == torch.float32
    torch.testing.assert_close(features, reference, atol=1e-4, rtol=1e-4)


def test_forward_layers_stops_after_the_deepest_requested_layer(random_model):
    reached = []
    handle = random_model.Mixed_5b.register_forward_hook(lambda *args: reached.append(True))
    try:
        features = random_model.forward_layers(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), ["192", "64", "64"])
    finally:
        handle.remove()
    assert reached == []
    assert list(features) == ["192", "64"]
    assert [value.shape[1] for value in features.values()] == [192, 64]


def test_tf32_is_off_inside_and_restored_after(random_model):
    matmul = torch.backends.cuda.matmul
    new_api = hasattr(matmul, "fp32_precision")
    seen = []

    def flags() -> tuple:
        if new_api:
            return matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
        return matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    def set_flags(value: tuple) -> None:
        if new_api:
            matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = value
        else:
            matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = value

    before = flags()
    set_flags(("tf32", "tf32") if new_api else (True, True))
    handle = random_model.Conv2d_1a_3x3.register_forward_hook(lambda *args: seen.append(flags()))
    try:
        random_model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
        assert seen == [("ieee", "ieee") if new_api else (False, False)]
        assert flags() == (("tf32", "tf32") if new_api else (True, True))
    finally:
        handle.remove()
        set_flags(before)


def test_any_image_size_and_an_empty_batch(random_model, rng):
    assert random_model(_uint8_images(rng, (2, 3, 1, 500))).shape == (2, 64)
    assert random_model(_uint8_images(rng, (0, 3, 32, 32))).shape == (0, 64)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        ([[0]], TypeError, "Expected `images` to be a uint8 torch.Tensor, got list"),
        (torch.zeros(1, 3, 8, 8), TypeError, "Expected `images` to have dtype torch.uint8.*got dtype torch.float32"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), ValueError, r"\[N, 3, H, W\].*got shape \(3, 8, 8\)"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.uint8), ValueError, r"got shape \(1, 1, 8, 8\)"),
        (torch.zeros(1, 3, 0, 8, dtype=torch.uint8), ValueError, r"got shape \(1, 3, 0, 8\)"),
    ],
)
def test_bad_images_raise(random_model, images, error, match):
    with pytest.raises(error, match=match):
        random_model(images)


@pytest.mark.parametrize(
    ("layers", "error", "match"),
    [
        ("64", TypeError, "Expected `layers` to be a sequence of layer names, got '64'"),
        ([], ValueError, r"Expected `layers` to be a non-empty selection of .*got \[\]"),
        (["64", "pool3"], ValueError, r"got \['64', 'pool3'\]"),
    ],
)
def test_bad_layers_raise(random_model, layers, error, match):
    with pytest.raises(error, match=match):
        random_model.forward_layers(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), layers)


def test_bad_construction_arguments_raise():
    with pytest.raises(ValueError, match=r"Expected `layer` to be one of \('64', .*'logits'\), got 'pool3'"):
        FIDInceptionV3("pool3", pretrained=False)
    with pytest.raises(ValueError, match=r"Expected `layer` to be one of .*got 2048"):
        FIDInceptionV3(2048, pretrained=False)
    with pytest.raises(ValueError, match=r"Expected `resize` to be one of \('tf1', 'torch-antialias', 'clean'\)"):
        FIDInceptionV3(resize="bilinear", pretrained=False)


@pytest.mark.parametrize("layer", ["2023", "logits_unbiased"])
def test_layer_view_has_the_provenance_of_the_standalone_network(seeded_inception_weights, layer):
    # sFID/IS statistics made through the callback's view of the shared network must be comparable with those of
    # `genmetrics stats --encoder inception-spatial` or `FrechetInceptionDistance(feature=2023)` (a standalone network).
    shared = FIDInceptionV3("2048", weights_path=seeded_inception_weights, verify_weights=False)
    standalone = FIDInceptionV3(layer, weights_path=seeded_inception_weights, verify_weights=False)
    view = shared.layer_view(layer)
    fields = ImageFeatures(view).provenance_fields()
    assert fields == ImageFeatures(standalone).provenance_fields()
    assert fields["extractor"] == "FIDInceptionV3"
    assert fields["layer"] == layer
    # The fingerprint is still the weights': another network's view differs.
    other = FIDInceptionV3("2048", pretrained=False).layer_view(layer)
    assert ImageFeatures(other).provenance_fields()["weights_sha256"] != fields["weights_sha256"]
    # The view's own state dict is unchanged (a metric holding it saves and loads it as before).
    assert set(view.state_dict()) == {f"network.{name}" for name in standalone.state_dict()}
    if layer == "2023":
        check_compatible(
            FrechetInceptionDistance(view).feature_provenance(),
            FrechetInceptionDistance(standalone).feature_provenance(),
            what="reference statistics",
        )
