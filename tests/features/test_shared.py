"""One network pass for several metrics: ``shared_extraction`` and ``FIDInceptionV3.layer_view``."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from lightning_genmetrics import (
    ImageFeatures,
    InceptionScore,
    KernelInceptionDistance,
    sample_range,
)
from lightning_genmetrics.features import inception
from lightning_genmetrics.features.inception import FIDInceptionV3, InceptionLayerView
from lightning_genmetrics.features.shared import memoized, shared_extraction
from tests.helpers import TinyFeatureNet
from tests.helpers import seeded_inception_network as seeded_network


class Counting(TinyFeatureNet):
    def __init__(self) -> None:
        super().__init__(8, seed=1, declare=True)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x)


def test_wrappers_of_one_module_share_a_pass_inside_the_scope_only() -> None:
    module = Counting()
    first, second = ImageFeatures(module), ImageFeatures(module)
    uint8 = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    with shared_extraction():
        a, b = first(uint8), second(uint8)
        assert module.calls == 1
        assert a is b
        other = uint8.clone()  # equal pixels, another tensor: computed again
        torch.testing.assert_close(first(other), a)
        assert module.calls == 2
    first(uint8)
    second(uint8)
    assert module.calls == 4  # outside the scope every call runs the network


def test_the_scope_tells_modules_apart_and_nests() -> None:
    x = torch.ones(2)
    with shared_extraction():
        assert memoized("f", "a", x, lambda: 1) == 1
        assert memoized("f", "b", x, lambda: 2) == 2
        assert memoized("g", "a", x, lambda: 5) == 5
        with shared_extraction():
            assert memoized("f", "a", x, lambda: 3) == 3
        assert memoized("f", "a", x, lambda: 4) == 1


def test_layer_view_equals_the_layer_network_and_shares_its_pass() -> None:
    network = seeded_network()
    view = network.layer_view("logits_unbiased")
    assert isinstance(view, InceptionLayerView)
    assert view.num_features == 1008
    separate = seeded_network("logits_unbiased")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    passes = []
    network.Conv2d_1a_3x3.register_forward_hook(lambda *args: passes.append(1))
    with shared_extraction():
        pool, logits = network(images), view(images)
    assert len(passes) == 1
    torch.testing.assert_close(logits, separate(images), rtol=0, atol=0)
    torch.testing.assert_close(pool, seeded_network()(images), rtol=0, atol=0)
    with pytest.raises(ValueError, match="layer"):
        network.layer_view("pool3")


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
    images = []
    network.Conv2d_1a_3x3.register_forward_hook(lambda module, args, out: images.append(args[0].shape[0]))

    # References on one separate network (the view equals a logits network: tested above).
    reference = seeded_network()
    score = InceptionScore(reference.layer_view("logits_unbiased"), splits=1, input_range=(-1, 1))
    kid = KernelInceptionDistance(reference, subsets=2, subset_size=2, input_range=(-1, 1))
    generated = sample_range(gan_sampler(model), 0, 4, seed=0, batch_size=2, device="cpu")
    real = CountingImages(4).images
    with shared_extraction():
        kid.update(real, real=True)
    with shared_extraction():
        score.update(generated, sample_ids=torch.arange(4))
        kid.update(generated, real=False, sample_ids=torch.arange(4))
    (record,) = callback.history
    assert record["is"] == pytest.approx(float(score.compute()[0]), rel=1e-6)
    assert record["kid"] == pytest.approx(float(kid.compute()[0]), rel=1e-5, abs=1e-9)

    with torch.inference_mode():
        callback._plan.generation._update_batch(generated[:3], torch.arange(3), None)
    assert images == [3]  # KID and IS of a batch: one pass of the network
    assert callback.metrics["kid"].extractor.module is network
