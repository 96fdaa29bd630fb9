"""Any ``torchmetrics.Metric`` plugs into the callback: torchmetrics' own FID and KID, and a user's metric with a
dict result, log the values they give standalone on the same samples, on one process and on two."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics import Metric
from torchmetrics.image import FrechetInceptionDistance as TorchmetricsFID
from torchmetrics.image import KernelInceptionDistance as TorchmetricsKID

from lightning_genmetrics import CallableSampler, sample_range
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.features.preprocess import images_to_uint8
from tests.callbacks.support import (
    CountingImages,
    RecordingCallback,
    TinyGAN,
    gan_sampler,
    make_trainer,
    read_events,
    train_loader,
)
from tests.helpers import TinyFeatureNet

NUM_REAL = 16
NUM_SAMPLES = 16  # KID subsets of all 16 samples: a value that does not depend on torchmetrics' random subsets


class UInt8Features(TinyFeatureNet):
    """TinyFeatureNet on uint8 images, as torchmetrics hands a custom network the images it was given."""

    def __init__(self) -> None:
        super().__init__(8, seed=5, declare=True)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float() / 255)


class CountingFID(TorchmetricsFID):
    """torchmetrics' FID that counts the real images it is fed."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(feature=UInt8Features(), **kwargs)
        self.real_images = 0

    def update(self, imgs: Tensor, real: bool) -> None:
        self.real_images += imgs.shape[0] if real else 0
        super().update(imgs, real)


class CountingKID(TorchmetricsKID):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(feature=UInt8Features(), subsets=3, subset_size=NUM_SAMPLES, **kwargs)
        self.real_images = 0

    def update(self, imgs: Tensor, real: bool) -> None:
        self.real_images += imgs.shape[0] if real else 0
        super().update(imgs, real)


class PixelStatistics(Metric):
    """A user's metric: the mean pixel value and the fraction of saturated (0 or 255) pixels, as a dict."""

    higher_is_better: ClassVar[dict[str, bool]] = {"mean": True, "saturated": False}
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("saturated", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.seen: set[tuple[torch.dtype, int]] = set()

    def update(self, images: Tensor) -> None:
        self.seen.add((images.dtype, images.shape[1]))
        self.total += images.double().sum()
        self.saturated += ((images == 0) | (images == 255)).sum()
        self.count += images.numel()

    def compute(self) -> dict[str, Tensor]:
        return {"mean": self.total / self.count, "saturated": self.saturated.double() / self.count}


def plugged_metrics() -> tuple:
    return (
        "fid",
        {"tm_fid": CountingFID(), "tm_kid": CountingKID(reset_real_features=False), "pixels": PixelStatistics()},
    )


def standalone_values(model: TinyGAN) -> dict[str, float]:
    """The three metrics fed the callback's samples and real images directly."""
    samples = sample_range(gan_sampler(model), 0, NUM_SAMPLES, seed=0, batch_size=5, device="cpu")
    generated = images_to_uint8(samples, (-1, 1))
    real = images_to_uint8(CountingImages(NUM_REAL).images, (-1, 1))
    fid, kid, pixels = CountingFID(), CountingKID(), PixelStatistics()
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(generated, real=False)
    pixels.update(generated)
    kid_mean, kid_std = kid.compute()
    values = pixels.compute()
    return {
        "tm_fid": float(fid.compute()),
        "tm_kid": float(kid_mean),
        "tm_kid_std": float(kid_std),
        "pixels/mean": float(values["mean"]),
        "pixels/saturated": float(values["saturated"]),
    }


def make_plugged_callback(metrics: tuple, real_batch_size: int = 6, **kwargs: object) -> GenerativeMetricsCallback:
    options = {
        "feature_extractor": TinyFeatureNet(16, seed=5, declare=True),
        "num_samples": NUM_SAMPLES,
        "batch_size": 5,
        "num_images": 4,
        "log_figures": False,
    }
    options.update(kwargs)
    return options.pop("cls", GenerativeMetricsCallback)(
        gan_sampler, DataLoader(CountingImages(NUM_REAL), batch_size=real_batch_size), metrics=metrics, **options
    )


def test_plugged_metrics_log_their_standalone_values_and_read_the_real_side_once(tmp_path: Path) -> None:
    metrics = plugged_metrics()
    callback = make_plugged_callback(metrics)
    model = TinyGAN(lr=0.0)  # the same generator at both evaluations: each must give the standalone values
    trainer = make_trainer(tmp_path, [callback], max_epochs=2)
    trainer.fit(model, train_loader())

    expected = standalone_values(model)
    assert len(callback.history) == 2
    for record in callback.history:
        assert record["tm_fid"] == pytest.approx(expected["tm_fid"], rel=1e-6)
        assert record["tm_kid"] == pytest.approx(expected["tm_kid"], rel=1e-4, abs=1e-6)
        # Rounding only: every subset holds all the samples.
        assert record["tm_kid_std"] == pytest.approx(expected["tm_kid_std"], abs=1e-4)
        assert record["pixels/mean"] == pytest.approx(expected["pixels/mean"], rel=1e-12)
        assert record["pixels/saturated"] == pytest.approx(expected["pixels/saturated"], rel=1e-12)
        assert record["fid"] > 0  # the built-in beside them
    assert expected["tm_fid"] > 0.1  # values a mistake would change
    assert 0 < expected["pixels/saturated"] < 1
    # Fed once over two evaluations, whether reset() keeps the real side (KID here) or drops it (FID).
    plugged = metrics[1]
    assert plugged["tm_fid"].real_images == plugged["tm_kid"].real_images == NUM_REAL
    assert plugged["pixels"].seen == {(torch.uint8, 3)}
    # "best" follows each value's own direction.
    assert callback.best["pixels/saturated"] == expected["pixels/saturated"]
    assert "tm_kid_std" not in callback.best

    events = read_events(trainer.logger.log_dir)
    for key in ("tm_fid", "tm_kid", "tm_kid_std", "pixels/mean", "pixels/saturated", "fid"):
        values = [s.value for s in events.Scalars(f"gen/{key}")]
        assert values == pytest.approx([record[key] for record in callback.history], rel=1e-6), key


def test_gray_samples_reach_a_metric_as_three_channel_uint8(tmp_path: Path) -> None:
    def gray(num_samples: int, *, generator: object, device: object, labels: object = None) -> Tensor:
        return torch.rand(num_samples, 1, 8, 8, generator=generator)

    pixels = PixelStatistics()
    sampler = CallableSampler(gray, output_range=(0, 1))
    callback = GenerativeMetricsCallback(sampler, None, metrics={"pixels": pixels}, num_samples=6, batch_size=4)
    make_trainer(tmp_path, [callback], max_epochs=1, logger=False).fit(TinyGAN(), train_loader())
    assert pixels.seen == {(torch.uint8, 3)}
    samples = images_to_uint8(sample_range(sampler, 0, 6, seed=0, batch_size=4, device="cpu"), (0, 1))
    assert callback.history[0]["pixels/mean"] == pytest.approx(float(samples.double().mean()), rel=1e-12)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"": PixelStatistics()}, "`metrics` to be"),
        ({"pixels": "PixelStatistics"}, "`metrics` to be"),
        (("fid", {"fid": PixelStatistics()}), "distinct"),
        (
            {"tm_kid": TorchmetricsKID(feature=UInt8Features(), subset_size=100)},
            "Metric 'tm_kid': `subset_size` (100) exceeds `num_samples`",
        ),
    ],
)
def test_plugged_metrics_are_checked_at_construction(metrics: object, message: str) -> None:
    with pytest.raises(MisconfigurationException, match=re.escape(message)):
        make_plugged_callback(metrics)


def test_a_metric_taking_real_images_needs_them(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationException, match=r"`real` to be real images or statistics for \['tm_fid'\]"):
        GenerativeMetricsCallback(gan_sampler, None, metrics={"tm_fid": CountingFID()})


# Two processes --------------------------------------------------------------------------------------------------


def _recording(out_dir: Path) -> RecordingCallback:
    # Two real and two generated batches per rank: torchmetrics' KID gathers its list states one update at a time
    # (`dist_reduce_fx=None`), so ranks that updated it a different number of times would not match.
    callback = make_plugged_callback(plugged_metrics(), real_batch_size=4, batch_size=4, cls=RecordingCallback)
    callback.out_dir = out_dir
    return callback


@pytest.mark.ddp
@pytest.mark.timeout(240)
def test_two_processes_log_the_standalone_values(tmp_path: Path) -> None:
    for world_size in (1, 2):
        options = {"strategy": "ddp_spawn", "devices": 2} if world_size == 2 else {}
        trainer = make_trainer(
            tmp_path / str(world_size), [_recording(tmp_path)], max_epochs=1, logger=False, **options
        )
        trainer.fit(TinyGAN(lr=0.0), train_loader())
    expected = standalone_values(TinyGAN(lr=0.0))
    histories = [torch.load(tmp_path / f"gen-rank{rank}-of-2.pt", weights_only=False)["history"] for rank in (0, 1)]
    single = torch.load(tmp_path / "gen-rank0-of-1.pt", weights_only=False)["history"]
    assert histories[0] == histories[1]
    for record in (single[0], histories[0][0]):
        assert record["tm_fid"] == pytest.approx(expected["tm_fid"], rel=1e-6)
        assert record["tm_kid"] == pytest.approx(expected["tm_kid"], rel=1e-4, abs=1e-6)
        assert record["pixels/mean"] == pytest.approx(expected["pixels/mean"], rel=1e-12)
        assert record["pixels/saturated"] == pytest.approx(expected["pixels/saturated"], rel=1e-12)
    assert histories[0][0]["fid"] == pytest.approx(single[0]["fid"], rel=1e-7)


class FailingAtCompute(PixelStatistics):
    """A metric whose ``compute`` raises (a fit without enough samples, a bug in a user's metric)."""

    def compute(self) -> dict[str, Tensor]:
        raise RuntimeError("cannot fit a line through one point")


def test_a_metric_whose_compute_raises_logs_nan_and_training_goes_on(tmp_path: Path) -> None:
    callback = make_plugged_callback(("fid", {"broken": FailingAtCompute(), "pixels": PixelStatistics()}))
    trainer = make_trainer(tmp_path, [callback], max_epochs=2)
    with pytest.warns(UserWarning, match=r"metric 'broken' could not be computed.*cannot fit a line.*gen/broken"):
        trainer.fit(TinyGAN(lr=0.0), train_loader())

    assert trainer.current_epoch == 2  # the run was not ended by the metric
    assert len(callback.history) == 2
    for record in callback.history:
        assert math.isnan(record["broken"])
        # The other metrics are logged as usual.
        assert record["fid"] > 0
        assert 0 < record["pixels/mean"] < 255
