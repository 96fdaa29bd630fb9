"""The callback's built-in names for the newer suite: ``sfid``, ``precision_recall``, ``fd_infinity``,
``fd_dinov2``, ``cmmd`` log the values of the standalone metrics on the same samples, every metric on one encoder
reads one instance of it, configuration errors come before the first training step, and two gloo processes with
uneven shards (and an empty rank) log the one-process values, from a fresh real side and from the cache."""

from __future__ import annotations

import dataclasses
import inspect
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from lightning_genmetrics import (
    CLIPMaximumMeanDiscrepancy,
    FrechetInceptionDistance,
    FrechetInceptionDistanceInfinity,
    InceptionScore,
    KernelInceptionDistance,
    PrecisionRecallDensityCoverage,
    sample_range,
)
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.callbacks.real_side import RealSide
from lightning_genmetrics.callbacks.registry import build_builtin_metrics
from lightning_genmetrics.callbacks.sharding import shard_bounds
from lightning_genmetrics.features import CLIPImageEncoder, DINOv2Encoder, FIDInceptionV3, ImageBatch
from lightning_genmetrics.features import clip as clip_module
from lightning_genmetrics.features import dinov2 as dinov2_module
from lightning_genmetrics.features.preprocess import images_to_uint8
from tests.callbacks.support import CountingImages, TinyGAN, gan_sampler, make_trainer, stub_trainer, train_loader
from tests.ddp.harness import run_distributed
from tests.helpers import TinyFeatureNet

RANGE = (-1.0, 1.0)
NUM_REAL = 6
NUM_SAMPLES = 6
TINY_DINOV2 = dinov2_module.DINOv2Architecture("tiny", embed_dim=32, depth=1, num_heads=4, pos_grid=4)
TINY_CLIP = clip_module.CLIPVisionConfig(image_size=32, patch_size=16, width=64, layers=1, output_dim=8)


@pytest.fixture(autouse=True)
def _frugal_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def suite_callback(metrics: tuple[str, ...], metric_kwargs: dict, **kwargs: object) -> GenerativeMetricsCallback:
    return GenerativeMetricsCallback(
        gan_sampler,
        DataLoader(CountingImages(NUM_REAL), batch_size=NUM_REAL),
        metrics=metrics,
        num_samples=NUM_SAMPLES,
        batch_size=NUM_SAMPLES,
        log_images=False,
        log_figures=False,
        metric_kwargs=metric_kwargs,
        **kwargs,
    )


def fit(tmp_path: Path, callback: GenerativeMetricsCallback) -> tuple[TinyGAN, torch.Tensor, torch.Tensor]:
    """One epoch with one evaluation; the model, the real images and the samples the callback drew."""
    model = TinyGAN()
    make_trainer(tmp_path, [callback], max_epochs=1, logger=False).fit(model, train_loader())
    samples = sample_range(gan_sampler(model), 0, NUM_SAMPLES, seed=0, batch_size=NUM_SAMPLES, device="cpu")
    return model, CountingImages(NUM_REAL).images, samples


def standalone(metrics: dict[str, torch.nn.Module], real: torch.Tensor, samples: torch.Tensor) -> dict[str, float]:
    """The metrics fed the real images and the samples (one pass of each network, as any caller sharing a batch)."""
    real_batch, fake_batch = ImageBatch(real, input_range=RANGE), ImageBatch(samples, input_range=RANGE)
    ids = torch.arange(NUM_SAMPLES)
    values: dict[str, float] = {}
    for name, metric in metrics.items():
        parameters = inspect.signature(metric.update).parameters
        kwargs = {"sample_ids": ids} if "sample_ids" in parameters else {}
        if "real" in parameters:
            metric.update(real_batch, real=True)
            kwargs["real"] = False
        metric.update(fake_batch, **kwargs)
        values.update(MetricPlug(name, metric).flatten(metric.compute()))
    return values


def assert_logged(record: dict[str, float], expected: dict[str, float]) -> None:
    for key, value in expected.items():
        assert record[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_the_inception_suite_logs_the_standalone_values_from_one_network(
    tmp_path: Path, seeded_inception_weights: Path
) -> None:
    names = ("fid", "sfid", "precision_recall", "fd_infinity", "kid", "is")
    kwargs = {
        # The shared network's weights, given once: they serve every metric on it.
        "fid": {"weights_path": seeded_inception_weights, "verify_weights": False},
        "kid": {"subsets": 2, "subset_size": 3},
        "is": {"splits": 2},
        "fd_infinity": {"points": 2, "min_fraction": 0.34},  # 4 and 6 samples
    }
    callback = suite_callback(names, kwargs)
    _, real, samples = fit(tmp_path, callback)

    built = callback.metrics
    network = built["fid"].extractor.module
    assert isinstance(network, FIDInceptionV3)
    for name in ("kid", "precision_recall", "fd_infinity"):
        assert built[name].extractor.module is network, name
    for name, layer in (("is", "logits_unbiased"), ("sfid", "2023")):
        assert built[name].extractor.module.network is network, name
        assert built[name].extractor.module.layer == layer

    reference = FIDInceptionV3(weights_path=seeded_inception_weights, verify_weights=False)
    expected = standalone(
        {
            "fid": FrechetInceptionDistance(reference, input_range=RANGE),
            "sfid": FrechetInceptionDistance(reference.layer_view("2023"), input_range=RANGE),
            "precision_recall": PrecisionRecallDensityCoverage(reference, input_range=RANGE),
            "fd_infinity": FrechetInceptionDistanceInfinity(reference, points=2, min_fraction=0.34, input_range=RANGE),
            "kid": KernelInceptionDistance(reference, subsets=2, subset_size=3, input_range=RANGE),
            "is": InceptionScore(reference.layer_view("logits_unbiased"), splits=2, input_range=RANGE),
        },
        real,
        samples,
    )
    (record,) = callback.history
    assert {f"precision_recall/{key}" for key in ("precision", "recall", "density", "coverage")} <= set(record)
    assert_logged(record, expected)
    # "Best" follows each metric's own direction: PRDC's four values higher, the distances lower.
    assert built["precision_recall"].higher_is_better is True
    assert built["fd_infinity"].higher_is_better is False
    assert built["sfid"].higher_is_better is False
    assert {"sfid", "fd_infinity", "precision_recall/precision", "precision_recall/coverage"} <= set(callback.best)


def _seeded_weights(tmp_path: Path) -> tuple[Path, Path]:
    """Files of a tiny DINOv2 (bound to the name ``"dinov2-vits14"``) and a tiny CLIP (``"clip-vit-l14-336"``)."""
    torch.manual_seed(11)
    dinov2 = DINOv2Encoder("vits14", pretrained=False)
    clip = CLIPImageEncoder("ViT-L/14@336px", pretrained=False)
    dinov2_file, clip_file = tmp_path / "dinov2.pth", tmp_path / "clip.pth"
    torch.save(dinov2.state_dict(), dinov2_file)
    torch.save(clip.visual.state_dict(), clip_file)
    return dinov2_file, clip_file


@pytest.fixture
def tiny_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(dinov2_module.DINOV2_ARCHITECTURES, "vits14", TINY_DINOV2)
    monkeypatch.setitem(clip_module.CLIP_CONFIGS, "ViT-L/14@336px", TINY_CLIP)


def test_dinov2_and_clip_metrics_share_their_encoder_and_log_the_standalone_values(
    tmp_path: Path, tiny_encoders: None
) -> None:
    dinov2_file, clip_file = _seeded_weights(tmp_path)
    kwargs = {
        "fd_dinov2": {"feature": "dinov2-vits14", "weights_path": dinov2_file, "verify_weights": False},
        "precision_recall": {"feature": "dinov2-vits14", "k": 2},  # dgm-eval's encoder, the same instance
        "cmmd": {"weights_path": clip_file, "verify_weights": False},
    }
    callback = suite_callback(("fd_dinov2", "precision_recall", "cmmd"), kwargs)
    _, real, samples = fit(tmp_path, callback)
    built = callback.metrics
    encoder = built["fd_dinov2"].extractor.module
    assert isinstance(encoder, DINOv2Encoder)
    assert built["precision_recall"].extractor.module is encoder
    assert isinstance(built["cmmd"].extractor.module, CLIPImageEncoder)
    assert built["cmmd"].extractor.module.resize == "cmmd"  # CMMD's reference preprocessing, unit embeddings
    assert built["cmmd"].extractor.module.normalize

    dinov2 = DINOv2Encoder("vits14", weights_path=dinov2_file, verify_weights=False)
    clip = CLIPImageEncoder.from_name("clip-vit-l14-336", weights_path=clip_file, verify_weights=False)
    expected = standalone(
        {
            "fd_dinov2": FrechetInceptionDistance(dinov2, input_range=RANGE),
            "precision_recall": PrecisionRecallDensityCoverage(dinov2, k=2, input_range=RANGE),
            "cmmd": CLIPMaximumMeanDiscrepancy(clip, input_range=RANGE),
        },
        real,
        samples,
    )
    (record,) = callback.history
    assert_logged(record, expected)
    assert record["cmmd"] > 0
    assert built["cmmd"].higher_is_better is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ("fid",), "metric_kwargs": {"fid": {"feature": "dinov2-vitl14"}}}, "not given (its network"),
        ({"metrics": ("fd_dinov2",), "metric_kwargs": {"fd_dinov2": {"feature": "clip-vit-b32"}}}, "one of ['dinov2"),
        (
            {
                "metrics": ("fd_dinov2", "precision_recall"),
                "metric_kwargs": {
                    "fd_dinov2": {"weights_path": "a.pth"},
                    "precision_recall": {"feature": "dinov2-vitl14", "weights_path": "b.pth"},
                },
            },
            "read one encoder ('dinov2-vitl14') but give it different `weights_path`",
        ),
        (
            {
                "metrics": ("cmmd",),
                "feature_extractor": TinyFeatureNet(4),
                "metric_kwargs": {"cmmd": {"weights_path": "c.pth"}},
            },
            "reads the module given as `feature_extractor`",
        ),
        ({"metrics": ("cmmd",), "metric_kwargs": {"cmmd": {"antialias": True}}}, "takes no `antialias`"),
        ({"metrics": ("fd_infinity",), "num_samples": 8}, "`num_samples` must be at least 20"),
        ({"metrics": ("precision_recall",), "num_samples": 3}, "need at least 4 generated samples"),
    ],
)
def test_configuration_errors_are_raised_by_the_constructor(kwargs: dict, message: str) -> None:
    options = {"num_samples": 32, **kwargs}
    with pytest.raises(MisconfigurationException, match=re.escape(message)):
        GenerativeMetricsCallback(gan_sampler, DataLoader(CountingImages(8), batch_size=8), **options)


def test_metric_errors_and_missing_weights_are_raised_at_setup_before_training(
    tmp_path: Path, tiny_encoders: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(MisconfigurationException, match=r"Cannot build the metric 'cmmd'.*sigmaa"):
        build_builtin_metrics(("cmmd",), {"cmmd": TinyFeatureNet(4)}, {"cmmd": {"sigmaa": 3.0}}, RANGE)

    # Offline, no local copy: the encoder's message (which file, its SHA-256, its URL, where to put it).
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.delenv(dinov2_module.dinov2_weights_env_var("vits14"), raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}/dinov2_vits14_pretrain.pth"
    spec = dataclasses.replace(dinov2_module.DINOV2_WEIGHTS["vits14"], urls=(refused,))
    monkeypatch.setitem(dinov2_module.DINOV2_WEIGHTS, "vits14", spec)
    callback = suite_callback(("fd_dinov2",), {"fd_dinov2": {"feature": "dinov2-vits14"}})
    model = TinyGAN()
    with pytest.raises(MisconfigurationException, match="Could not download") as info:
        make_trainer(tmp_path, [callback], max_epochs=1, logger=False).fit(model, train_loader())
    assert spec.sha256 in str(info.value)
    assert model.draws == []  # not one training step


# Two gloo processes ---------------------------------------------------------------------------------------------

DDP_NAMES = ("sfid", "precision_recall", "cmmd", "fd_infinity", "fd_dinov2")
DDP_SAMPLES = 13  # 6 and 7 per rank


def _collectives(world_size: int) -> SimpleNamespace:
    if world_size == 1:
        return stub_trainer().strategy

    def broadcast(value: object, src: int = 0) -> object:
        box = [value]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def reduce(value: torch.Tensor, reduce_op: object = None) -> torch.Tensor:
        total = value.clone()
        dist.all_reduce(total)
        return total

    return SimpleNamespace(broadcast=broadcast, reduce=reduce)


def _evaluate(rank: int, world_size: int, cache_dir: Path, real_batch: int) -> dict[str, float]:
    """The new names on one tiny network: the real side (from the cache when it holds it), this rank's samples."""
    net = TinyFeatureNet(6, seed=5, declare=True)
    kwargs = {
        "fd_infinity": {"points": 3, "min_fraction": 0.4},
        "precision_recall": {"max_samples": 8, "k": 2},  # 10 real images: a bounded reservoir, merged
        "cmmd": {"max_samples": 8},
    }
    metrics = build_builtin_metrics(DDP_NAMES, dict.fromkeys(DDP_NAMES, net), kwargs, RANGE)
    plugs = [MetricPlug(name, metric) for name, metric in metrics.items()]
    trainer = stub_trainer(rank, world_size, strategy=_collectives(world_size))
    side = RealSide(DataLoader(CountingImages(10), batch_size=real_batch), None, RANGE, cache_dir, lambda t, m: None)
    side.prepare(trainer, torch.device("cpu"), plugs)
    generated = torch.rand(DDP_SAMPLES, 3, 8, 8, generator=torch.Generator().manual_seed(7)) * 2 - 1
    start, stop = shard_bounds(DDP_SAMPLES, rank, world_size)
    batch = ImageBatch(images_to_uint8(generated[start:stop], RANGE))
    values: dict[str, float] = {}
    for plug in plugs:
        plug.update_generated(batch, torch.arange(start, stop))
        values.update(plug.compute())
    side.cache_root(trainer, plugs)
    return values


def _runs(rank: int, world_size: int, cache_dir: str) -> dict[str, dict[str, float]]:
    cache = Path(cache_dir)
    return {
        # Batches of 4: rank 0 reads 6 real images, rank 1 four. Then one batch of 10: rank 1 reads none.
        "uneven": _evaluate(rank, world_size, cache, real_batch=4),
        "empty rank": _evaluate(rank, world_size, cache, real_batch=16),
        # The cache written by the first run: rank 0 reads it and sends the statistics, loads the reservoirs.
        "cached": _evaluate(rank, world_size, cache, real_batch=4),
    }


@pytest.mark.ddp
@pytest.mark.timeout(240)
def test_two_processes_give_the_one_process_values_of_the_new_names(tmp_path: Path) -> None:
    single = _runs(0, 1, str(tmp_path / "one"))
    ranks = run_distributed(_runs, world_size=2, timeout=200, cache_dir=str(tmp_path / "two"))
    assert ranks[0] == ranks[1]  # every rank computed, and got, the global values
    assert {key.split("/")[0] for key in single["uneven"]} == set(DDP_NAMES)
    for run, values in single.items():
        for key, value in values.items():
            # The same real images however they are batched, from the data or from the cache.
            assert value == pytest.approx(single["uneven"][key], rel=1e-9, abs=1e-12), (run, key)
            assert ranks[0][run][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (run, key)
    files = sorted(path.name.split("-")[1] for path in (tmp_path / "two").iterdir())
    # Two data fingerprints (batches of 4 and of 16): statistics and three reservoirs each.
    assert files == sorted(["statistics", "precision_recall", "cmmd"] * 2)
