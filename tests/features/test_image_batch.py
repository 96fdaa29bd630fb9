"""One conversion and one network pass per batch for every metric fed an ``ImageBatch``; nothing shared without it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics import Metric

from lightning_genmetrics import (
    FrechetDistance,
    FrechetInceptionDistance,
    ImageBatch,
    ImageFeatures,
    InceptionScore,
    KernelInceptionDistance,
    PrecisionRecallDensityCoverage,
    images_to_uint8,
    sample_range,
)
from lightning_genmetrics.callbacks.phases.generation import Generation
from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.features import inception
from lightning_genmetrics.features.inception import FIDInceptionV3, InceptionLayerView
from lightning_genmetrics.metrics import frechet
from tests.contract import assert_same_state, state_snapshot, unchanged_state
from tests.ddp.harness import run_distributed
from tests.helpers import TinyFeatureNet
from tests.helpers import seeded_inception_network as seeded_network


class Counting(TinyFeatureNet):
    """A feature net taking [0, 1] floats that counts its calls (and can fail its first ``fail`` calls)."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__(8, seed=1, declare=True)
        self.calls = 0
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls <= self.fail:
            raise RuntimeError("the extractor failed")
        return super().forward(x)


def _uint8(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _passes(network: FIDInceptionV3) -> list[int]:
    """The batch sizes of the network's passes (its first convolution runs once per pass)."""
    passes: list[int] = []
    network.Conv2d_1a_3x3.register_forward_hook(lambda module, args, out: passes.append(args[0].shape[0]))
    return passes


def test_a_batch_is_checked_and_converted_once() -> None:
    images = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    batch = ImageBatch((images, torch.arange(3)), input_range=(-1, 1))
    assert batch.images is images
    assert not batch.is_uint8
    assert len(batch) == 3
    assert torch.equal(batch.uint8, images_to_uint8(images, (-1, 1)))
    assert batch.uint8.shape == (3, 3, 4, 4)
    uint8 = _uint8(2)
    assert ImageBatch(uint8).uint8 is uint8  # uint8 RGB is taken as it is
    with pytest.raises(TypeError, match="input_range"):
        ImageBatch(images)
    with pytest.raises(ValueError, match="input_range"):
        ImageBatch(images, input_range=(0, 1))
    with pytest.raises(ValueError, match="channels"):
        ImageBatch(torch.zeros(2, 2, 4, 4, dtype=torch.uint8))


def test_computed_remembers_by_what_and_module_and_forgets_failures() -> None:
    batch = ImageBatch(_uint8(2))
    module, other = nn.Identity(), nn.Identity()
    calls: list[str] = []

    def compute(name: str) -> str:
        calls.append(name)
        return name

    assert batch.computed("f", module, lambda: compute("a")) == "a"
    assert batch.computed("f", module, lambda: compute("b")) == "a"
    assert batch.computed("f", other, lambda: compute("c")) == "c"
    assert batch.computed("g", module, lambda: compute("d")) == "d"
    assert calls == ["a", "c", "d"]
    assert ImageBatch(_uint8(2)).computed("f", module, lambda: compute("e")) == "e"  # another batch: its own memo

    def fail() -> str:
        raise RuntimeError("failed")

    with pytest.raises(RuntimeError, match="failed"):
        batch.computed("h", module, fail)
    assert batch.computed("h", module, lambda: compute("f")) == "f"  # the failure left nothing behind
    # Modules made and dropped one after another would reuse one id: the batch holds them, so ids stay unique.
    assert [batch.computed("t", nn.Identity(), lambda i=i: i) for i in range(4)] == [0, 1, 2, 3]


def test_wrappers_of_one_module_share_a_pass_on_a_batch_only() -> None:
    module = Counting()
    first, second = ImageFeatures(module), ImageFeatures(module)
    uint8 = _uint8(3)
    batch = ImageBatch(uint8)
    a, b = first(batch), second.extract(batch)
    assert module.calls == 1
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(first(ImageBatch(uint8.clone())), a, rtol=0, atol=0)  # another batch: computed again
    assert module.calls == 2
    torch.testing.assert_close(first(uint8), a, rtol=0, atol=0)
    second(uint8)
    assert module.calls == 4  # plain tensors: every call runs the network
    # What differs between wrappers is theirs: the shared output is checked against each one's feature size.
    strict = ImageFeatures(module, num_features=5)
    with pytest.raises(ValueError, match="5 features"):
        strict(batch)
    assert module.calls == 4


class Lookup(nn.Module):
    """Takes uint8 images like the Inception network and returns the features listed for them."""

    input_dtype = torch.uint8

    def __init__(self, table: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.table = table
        self.num_features = table[0][1].shape[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return next(features for key, features in self.table if torch.equal(key, images))


def test_fid_is_kid_and_sfid_on_one_inception_and_its_views_run_it_once_per_batch() -> None:
    network = seeded_network()
    view = network.layer_view("logits_unbiased")
    assert isinstance(view, InceptionLayerView)
    assert view.num_features == 1008
    fid = FrechetInceptionDistance(network)
    sfid = FrechetInceptionDistance(network.layer_view("2023"))
    score = InceptionScore(view, splits=1)
    kid = KernelInceptionDistance(network, subsets=1, subset_size=2)
    real, fake = _uint8(2, size=32, seed=3), _uint8(2, size=32, seed=4)
    passes = _passes(network)
    real_batch, fake_batch = ImageBatch(real), ImageBatch(fake)
    for metric in (fid, sfid, kid):
        metric.update(real_batch, real=True)
        metric.update(fake_batch, real=False)
    score.update(fake_batch)
    assert passes == [2, 2]  # one pass per batch for the four metrics

    # Each metric holds what it holds fed its own layer's features: the layers of one pass of the network.
    layers = ["2048", "2023", "logits_unbiased"]
    real_layers, fake_layers = network.forward_layers(real, layers), network.forward_layers(fake, layers)
    for metric, layer in ((fid, "2048"), (sfid, "2023"), (kid, "2048"), (score, "logits_unbiased")):
        table = [(real, real_layers[layer]), (fake, fake_layers[layer])]
        if metric is score:
            expected = InceptionScore(Lookup(table), splits=1)
            expected.update(fake)
        else:
            expected = type(metric)(Lookup(table), **({"subsets": 1, "subset_size": 2} if metric is kid else {}))
            expected.update(real, real=True)
            expected.update(fake, real=False)
        assert_same_state(metric, state_snapshot(expected), f" ({layer})")
    with pytest.raises(ValueError, match="layer"):
        network.layer_view("pool3")


def test_prdc_and_fid_on_one_module_run_it_once_per_batch_and_only_with_the_same_input() -> None:
    module = Counting()
    fid = FrechetInceptionDistance(module, normalize=True, feature_input="float")
    prdc = PrecisionRecallDensityCoverage(module, k=1, normalize=True, feature_input="float")
    as_given = FrechetInceptionDistance(module, normalize=True)  # hands the module the images as given
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    batch = ImageBatch(images_to_uint8(images, (0, 1)))
    fid.update(batch, real=True)
    prdc.update(batch, real=True)
    assert module.calls == 1
    float_batch = ImageBatch(images, (0, 1))
    as_given.update(float_batch, real=True)
    fid.update(float_batch, real=False)
    prdc.update(float_batch, real=False)
    assert module.calls == 3  # the float images as given, and their uint8 / 255: two inputs, two passes


def test_a_float_batch_in_another_range_is_refused_and_leaves_the_state() -> None:
    module = Counting()
    metric = FrechetInceptionDistance(module, normalize=True, feature_input="float")
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    metric.update(ImageBatch(images, (0, 1)), real=True)
    with unchanged_state(metric), pytest.raises(ValueError, match=r"input_range \(0.0, 1.0\)"):
        metric.update(ImageBatch(images * 2 - 1, (-1, 1)), real=False)
    metric.update(ImageBatch(images_to_uint8(images, (0, 1))), real=False)  # uint8 fits every range


def test_a_failed_extraction_does_not_poison_the_batch() -> None:
    module = Counting(fail=1)
    first, second = (FrechetInceptionDistance(module, feature_input="float") for _ in range(2))
    batch = ImageBatch(_uint8(2))
    with unchanged_state(first), pytest.raises(RuntimeError, match="failed"):
        first.update(batch, real=True)
    second.update(batch, real=True)  # computed again, and remembered this time
    first.update(batch, real=True)
    assert module.calls == 2
    assert_same_state(first, state_snapshot(second))


class _Recorder(Metric):
    """A foreign metric: records what its update receives."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")
        self.received: list[type] = []

    def update(self, images: torch.Tensor) -> None:
        self.received.append(type(images))
        self.count += images.shape[0]

    def compute(self) -> torch.Tensor:
        return self.count


def test_the_plug_hands_our_metrics_the_batch_and_others_its_uint8() -> None:
    module = Counting()
    ours, foreign = (
        MetricPlug("fid", FrechetInceptionDistance(module, feature_input="float")),
        MetricPlug("seen", _Recorder()),
    )
    assert ours.takes_batch
    assert not foreign.takes_batch
    batch = ImageBatch(_uint8(2))
    ours.update_real(batch)
    foreign.update_generated(batch, torch.arange(2))
    ours.update_generated(batch, torch.arange(2))
    assert foreign.metric.received == [torch.Tensor]
    assert module.calls == 1
    foreign.update_generated(_uint8(1), torch.arange(1))  # a tensor still goes through as it is
    assert foreign.metric.received == [torch.Tensor, torch.Tensor]


def test_callback_default_inception_runs_once_per_batch_for_kid_and_is(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_genmetrics.callbacks import GenerativeMetricsCallback
    from tests.callbacks.support import CountingImages, TinyGAN, gan_sampler, make_trainer, train_loader

    built: list[FIDInceptionV3] = []

    def offline(layer: str = "2048", **kwargs: object) -> FIDInceptionV3:
        built.append(seeded_network(layer))
        return built[-1]

    monkeypatch.setattr(inception, "FIDInceptionV3", offline)
    callback = GenerativeMetricsCallback(
        gan_sampler,
        DataLoader(CountingImages(4), batch_size=2),
        metrics=("kid", "is"),  # FID would add two 2048×2048 eigendecompositions (tens of seconds here)
        num_samples=4,
        batch_size=2,
        log_images=False,
        log_figures=False,
        metric_kwargs={"is": {"splits": 1}, "kid": {"subsets": 2, "subset_size": 2}},
    )
    model = TinyGAN()
    make_trainer(tmp_path, [callback], max_epochs=1, logger=False).fit(model, train_loader())
    (network,) = built  # one network: KID reads its pool features, IS its logits through a view
    assert callback.metrics["is"].extractor.module.network is network
    assert callback.metrics["kid"].extractor.module is network
    passes = _passes(network)

    # References on one separate network, fed plain tensors (the view equals a logits network: tested above).
    reference = seeded_network()
    score = InceptionScore(reference.layer_view("logits_unbiased"), splits=1, input_range=(-1, 1))
    kid = KernelInceptionDistance(reference, subsets=2, subset_size=2, input_range=(-1, 1))
    generated = sample_range(gan_sampler(model), 0, 4, seed=0, batch_size=2, device="cpu")
    kid.update(CountingImages(4).images, real=True)
    score.update(generated, sample_ids=torch.arange(4))
    kid.update(generated, real=False, sample_ids=torch.arange(4))
    (record,) = callback.history
    assert record["is"] == pytest.approx(float(score.compute()[0]), rel=1e-6)
    assert record["kid"] == pytest.approx(float(kid.compute()[0]), rel=1e-5, abs=1e-9)

    with torch.inference_mode():
        callback._plan.generation._update_batch(generated[:3], torch.arange(3), None)
    assert passes == [3]  # KID and IS of a batch: one pass of the network


def _projection_syncs(rank: int, world_size: int) -> dict[str, object]:
    torch.manual_seed(rank)
    metric = FrechetDistance(num_features=3)
    metric.update(torch.randn(4 + 3 * rank, 3), real=True)  # uneven shards
    if rank == 0:
        metric.update(torch.randn(5, 3) + 1, real=False)  # rank 1 holds no generated sample
    syncs = []
    original = frechet.FrechetDistance._sync_states

    def counting(self: FrechetDistance, *args: object) -> None:
        syncs.append(1)
        original(self, *args)

    frechet.FrechetDistance._sync_states = counting  # type: ignore[method-assign]
    plug = MetricPlug("fid", metric)
    generation = Generation([plug], None, (0.0, 1.0), 0, lambda trainer: True)
    context = SimpleNamespace(trainer=SimpleNamespace(is_global_zero=rank == 0))
    value = plug.compute()["fid"]
    projection = generation._projection(context)  # type: ignore[arg-type]
    after_compute = len(syncs)
    reference = metric.gaussians()  # synchronises: the values the projection must have used
    return {
        "value": value,
        "syncs": after_compute,
        "projection": None if projection is None else projection.fake_mean,
        "reference": [tensor.clone() for tensor in reference],
    }


def test_compute_and_the_projection_synchronise_the_fid_state_once() -> None:
    results = run_distributed(_projection_syncs, world_size=2, timeout=120)
    assert [result["syncs"] for result in results] == [1, 1]
    assert results[0]["value"] == results[1]["value"]
    assert results[1]["projection"] is None
    mu_r, sigma_r, mu_g, sigma_g = results[0]["reference"]
    from lightning_genmetrics.callbacks import figures

    expected = figures.pca_projection(mu_r, sigma_r, mu_g, sigma_g).fake_mean
    torch.testing.assert_close(results[0]["projection"], expected, rtol=0, atol=0)


def test_computed_gaussians_are_dropped_when_the_state_changes() -> None:
    metric = FrechetDistance(num_features=2)
    metric.update(torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]]), real=True)
    metric.update(torch.tensor([[1.0, 1.0], [1.0, 3.0]]), real=False)
    metric.compute()
    for got, expected in zip(metric.computed_gaussians(), metric.gaussians(), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    before = state_snapshot(metric)
    with pytest.raises(ValueError, match="features"):
        metric.update(torch.zeros(2, 3), real=False)  # rejected: the state, and so the Gaussians, stay
    assert metric.computed_gaussians() is not None
    assert_same_state(metric, before)
    metric.update(torch.tensor([[0.0, 5.0]]), real=False)
    assert metric.computed_gaussians() is None
    metric.compute()
    metric.reset()
    assert metric.computed_gaussians() is None
    other = FrechetDistance(num_features=2)
    other.update(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), real=True)
    metric.update(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), real=True)
    metric.update(torch.tensor([[0.0, 0.0], [2.0, 1.0]]), real=False)
    metric.compute()
    metric.merge_state(other)
    assert metric.computed_gaussians() is None
