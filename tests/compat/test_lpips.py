"""LPIPS as torchmetrics 1.9 computes it, with the same (seeded random) weights loaded into both libraries and
into the ``lpips`` package (the pretrained files cannot be downloaded here; the weights' provenance is tested in
tests/metrics/test_lpips.py).

- torchmetrics' own test cases: 4 batches of 2 images 3 × 50 × 50 in [0, 1], alex and squeeze, every
  reduction, against the ``lpips`` package with its tolerance (1e-4), class batch by batch and functional;
- live comparisons with torchmetrics on fresh inputs: class and functional, positional and keyword arguments,
  ``forward`` batch by batch, vgg included;
- gradients: ``gradcheck`` in float64 and equal to torchmetrics' gradients;
- the refusals, each naming what to write instead; the functional form's network cache and offline error.
"""

from __future__ import annotations

import copy
import functools
import re
import urllib.error
import urllib.request
import warnings

import pytest
import torch
import torchmetrics.functional.image.lpips as tm_functional_lpips
import torchmetrics.image.lpip as tm_class_lpips
from torchmetrics.functional.image.lpips import _NoTrainLpips
from torchmetrics.functional.image.lpips import learned_perceptual_image_patch_similarity as tm_lpips
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity as TMLearnedPerceptualImagePatchSimilarity

import lightning_genmetrics.features.lpips_nets as lpips_nets
from lightning_genmetrics import LPIPS, LearnedPerceptualImagePatchSimilarity
from lightning_genmetrics.features.lpips_nets import LPIPS_HEAD_WEIGHTS, LPIPSNetwork
from lightning_genmetrics.functional import learned_perceptual_image_patch_similarity
from tests.helpers import seeded_lpips_network, seeded_lpips_state

_SEED = {"alex": 11, "squeeze": 12, "vgg": 13}
# In the lpips package and torchmetrics, backbone slices keep torchvision's indices; heads are lin{i} and lins.{i}.
_BACKBONE_KEY = re.compile(r"net\.(?:slice\d+|slices\.\d+)\.(\d+)\.(.+)")
_HEAD_KEY = re.compile(r"lins?\.?(\d+)\.model\.1\.weight")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks run on a few small images: more threads only fight other processes for the cores (on a
    loaded 2-core machine, a 30× slowdown)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_into_reference(model: torch.nn.Module, net: str) -> torch.nn.Module:
    """Load the seeded weights into an ``lpips``-package-shaped model (the package's or torchmetrics')."""
    ours = seeded_lpips_state(net, _SEED[net])
    state = model.state_dict()
    for key in state:
        backbone, head = _BACKBONE_KEY.fullmatch(key), _HEAD_KEY.fullmatch(key)
        if backbone:
            state[key] = ours[f"features.{backbone[1]}.{backbone[2]}"]
        elif head:
            state[key] = ours[f"heads.{head[1]}.weight"]
    model.load_state_dict(state)
    return model


def _network(net: str) -> LPIPSNetwork:
    return seeded_lpips_network(net, _SEED[net])


def _metric(net_type: str = "alex", *args, **kwargs) -> LearnedPerceptualImagePatchSimilarity:
    metric = LearnedPerceptualImagePatchSimilarity(net_type, *args, pretrained=False, **kwargs)
    metric.network.load_state_dict(seeded_lpips_state(metric.net_type, _SEED[metric.net_type]))
    return metric


@functools.cache
def _lpips_package(net: str):
    lpips = pytest.importorskip("lpips")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecated `pretrained=` argument, used by lpips
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    return _load_into_reference(model, net)


def _torchvision_features_on_meta(net: str, pretrained: bool = False) -> torch.nn.Sequential:
    """torchmetrics' ``_get_tv_model_features`` without initialising the classifier (every entry is loaded next)."""
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, net)(weights=None)
    return model.features.to_empty(device="cpu")


@functools.cache
def _torchmetrics_network(net: str) -> torch.nn.Module:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tm_functional_lpips, "_get_tv_model_features", _torchvision_features_on_meta)
        return _load_into_reference(_NoTrainLpips(net=net, pretrained=False, pnet_rand=True), net)


@pytest.fixture
def seeded_torchmetrics(monkeypatch):
    """torchmetrics' LPIPS class and function build their network with the seeded weights (no download)."""

    def build(net: str = "alex") -> torch.nn.Module:
        # A copy: torchmetrics' function moves the network to the images' dtype in place.
        return copy.deepcopy(_torchmetrics_network(net))

    monkeypatch.setattr(tm_class_lpips, "_NoTrainLpips", build)
    monkeypatch.setattr(tm_functional_lpips, "_NoTrainLpips", build)


def _reference(img1, img2, net_type, normalize=False, reduction="mean"):
    """torchmetrics' reference: the ``lpips`` package's distances, reduced."""
    with torch.no_grad():
        distances = _lpips_package(net_type)(img1, img2, normalize=normalize).flatten().double()
    return {"mean": torch.mean, "sum": torch.sum, "none": lambda x: x}[reduction](distances)


@pytest.fixture
def torchmetrics_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(int(torch.randint(2**31, ())))
    return torch.rand(4, 2, 3, 50, 50, generator=generator), torch.rand(4, 2, 3, 50, 50, generator=generator)


@pytest.mark.parametrize("net_type", ["alex", "squeeze"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torchmetrics_cases_class_batch_by_batch(torchmetrics_inputs, net_type, reduction):
    img1, img2 = torchmetrics_inputs
    metric = _metric(net_type=net_type, reduction=reduction)
    for i in range(img1.shape[0]):
        batch = metric(img1[i], img2[i])
        torch.testing.assert_close(
            batch, _reference(img1[i], img2[i], net_type, reduction=reduction), rtol=0, atol=1e-4
        )
    expected = _reference(img1.flatten(0, 1), img2.flatten(0, 1), net_type, reduction=reduction)
    torch.testing.assert_close(metric.compute(), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torchmetrics_cases_functional(torchmetrics_inputs, reduction):
    img1, img2 = torchmetrics_inputs
    network = _network("alex")
    for i in range(img1.shape[0]):
        ours = learned_perceptual_image_patch_similarity(img1[i], img2[i], "alex", reduction, network=network)
        torch.testing.assert_close(ours, _reference(img1[i], img2[i], "alex", reduction=reduction), rtol=0, atol=1e-4)


@pytest.mark.parametrize("normalize", [False, True])
def test_torchmetrics_case_normalize(torchmetrics_inputs, normalize):
    img1, img2 = torchmetrics_inputs
    value = _metric(net_type="squeeze", normalize=normalize)(img1[0], img2[1])
    torch.testing.assert_close(value, _reference(img1[0], img2[1], "squeeze", normalize), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("img1", "img2", "match"),
    [
        (torch.rand(1, 1, 28, 28), torch.rand(1, 3, 28, 28), "the same shape"),  # torchmetrics: wrong channels
        (torch.rand(1, 3, 28, 28), torch.rand(1, 1, 28, 28), "the same shape"),
        (torch.randn(1, 3, 28, 28) * 3, torch.rand(1, 3, 28, 28), r"`img1` in \[-1, 1\]"),  # not normalized
        (torch.rand(1, 3, 28, 28), torch.randn(1, 3, 28, 28) * 3, r"`img2` in \[-1, 1\]"),
    ],
)
def test_torchmetrics_case_errors_on_wrong_update(img1, img2, match):
    with pytest.raises(ValueError, match=match):
        _metric("squeeze")(img1, img2)


def test_torchmetrics_case_errors_on_wrong_init():
    with pytest.raises(ValueError, match="`net_type` to be one of"):
        LearnedPerceptualImagePatchSimilarity(net_type="resnet", pretrained=False)
    with pytest.raises(ValueError, match="`reduction` to be one of"):
        LearnedPerceptualImagePatchSimilarity(net_type="squeeze", reduction="invalid_option", pretrained=False)


def test_torchmetrics_case_backprop_reaches_the_images_not_the_weights(torchmetrics_inputs):
    metric = _metric("squeeze")
    assert not metric.network.heads[0].weight.requires_grad
    preds = torchmetrics_inputs[0][0].clone().requires_grad_()
    loss = metric(preds, torchmetrics_inputs[1][0])
    assert loss.requires_grad
    loss.backward()
    assert metric.network.heads[0].weight.grad is None
    assert preds.grad is not None
    assert preds.grad.abs().sum() > 0


# Live comparisons: (positional arguments, keyword arguments), each as torchmetrics takes them.
_CALLS = [
    ((), {}),
    (("squeeze",), {}),
    (("squeeze", "sum"), {}),
    (("alex", "mean", True), {}),
    ((), {"net_type": "squeeze", "reduction": "none", "normalize": True}),
    (("squeeze", None), {}),
]


@pytest.mark.usefixtures("seeded_torchmetrics")
@pytest.mark.parametrize(("args", "kwargs"), _CALLS)
def test_live_against_torchmetrics_class_forward_and_functional(rng, args, kwargs):
    normalize = kwargs.get("normalize", args[2] if len(args) > 2 else False)
    shift = 0.0 if normalize else -1.0
    batches = [
        (
            torch.from_numpy(rng.random((n, 3, 36, 40)) * (1 - shift) + shift).float(),
            torch.from_numpy(rng.random((n, 3, 36, 40)) * (1 - shift) + shift).float(),
        )
        for n in (3, 1, 2)
    ]
    ours, theirs = _metric(*args, **kwargs), TMLearnedPerceptualImagePatchSimilarity(*args, **kwargs)
    network = _network(ours.net_type)
    for img1, img2 in batches:
        torch.testing.assert_close(ours(img1, img2), theirs(img1, img2).double(), rtol=0, atol=1e-6)
        # torchmetrics' function squeezes the distances of a single pair to a scalar.
        torch.testing.assert_close(
            learned_perceptual_image_patch_similarity(img1, img2, *args, **kwargs, network=network).reshape(-1),
            tm_lpips(img1, img2, *args, **kwargs).double().reshape(-1),
            rtol=0,
            atol=1e-6,
        )
    torch.testing.assert_close(ours.compute(), theirs.compute().double(), rtol=0, atol=1e-6)


@pytest.mark.usefixtures("seeded_torchmetrics")
def test_live_vgg(rng):
    img1, img2 = (torch.from_numpy(rng.random((2, 3, 20, 24))).float() for _ in range(2))
    ours = _metric("vgg", normalize=True)(img1, img2)
    theirs = TMLearnedPerceptualImagePatchSimilarity("vgg", normalize=True)(img1, img2)
    torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=1e-6)


@pytest.mark.usefixtures("seeded_torchmetrics")
def test_gradients_gradcheck_and_against_torchmetrics(rng):
    network = _network("squeeze").double()
    img1 = torch.from_numpy(rng.random((2, 3, 18, 19))).requires_grad_()
    img2 = torch.from_numpy(rng.random((2, 3, 18, 19)))

    def ours(x):
        return learned_perceptual_image_patch_similarity(x, img2, "squeeze", "sum", True, network=network)

    assert torch.autograd.gradcheck(ours, (img1,), fast_mode=True)
    (our_gradient,) = torch.autograd.grad(ours(img1), img1)
    (their_gradient,) = torch.autograd.grad(tm_lpips(img1, img2, "squeeze", "sum", True), img1)
    # torchmetrics divides by sqrt(1e-8 + ‖f‖²), the lpips package (and this library) by ‖f‖ + 1e-10.
    torch.testing.assert_close(our_gradient, their_gradient, rtol=1e-4, atol=1e-9)
    metric = _metric("squeeze", "mean", True)
    metric.network.double()
    (class_gradient,) = torch.autograd.grad(metric(img1, img2), img1)
    torch.testing.assert_close(class_gradient, our_gradient / 2, rtol=1e-10, atol=0)


def test_refusals_name_the_replacement():
    with pytest.raises(TypeError, match="`net` is now `net_type`, torchmetrics' name: pass net_type='vgg'"):
        LearnedPerceptualImagePatchSimilarity(net="vgg", pretrained=False)
    images = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"\[-1, 1\] \(normalize=False\), got values .* Pass normalize=True"):
        _metric("squeeze")(images * 2, images)
    with pytest.raises(ValueError, match="an LPIPS squeeze network"):
        learned_perceptual_image_patch_similarity(images, images, "squeeze", network=_network("alex"))


def test_functional_caches_its_network_and_says_which_file_is_missing(monkeypatch, tmp_path):
    built = []

    def seeded(net, **kwargs):
        built.append(net)
        return _network(net)

    lpips_nets.pretrained_lpips_network.cache_clear()
    monkeypatch.setattr(lpips_nets, "LPIPSNetwork", seeded)
    images = torch.rand(2, 3, 32, 32)
    first = learned_perceptual_image_patch_similarity(images, images.flip(0), "squeeze", normalize=True)
    second = learned_perceptual_image_patch_similarity(images, images.flip(0), "squeeze", normalize=True)
    assert built == ["squeeze"]
    assert first.item() == second.item() > 0
    lpips_nets.pretrained_lpips_network.cache_clear()
    monkeypatch.undo()

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match=LPIPS_HEAD_WEIGHTS["squeeze"].filename):
        learned_perceptual_image_patch_similarity(images, images, "squeeze", normalize=True)
    assert LPIPS is LearnedPerceptualImagePatchSimilarity
