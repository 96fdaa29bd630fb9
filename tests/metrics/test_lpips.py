"""LPIPS: identical values to the ``lpips`` package with the same weights, its v0.1 heads loading strictly
against the pinned SHA-256, streaming, range checks that leave the state untouched, and the offline error."""

from __future__ import annotations

import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
import torch

from lightning_genmetrics.features.lpips_nets import (
    LPIPS_BACKBONE_WEIGHTS,
    LPIPS_HEAD_WEIGHTS,
    LPIPS_MIN_SIZE,
    LPIPSNetwork,
)
from lightning_genmetrics.features.weights import file_sha256
from lightning_genmetrics.metrics.lpips import LPIPS, LearnedPerceptualImagePatchSimilarity
from tests.contract import MetricContract
from tests.helpers import seeded_lpips_state


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks run on a few small images: more threads only fight other processes for the cores (on a
    loaded 2-core machine, a 30× slowdown)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lpips_package():
    lpips = pytest.importorskip("lpips")
    return lpips, Path(lpips.__file__).parent / "weights" / "v0.1"


def _reference(net: str, state: dict[str, torch.Tensor], heads_file: Path):
    """The ``lpips`` package's model with our backbone weights and the heads from ``heads_file``."""
    lpips, _ = _lpips_package()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecated `pretrained=` argument, used by lpips
        model = lpips.LPIPS(net=net, pnet_rand=True, model_path=str(heads_file), verbose=False)
    # lpips splits torchvision's `features` into slices that keep the original indices as names.
    backbone = {name: state["features." + name.split(".", 1)[1]] for name in model.net.state_dict()}
    model.net.load_state_dict(backbone)
    return model


def _save_weights(tmp_path: Path, state: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    """A torchvision-style backbone checkpoint (with a classifier entry, ignored) and an lpips-style heads file."""
    backbone, heads = tmp_path / "backbone.pth", tmp_path / "heads.pth"
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    torch.save({**features, "classifier.1.weight": torch.ones(3, 2)}, backbone)
    head_state = {f"lin{k.split('.')[1]}.model.1.weight": v for k, v in state.items() if k.startswith("heads.")}
    torch.save(head_state, heads)
    return backbone, heads


@pytest.mark.parametrize(("net", "size"), [("alex", 40), ("squeeze", 23), ("vgg", 19)])
def test_matches_the_lpips_package_with_the_same_weights(rng, tmp_path, net, size):
    state = seeded_lpips_state(net, seed=int(rng.integers(2**31)))
    backbone, heads = _save_weights(tmp_path, state)
    metric = LearnedPerceptualImagePatchSimilarity(
        net, "none", pretrained=False, backbone_weights_path=backbone, head_weights_path=heads, verify_weights=False
    )
    reference = _reference(net, state, heads)
    preds = torch.from_numpy(rng.uniform(-1, 1, (3, 3, size, size + 5))).float()
    target = torch.from_numpy(rng.uniform(-1, 1, (3, 3, size, size + 5))).float()
    per_pair = metric(preds, target)
    with torch.no_grad():
        expected = reference(preds, target).flatten().double()
    torch.testing.assert_close(per_pair, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(metric.compute(), expected, rtol=0, atol=1e-6)
    for reduction, reduce in (("mean", torch.mean), ("sum", torch.sum)):
        reduced = LearnedPerceptualImagePatchSimilarity(net, reduction, pretrained=False)
        reduced.network.load_state_dict(metric.network.state_dict())
        torch.testing.assert_close(reduced(preds, target), reduce(expected), rtol=0, atol=1e-5)


def test_package_v01_heads_match_the_pinned_sha256_and_load_strictly(rng):
    _, weights = _lpips_package()
    for net in ("alex", "vgg", "squeeze"):
        assert file_sha256(weights / f"{net}.pth") == LPIPS_HEAD_WEIGHTS[net].sha256
    # verify_weights=True: the file's hash is checked, then its entries are loaded with strict=True.
    state = seeded_lpips_state("squeeze", seed=int(rng.integers(2**31)))
    network = LPIPSNetwork("squeeze", pretrained=False, head_weights_path=weights / "squeeze.pth")
    network.features.load_state_dict({k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")})
    reference = _reference("squeeze", state, weights / "squeeze.pth")
    for head, linear in zip(network.heads, reference.lins, strict=True):
        assert torch.equal(head.weight, linear.model[1].weight)
    x = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 20, 20))).float()
    y = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 20, 20))).float()
    with torch.no_grad():
        torch.testing.assert_close(network(x, y), reference(x, y).flatten(), rtol=0, atol=1e-6)


def test_wrong_files_are_refused(tmp_path, rng):
    _, weights = _lpips_package()
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        LPIPSNetwork("alex", pretrained=False, head_weights_path=weights / "vgg.pth")
    with pytest.raises(ValueError, match="does not hold the LPIPS alex heads"):
        LPIPSNetwork("alex", pretrained=False, head_weights_path=weights / "vgg.pth", verify_weights=False)
    backbone, _ = _save_weights(tmp_path, seeded_lpips_state("squeeze"))
    with pytest.raises(ValueError, match="does not hold the alex backbone"):
        LPIPSNetwork("alex", pretrained=False, backbone_weights_path=backbone, verify_weights=False)


def test_pinned_backbones_are_torchvisions_files():
    import torchvision.models as models

    enums = {
        "alex": models.AlexNet_Weights.IMAGENET1K_V1,
        "vgg": models.VGG16_Weights.IMAGENET1K_V1,
        "squeeze": models.SqueezeNet1_1_Weights.IMAGENET1K_V1,
    }
    for net, weights in enums.items():
        spec = LPIPS_BACKBONE_WEIGHTS[net]
        assert spec.urls == (weights.url,)
        assert spec.filename == weights.url.rsplit("/", 1)[1]
        # torch.hub's convention: the name ends with the first hex digits of the file's SHA-256.
        assert spec.sha256.startswith(spec.filename.rsplit("-", 1)[1].removesuffix(".pth"))


def test_offline_error_names_the_file_its_hash_and_where_to_put_it(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    spec = LPIPS_HEAD_WEIGHTS["alex"]
    with pytest.raises(RuntimeError, match="Could not download weights file") as caught:
        LearnedPerceptualImagePatchSimilarity("alex")
    message = str(caught.value)
    assert spec.filename in message
    assert spec.sha256 in message
    assert spec.urls[0] in message
    assert str(tmp_path / "checkpoints" / spec.filename) in message
    assert f"head_weights_path='/path/to/{spec.filename}'" in message


def _metric(
    net: str = "squeeze", normalize: bool = False, seed: int = 0, reduction: str = "none"
) -> LearnedPerceptualImagePatchSimilarity:
    metric = LearnedPerceptualImagePatchSimilarity(net, reduction, normalize, pretrained=False)
    metric.network.load_state_dict(seeded_lpips_state(net, seed))
    return metric


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_streaming_identity_symmetry_grayscale_and_normalize(rng):
    x = torch.from_numpy(rng.random((7, 3, 24, 26))).float()
    y = torch.from_numpy(rng.random((7, 3, 24, 26))).float()
    whole, streamed, unit = _metric(), _metric(), _metric(normalize=True)
    whole.update(x * 2 - 1, y * 2 - 1)
    # torchmetrics' compute squeezes a one-element value to a scalar: the last batch of one pair gives one.
    per_pair = torch.cat(
        [streamed(a * 2 - 1, b * 2 - 1).reshape(-1) for a, b in zip(x.split(3), y.split(3), strict=True)]
    )
    # The float32 network's last bits depend on the batch it runs in (3, 3, 1 images here vs 7), so batching
    # invariance holds to float32 rounding; the merge of the sums is tested exactly by merge_state below.
    torch.testing.assert_close(streamed.compute(), whole.compute(), rtol=1e-6, atol=0)
    torch.testing.assert_close(unit(x, y), per_pair, rtol=0, atol=1e-6)
    torch.testing.assert_close(streamed(y * 2 - 1, x * 2 - 1), per_pair, rtol=0, atol=1e-7)
    assert torch.equal(_metric()(x, x), torch.zeros(7, dtype=torch.float64))
    gray = x[:, :1] * 2 - 1
    torch.testing.assert_close(
        _metric()(gray, y[:, :1] * 2 - 1),
        _metric()(gray.expand(-1, 3, -1, -1), (y[:, :1] * 2 - 1).expand(-1, 3, -1, -1)),
    )
    other = _metric()
    other.merge_state(whole)
    torch.testing.assert_close(other.compute(), whole.compute(), rtol=0, atol=0)
    assert LPIPS is LearnedPerceptualImagePatchSimilarity
    assert whole.higher_is_better is False


_GOOD = torch.zeros(2, 3, 20, 20)
_BAD = [
    (
        (torch.rand(2, 3, 20, 20) * 0.5 + 0.6, _GOOD),
        ValueError,
        r"`img1` in \[-1, 1\] \(normalize=False\), got values in \[0\.6",
    ),
    ((_GOOD, torch.rand(2, 3, 20, 20) * 2 - 1.01), ValueError, "`img2` in .* Pass normalize=True"),
    ((torch.full((2, 3, 20, 20), float("nan")), _GOOD), ValueError, "`img1` to be finite"),
    ((torch.zeros(2, 3, 20, 20, dtype=torch.uint8), _GOOD), TypeError, "floating point"),
    ((torch.zeros(2, 4, 20, 20), torch.zeros(2, 4, 20, 20)), ValueError, "C = 1 or 3"),
    ((torch.zeros(2, 3, 20, 21), _GOOD), ValueError, "the same shape"),
    ((torch.zeros(2, 3, 16, 20), torch.zeros(2, 3, 16, 20)), ValueError, "at least 17×17 pixels for net='squeeze'"),
    (("images", _GOOD), TypeError, "`img1` to be a torch.Tensor"),
]


@pytest.mark.parametrize("reduction", ["mean", "none"])  # "sum" keeps the states of "mean"
def test_metric_contract(rng, reduction):
    x = torch.from_numpy(rng.random((7, 3, 20, 22)) * 2 - 1).float()
    y = torch.from_numpy(rng.random((7, 3, 20, 22)) * 2 - 1).float()
    contract = MetricContract(
        lambda: _metric(reduction=reduction),
        [(x[:3], y[:3]), (x[3:4], y[3:4]), (x[4:], y[4:])],
        # The float32 network's last bits depend on the batch it runs in: the one-shot value agrees to its rounding.
        rtol=1e-6,
    )
    contract.check_batch_split()
    contract.check_merge()
    if reduction != "none":  # "none" keeps one distance per pair, as torchmetrics' does
        contract.check_state_size()
    contract.check_rejected_updates(_BAD)


def test_normalize_range_and_minimum_sizes():
    metric = _metric(normalize=True, reduction="mean")
    with pytest.raises(ValueError, match=r"in \[0, 1\] \(normalize=True\)"):
        metric.update(torch.full((1, 3, 20, 20), -0.5), torch.zeros(1, 3, 20, 20))
    for net, size in LPIPS_MIN_SIZE.items():
        network = LPIPSNetwork(net, pretrained=False)
        assert network(torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size)).shape == (1,)
        with pytest.raises(RuntimeError):  # one pixel less and the deepest tap is empty
            network(torch.zeros(1, 3, size - 1, size - 1), torch.zeros(1, 3, size - 1, size - 1))
    with pytest.raises(ValueError, match="`net_type` to be one of"):
        LearnedPerceptualImagePatchSimilarity("resnet", pretrained=False)
    with pytest.raises(TypeError, match=r"`net` is now `net_type`.*net_type='vgg'"):
        LearnedPerceptualImagePatchSimilarity(net="vgg", pretrained=False)
    with pytest.raises(ValueError, match="`reduction` to be one of"):
        LearnedPerceptualImagePatchSimilarity("alex", "elementwise_mean", pretrained=False)
    with pytest.raises(TypeError, match="`normalize` to be a bool"):
        LearnedPerceptualImagePatchSimilarity("alex", normalize=1, pretrained=False)


def test_forward_is_differentiable_and_leaves_no_graph_in_the_state(rng):
    x = torch.from_numpy(rng.random((2, 3, 20, 20))).float()
    y = torch.from_numpy(rng.random((2, 3, 20, 20))).float()
    for reduction in ("mean", "none"):
        metric = _metric(normalize=True, reduction=reduction)
        metric.update(x, y)
        estimate = x.clone().requires_grad_()
        metric(estimate, y).sum().backward()
        assert estimate.grad is not None
        assert bool(torch.isfinite(estimate.grad).all())
        assert estimate.grad.abs().sum() > 0
        states = [v for s in metric.metric_state.values() for v in (s if isinstance(s, list) else [s])]
        assert not any(value.requires_grad for value in states)
        assert not any(parameter.requires_grad for parameter in metric.network.parameters())
    assert LearnedPerceptualImagePatchSimilarity.is_differentiable
