"""FID, Inception Score and KID against torchmetrics 1.9 (and torch-fidelity): its arguments, its numbers, its tests.

- Ports of torchmetrics' own test cases (tests/unittests/image/test_fid.py, test_inception.py, test_kid.py):
  their checks, on smaller images, with seeded InceptionV3 weights instead of the pretrained ones (no download).
- Live comparisons on fresh random inputs: a small torchmetrics-style custom network (it receives what
  torchmetrics hands it), and the standard InceptionV3 with the same seeded weights loaded in both libraries
  (torchmetrics through its ``feature_extractor_weights_path``, or its download function patched to return them).
- The deliberate differences (README "Coming from torchmetrics"): the argument that reproduces torchmetrics'
  number is checked to reproduce it.
- Every refusal names the replacement; two gloo processes with uneven shards and an empty rank.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
from torch import nn
from torchmetrics.image import FrechetInceptionDistance as TMFrechetInceptionDistance
from torchmetrics.image import InceptionScore as TMInceptionScore
from torchmetrics.image import KernelInceptionDistance as TMKernelInceptionDistance

from lightning_genmetrics import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from lightning_genmetrics.features import ImageBatch
from lightning_genmetrics.features import weights as weights_module
from lightning_genmetrics.features.inception import FIDInceptionV3
from lightning_genmetrics.features.resize import resize_images
from lightning_genmetrics.features.weights import file_sha256
from tests.ddp.harness import run_distributed
from tests.helpers import seeded_inception_network, seeded_inception_state

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class TorchmetricsStyleNet(nn.Module):
    """A custom feature network written for torchmetrics: it takes the images as the metric hands them (uint8
    0..255 or floats) and works on their values as they are; one image at a time, so batching changes no bit."""

    def __init__(self, num_features: int = 6, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        # Features of order one on uint8 input, as a network written for torchmetrics' default would give.
        self.weight = nn.Parameter(torch.randn(3 * 4 * 4, num_features, generator=generator) / 2000, False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.adaptive_avg_pool2d(images.float(), 4).flatten(1)
        return torch.cat([row[None] @ self.weight for row in pooled])


def _uint8(rng: np.random.Generator, n: int, low: int = 0, high: int = 256, size: int = 16) -> torch.Tensor:
    return torch.from_numpy(rng.integers(low, high, size=(n, 3, size, size), dtype=np.uint8))


def _both(ours: object, theirs: object) -> None:
    ours_flat = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in np.atleast_1d(ours)])
    theirs_flat = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in np.atleast_1d(theirs)])
    # torchmetrics computes KID's kernels and IS's posteriors in float32, this library in float64.
    torch.testing.assert_close(ours_flat, theirs_flat, rtol=1e-4, atol=1e-6)


def _pair(value: tuple[torch.Tensor, torch.Tensor]) -> list[float]:
    return [float(value[0]), float(value[1])]


# --- The standard network with shared seeded weights -------------------------------------------------------


@pytest.fixture
def standard_weights(seeded_inception_weights: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both libraries' standard network get the seeded weights: this library through ``weights_path`` (its pin
    moved to the file's digest), torchmetrics' IS/KID (which take no weights path) through torch-fidelity's
    download function."""
    seeded_weights = str(seeded_inception_weights)
    pinned = dataclasses.replace(weights_module.INCEPTION_FID_WEIGHTS, sha256=file_sha256(seeded_weights))
    monkeypatch.setattr(weights_module, "INCEPTION_FID_WEIGHTS", pinned)
    monkeypatch.setenv(weights_module.INCEPTION_WEIGHTS_ENV_VAR, seeded_weights)
    state = seeded_inception_state()
    monkeypatch.setattr(
        "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *args, **kwargs: state
    )
    return seeded_weights


def test_antialias_true_is_torchmetrics_resize_and_false_is_torch_fidelity_tf1(rng):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    for size in (17, 64, 299, 400):
        images = _uint8(rng, 1, size=size)
        antialias = torch.nn.functional.interpolate(
            images.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=True
        )
        assert torch.equal(resize_images(images, 299, "torch-antialias"), antialias)
        tf1 = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
        torch.testing.assert_close(resize_images(images, 299, "tf1"), tf1, rtol=0, atol=1e-4)


def test_fid_standard_network_positional_call_equals_torchmetrics(rng, standard_weights):
    """torchmetrics' full positional call with antialias=True; antialias=False is torch-fidelity's TF1 resize, the
    default here, checked against torch-fidelity below."""
    real, fake = _uint8(rng, 3, size=40), _uint8(rng, 2, 60, 200, size=40)
    theirs = TMFrechetInceptionDistance(64, True, False, (3, 299, 299), standard_weights, True)
    ours = FrechetInceptionDistance(64, True, False, (3, 299, 299), standard_weights, True)
    assert ours.extractor.module.resize == "torch-antialias"
    assert FrechetInceptionDistance(64, weights_path=standard_weights).extractor.module.resize == "tf1"
    for metric in (theirs, ours):
        metric.update(real[:2], real=True)
        metric.update(real[2:], real=True)
        metric.update(fake, real=False)
    _both(ours.compute(), theirs.compute())


def test_default_resize_is_torch_fidelity_protocol(rng, standard_weights):
    """The default (TF1 resize) gives torch-fidelity's FID and KID on the same network."""

    class Images(torch.utils.data.Dataset):
        def __init__(self, images: torch.Tensor) -> None:
            self.images = images

        def __len__(self) -> int:
            return self.images.shape[0]

        def __getitem__(self, index: int) -> torch.Tensor:
            return self.images[index]

    real, fake = _uint8(rng, 3, 0, 180, size=32), _uint8(rng, 3, 100, 256, size=32)
    reference = torch_fidelity.calculate_metrics(
        input1=Images(real),
        input2=Images(fake),
        fid=True,
        kid=True,
        kid_subsets=1,
        kid_subset_size=3,
        feature_layer_fid="64",
        feature_layer_kid="64",
        feature_extractor_weights_path=standard_weights,
        batch_size=3,
        cuda=False,
        verbose=False,
        save_cpu_ram=True,
        cache=False,
    )
    network = FIDInceptionV3("64", weights_path=standard_weights)  # the default resize: TF1
    fid, kid = FrechetInceptionDistance(network), KernelInceptionDistance(network, 1, 3)
    real_batch, fake_batch = ImageBatch(real), ImageBatch(fake)  # one pass of the network per batch for both metrics
    for metric in (fid, kid):
        metric.update(real_batch, real=True)
        metric.update(fake_batch, real=False)
    assert fid.compute().item() == pytest.approx(reference["frechet_inception_distance"], rel=1e-4)
    assert kid.compute()[0].item() == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-4, abs=1e-7)


def test_is_and_kid_standard_network_with_antialias_equal_torchmetrics(rng, standard_weights):
    images, other = _uint8(rng, 3, size=24), _uint8(rng, 2, 50, 256, size=24)
    theirs_kid = TMKernelInceptionDistance(64, 3, 2)
    ours_kid = KernelInceptionDistance(64, 3, 2, antialias=True)
    theirs_is = TMInceptionScore(64, 2)
    ours_is = InceptionScore(64, 2, antialias=True, sampling="torchmetrics")
    for kid in (theirs_kid, ours_kid):
        kid.update(images[:2], real=True)  # two a side: every subset is the whole side
        kid.update(other, real=False)
    for inception in (theirs_is, ours_is):
        inception.update(images)
    _both(_pair(ours_kid.compute()), _pair(theirs_kid.compute()))
    torch.manual_seed(7)
    theirs = _pair(theirs_is.compute())
    torch.manual_seed(7)
    _both(_pair(ours_is.compute()), theirs)


def test_normalize_true_rounds_here_and_truncating_yourself_reproduces_torchmetrics(rng, standard_weights):
    images = torch.from_numpy(rng.random((2, 3, 24, 24), dtype=np.float32))
    other = torch.from_numpy(rng.random((2, 3, 24, 24), dtype=np.float32)) ** 2
    theirs = TMFrechetInceptionDistance(64, normalize=True, feature_extractor_weights_path=standard_weights)
    rounded = FrechetInceptionDistance(64, normalize=True, antialias=True, weights_path=standard_weights)
    truncated = FrechetInceptionDistance(64, antialias=True, weights_path=standard_weights)
    for real, fake in ((images, other),):
        theirs.update(real, real=True)
        theirs.update(fake, real=False)
        rounded.update(real, real=True)
        rounded.update(fake, real=False)
        truncated.update((real * 255).byte(), real=True)
        truncated.update((fake * 255).byte(), real=False)
    _both(truncated.compute(), theirs.compute())
    # Rounding moves each pixel by at most 1/255: a different, nearby number.
    assert rounded.compute().item() == pytest.approx(theirs.compute().item(), rel=0.05)


# --- Ports of torchmetrics' test cases --------------------------------------------------------------------


@pytest.mark.parametrize("cls", [FrechetInceptionDistance, InceptionScore, KernelInceptionDistance])
def test_no_train(cls):
    """torchmetrics' test_no_train: the metric's network never leaves eval mode."""
    network = FIDInceptionV3("logits_unbiased" if cls is InceptionScore else "2048", pretrained=False)
    holder = nn.Module()
    holder.metric = cls(network)
    holder.train()
    assert holder.training
    assert not holder.metric.extractor.module.training


@pytest.mark.parametrize("cls", [FrechetInceptionDistance, InceptionScore, KernelInceptionDistance])
def test_pickle(cls):
    metric = cls(TorchmetricsStyleNet())
    assert isinstance(pickle.loads(pickle.dumps(metric)), cls)


@pytest.mark.parametrize("cls", [FrechetInceptionDistance, InceptionScore, KernelInceptionDistance])
def test_raises_on_bad_feature(cls):
    with pytest.raises(ValueError, match=r"Expected `feature` to be one of .*or an nn.Module, got 2"):
        cls(feature=2)
    with pytest.raises(TypeError, match=r"Expected `feature` to be one of .*or an nn.Module, got \[1, 2\]"):
        cls(feature=[1, 2])


@pytest.mark.parametrize("layer", ["64", "net"])
def test_fid_same_input_gives_zero(layer):
    """torchmetrics' test_fid_same_input (its dummy extractor: a linear map of the uint8 pixels / 125.5)."""
    if layer == "net":
        feature: nn.Module = TorchmetricsStyleNet()
    else:
        feature = seeded_inception_network("64")
    metric = FrechetInceptionDistance(feature=feature)
    generator = torch.Generator().manual_seed(42)
    for _ in range(2):
        images = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8, generator=generator)
        batch = ImageBatch(images)  # the same batch twice: one network pass
        metric.update(batch, real=True)
        metric.update(batch, real=False)
    assert torch.equal(metric.real_mean, metric.fake_mean)
    assert torch.equal(metric.real_m2, metric.fake_m2)
    assert torch.allclose(metric.compute(), torch.zeros((), dtype=torch.float64), atol=1e-3)


@pytest.mark.parametrize("reset_real_features", [True, False])
def test_reset_real_features_arg(reset_real_features):
    fid = FrechetInceptionDistance(TorchmetricsStyleNet(), reset_real_features)
    kid = KernelInceptionDistance(TorchmetricsStyleNet(), 2, 2, reset_real_features=reset_real_features)
    for metric in (fid, kid):
        metric.update(torch.randint(0, 180, (2, 3, 8, 8), dtype=torch.uint8), real=True)
        metric.update(torch.randint(0, 180, (2, 3, 8, 8), dtype=torch.uint8), real=False)
        metric.reset()
        assert int(metric.fake_n) == 0
        assert int(metric.real_n) == (0 if reset_real_features else 2)


@pytest.mark.parametrize("cls", [FrechetInceptionDistance, InceptionScore, KernelInceptionDistance])
def test_normalize_arg(cls):
    """torchmetrics' test_normalize_arg: floats need normalize=True; here the refusal says what to pass."""
    images = torch.rand(2, 3, 8, 8)
    args = () if cls is InceptionScore else (True,)
    cls(TorchmetricsStyleNet(), normalize=True).update(images, *args)
    with pytest.raises(TypeError, match="pass normalize=True"):
        cls(TorchmetricsStyleNet(), normalize=False).update(images, *args)


def test_fid_not_enough_samples():
    metric = FrechetInceptionDistance(TorchmetricsStyleNet())
    images = torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8)
    metric.update(images, real=True)
    metric.update(images, real=False)
    with pytest.raises(RuntimeError, match="at least 2 real and 2 generated"):
        metric.compute()


def test_kid_subset_size_larger_than_the_samples():
    metric = KernelInceptionDistance(TorchmetricsStyleNet(), subset_size=10)
    metric.update(torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8), real=True)
    metric.update(torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8), real=False)
    with pytest.raises(RuntimeError, match="lower `subset_size`"):
        metric.compute()


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"subsets": -1}, "subsets"), ({"subset_size": -1}, "subset_size"), ({"degree": -1}, "degree")]
)
def test_kid_extra_parameters(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        KernelInceptionDistance(TorchmetricsStyleNet(), **kwargs)
    with pytest.raises(ValueError, match="`gamma`"):
        KernelInceptionDistance(TorchmetricsStyleNet(), gamma=-1.0)


def test_kid_accepts_any_finite_coef_where_torchmetrics_asks_for_a_positive_float(rng):
    """torchmetrics refuses coef=-1 (and ints); the polynomial kernel is defined for any offset, so it is used."""
    net = TorchmetricsStyleNet()
    real, fake = _uint8(rng, 8), _uint8(rng, 8, 50, 200)
    values = []
    for coef in (-1, 0.5):
        kid = KernelInceptionDistance(net, 1, 8, 2, None, coef)
        kid.update(real, real=True)
        kid.update(fake, real=False)
        values.append(kid.compute()[0].item())
        assert kid.coef == kid.coef0 == float(coef)
    assert values[0] != values[1]


def test_kid_same_input():
    """torchmetrics' test_kid_same_input: identical features on both sides, a non-zero mean over random subsets."""
    metric = KernelInceptionDistance(TorchmetricsStyleNet(), subsets=5, subset_size=2)
    generator = torch.Generator().manual_seed(42)
    for _ in range(2):
        images = torch.randint(0, 255, (10, 3, 8, 8), dtype=torch.uint8, generator=generator)
        metric.update(images, real=True)
        metric.update(images, real=False)
    assert torch.equal(metric._sorted("real"), metric._sorted("fake"))
    mean, std = metric.compute()
    assert mean != 0.0
    assert std >= 0.0


def test_is_update_compute():
    """torchmetrics' test_is_update_compute, with the custom network (its own test runs the pretrained one)."""
    metric = InceptionScore(TorchmetricsStyleNet(num_features=10), splits=2)
    generator = torch.Generator().manual_seed(42)
    for _ in range(2):
        metric.update(torch.randint(0, 255, (10, 3, 16, 16), dtype=torch.uint8, generator=generator))
    mean, std = metric.compute()
    assert mean >= 1.0
    assert std >= 0.0


def test_fid_antialias_and_tf1_agree_on_identical_sides(standard_weights):
    """torchmetrics' test_antialias: with the same images on both sides, both resizes give about 0."""
    images = torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    values = []
    for antialias in (False, True):
        metric = FrechetInceptionDistance(feature=64, antialias=antialias, weights_path=standard_weights)
        batch = ImageBatch(images)
        metric.update(batch, real=True)
        metric.update(batch, real=False)
        values.append(metric.compute())
    assert torch.allclose(values[0], values[1], atol=1e-3)


# --- Live comparisons with a custom network ---------------------------------------------------------------


def test_custom_network_receives_what_torchmetrics_hands_it():
    seen = []

    class Recording(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            seen.append(images)
            return images.float().mean(dim=(2, 3))

    uint8 = torch.randint(0, 255, (2, 1, 4, 4), dtype=torch.uint8)
    floats = torch.rand(2, 3, 4, 4)
    FrechetInceptionDistance(Recording()).update(uint8, real=True)
    FrechetInceptionDistance(Recording(), normalize=True).update(floats, real=True)
    KernelInceptionDistance(Recording(), input_range=(-1, 1)).update(floats * 2 - 1, real=True)
    FrechetInceptionDistance(Recording(), feature_input="float").update(uint8, real=True)
    assert seen[0] is uint8
    assert seen[1] is floats
    assert torch.equal(seen[2], floats * 2 - 1)
    assert seen[3].dtype == torch.float32
    assert seen[3].shape == (2, 3, 4, 4)
    assert torch.equal(seen[3][:, :1] * 255, uint8.float())


@pytest.mark.parametrize("normalize", [False, True])
def test_fid_custom_network_class_positional_and_batch_split(rng, normalize):
    net = TorchmetricsStyleNet()
    real, fake = _uint8(rng, 12), _uint8(rng, 10, 40, 220)
    if normalize:
        real, fake = real.float() / 255, fake.float() / 255
    theirs = TMFrechetInceptionDistance(net, False, normalize, (3, 16, 16))
    ours = FrechetInceptionDistance(net, False, normalize, (3, 16, 16))
    keyword = FrechetInceptionDistance(feature=net, reset_real_features=False, normalize=normalize)
    for metric in (theirs, ours, keyword):
        for chunk in real.split(5):
            metric.update(chunk, real=True)
        for chunk in fake.split(3):
            metric.update(chunk, real=False)
    _both(ours.compute(), theirs.compute())
    _both(keyword.compute(), theirs.compute())
    for metric in (theirs, ours):
        metric.reset()
        metric.update(fake[:4], real=False)
        metric.update(fake[4:], real=False)
    _both(ours.compute(), theirs.compute())


@pytest.mark.parametrize("coef", [1.0, 0.25])
def test_kid_torchmetrics_sampling_gives_torchmetrics_value_under_the_same_seed(rng, coef):
    net = TorchmetricsStyleNet()
    real, fake = _uint8(rng, 23), _uint8(rng, 19, 30, 230)
    theirs = TMKernelInceptionDistance(net, 7, 9, 3, None, coef, True, False)
    ours = KernelInceptionDistance(net, 7, 9, 3, None, coef, True, False, sampling="torchmetrics")
    for metric in (theirs, ours):
        for chunk in real.split(6):
            metric.update(chunk, real=True)
        for chunk in fake.split(4):
            metric.update(chunk, real=False)
    seed = int(rng.integers(2**31))
    torch.manual_seed(seed)
    expected = _pair(theirs.compute())
    torch.manual_seed(seed)
    _both(_pair(ours.compute()), expected)


def test_kid_default_sampling_is_torchmetrics_value_when_every_subset_is_everything(rng):
    net = TorchmetricsStyleNet()
    real, fake = _uint8(rng, 11), _uint8(rng, 11, 30, 230)
    theirs = TMKernelInceptionDistance(feature=net, subsets=3, subset_size=11)
    ours = KernelInceptionDistance(feature=net, subsets=3, subset_size=11)
    for metric in (theirs, ours):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    _both(_pair(ours.compute()), _pair(theirs.compute()))


def test_kid_default_sampling_is_within_sampling_error_of_torchmetrics(rng):
    """N <= max_samples: the same features, other random subsets. Both means estimate one quantity with a
    standard error of about std / sqrt(subsets) each: they agree within 5·std·sqrt(2 / subsets)."""
    net = TorchmetricsStyleNet()
    real, fake = _uint8(rng, 60), _uint8(rng, 60, 20, 240)
    subsets = 50
    theirs = TMKernelInceptionDistance(net, subsets, 20)
    ours = KernelInceptionDistance(net, subsets, 20, seed=int(rng.integers(1000)))
    for metric in (theirs, ours):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    (mean, std), (their_mean, their_std) = ours.compute(), theirs.compute()
    tolerance = 5 * max(float(std), float(their_std)) * (2 / subsets) ** 0.5
    assert abs(float(mean) - float(their_mean)) <= tolerance


@pytest.mark.parametrize("n", [9, 20, 3])
def test_is_torchmetrics_sampling_gives_torchmetrics_value_under_the_same_seed(rng, n):
    """Including torchmetrics' torch.chunk splits: 9 images in 4 splits are 3 chunks of 3; 3 images, 3 chunks."""
    net = TorchmetricsStyleNet(num_features=5)
    images = _uint8(rng, n)
    theirs = TMInceptionScore(net, 4, False)
    ours = InceptionScore(net, 4, False, sampling="torchmetrics")
    for metric in (theirs, ours):
        for chunk in images.split(4):
            metric.update(chunk)
    seed = int(rng.integers(2**31))
    torch.manual_seed(seed)
    expected = _pair(theirs.compute())
    torch.manual_seed(seed)
    _both(_pair(ours.compute()), expected)


def test_is_normalize_true_hands_a_custom_network_torchmetrics_truncated_uint8(rng):
    """torchmetrics' IS (unlike its FID/KID) hands a custom network ``(x * 255).byte()`` under normalize=True;
    so does this one, and the number is torchmetrics'."""
    received = []

    class Recording(TorchmetricsStyleNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            received.append(x)
            return super().forward(x)

    net = Recording(num_features=5)
    images = torch.from_numpy(rng.random((8, 3, 16, 16), dtype=np.float32))
    theirs = TMInceptionScore(net, 2, True)
    ours = InceptionScore(net, 2, True, sampling="torchmetrics")
    theirs.update(images)
    ours.update(images)
    assert received[-1].dtype == torch.uint8
    assert torch.equal(received[-1], (images * 255).byte())
    torch.manual_seed(3)
    expected = _pair(theirs.compute())
    torch.manual_seed(3)
    _both(_pair(ours.compute()), expected)


def test_is_default_one_split_mean_is_torchmetrics_mean(rng):
    net = TorchmetricsStyleNet(num_features=5)
    images = _uint8(rng, 15)
    theirs, ours = TMInceptionScore(net, 1), InceptionScore(net, 1)
    for metric in (theirs, ours):
        metric.update(images)
    _both(ours.compute()[0], theirs.compute()[0])
    assert float(ours.compute()[1]) == 0.0  # ddof = 0 here; torchmetrics' ddof = 1 std of one split is NaN


def test_forward_accumulates_and_returns_none_where_torchmetrics_raises(rng):
    net = TorchmetricsStyleNet()
    real, fake = _uint8(rng, 6), _uint8(rng, 6, 30, 200)
    with pytest.raises(RuntimeError):
        TMFrechetInceptionDistance(net)(real, real=True)
    for metric, args in (
        (FrechetInceptionDistance(net), (True,)),
        (KernelInceptionDistance(net, 2, 4), (True,)),
        (InceptionScore(net, 2), ()),
    ):
        assert metric(real, *args) is None
        assert metric.forward(fake, *((False,) if args else ())) is None
    fid, reference = FrechetInceptionDistance(net), TMFrechetInceptionDistance(net)
    fid(real, real=True)
    fid(fake, real=False)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    _both(fid.compute(), reference.compute())


# --- Refusals name the replacement -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: FrechetInceptionDistance(TorchmetricsStyleNet(), normalize=True, input_range=(-1, 1)), "pass only"),
        (
            lambda: FrechetInceptionDistance(64, weights_path="a.pth", feature_extractor_weights_path="b.pth"),
            "pass one of them",
        ),
        (lambda: KernelInceptionDistance(TorchmetricsStyleNet(), coef=2.0, coef0=3.0), "pass one of them"),
        (
            lambda: KernelInceptionDistance(TorchmetricsStyleNet(), max_samples=500, sampling="torchmetrics"),
            "drop `max_samples`",
        ),
        (lambda: FrechetInceptionDistance(TorchmetricsStyleNet(), input_img_size=(299, 299)), "\\(C, H, W\\)"),
        (lambda: InceptionScore(TorchmetricsStyleNet(), sampling="random"), "'seeded', 'torchmetrics'"),
        (lambda: FrechetInceptionDistance(TorchmetricsStyleNet(), feature_input="uint8"), "'as_given', 'float'"),
    ],
)
def test_refusals_name_the_replacement(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_sample_ids_with_torchmetrics_sampling_are_refused_naming_the_way_out():
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    ids = torch.arange(2)
    with pytest.raises(ValueError, match="drop `sample_ids`, or use sampling='seeded'"):
        KernelInceptionDistance(TorchmetricsStyleNet(), 2, 2, sampling="torchmetrics").update(images, True, ids)
    with pytest.raises(ValueError, match="drop `sample_ids`, or use sampling='seeded'"):
        InceptionScore(TorchmetricsStyleNet(), sampling="torchmetrics").update(images, ids)


def test_coef_and_coef0_that_agree_and_weights_paths_that_agree_are_accepted():
    assert KernelInceptionDistance(TorchmetricsStyleNet(), coef=2.0, coef0=2.0).coef == 2.0
    assert KernelInceptionDistance(TorchmetricsStyleNet(), coef0=0.5).coef == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert FrechetInceptionDistance(TorchmetricsStyleNet(), input_img_size=[3, 8, 8]).num_features is None


# --- Two processes: torchmetrics' arrival order over ranks ---------------------------------------------------


def _ddp_torchmetrics_sampling(rank: int, world_size: int, real: torch.Tensor, fake: torch.Tensor, seed: int) -> dict:
    net = TorchmetricsStyleNet()
    values = {}
    for name, split in (("uneven", (7, 5)), ("empty rank", (12, 0))):
        kid = KernelInceptionDistance(net, 5, 6, sampling="torchmetrics")
        inception = InceptionScore(net, 3, sampling="torchmetrics")
        begin = 0 if rank == 0 else split[0]
        shard_real, shard_fake = real[begin : begin + split[rank]], fake[begin : begin + split[rank]]
        if split[rank]:  # an empty rank never calls update
            kid.update(shard_real, real=True)
            kid.update(shard_fake, real=False)
            inception.update(shard_fake)
        torch.manual_seed(seed)
        values[f"kid {name}"] = _pair(kid.compute())
        torch.manual_seed(seed)
        values[f"is {name}"] = _pair(inception.compute())
    return values


@pytest.mark.ddp
def test_two_processes_torchmetrics_sampling_equals_one_torchmetrics_process(rng):
    real, fake = _uint8(rng, 12), _uint8(rng, 12, 30, 220)
    seed = int(rng.integers(2**31))
    net = TorchmetricsStyleNet()
    kid, inception = TMKernelInceptionDistance(net, 5, 6), TMInceptionScore(net, 3)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    inception.update(fake)
    torch.manual_seed(seed)
    expected_kid = _pair(kid.compute())
    torch.manual_seed(seed)
    expected_is = _pair(inception.compute())
    for values in run_distributed(_ddp_torchmetrics_sampling, world_size=2, real=real, fake=fake, seed=seed):
        for name in ("uneven", "empty rank"):
            _both(values[f"kid {name}"], expected_kid)
            _both(values[f"is {name}"], expected_is)


@pytest.mark.parametrize("cls", [KernelInceptionDistance, InceptionScore])
def test_plot_draws_the_mean_as_torchmetrics(rng, cls):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    metric = cls(TorchmetricsStyleNet(), 2, 4) if cls is KernelInceptionDistance else cls(TorchmetricsStyleNet(), 2)
    images = _uint8(rng, 8)
    metric.update(images, *((True,) if cls is KernelInceptionDistance else ()))
    if cls is KernelInceptionDistance:
        metric.update(_uint8(rng, 8, 20, 200), real=False)
    _, axes = metric.plot()
    assert axes.lines[0].get_ydata().tolist() == [pytest.approx(metric.compute()[0].item())]
