"""GenerativeMetricsCallback in real (tiny, CPU) Trainer runs: cadence, logging, checkpoints, cache, resume."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import FrechetInceptionDistance, InceptionScore, sample_range
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.callbacks.sharding import shard_bounds
from lightning_genmetrics.stats import load_statistics
from tests.callbacks.support import (
    NUM_SAMPLES,
    CountingImages,
    TinyDiffusion,
    TinyGAN,
    TinyGANWithValidation,
    gan_sampler,
    guidance_sweep_callback,
    make_trainer,
    read_events,
    train_loader,
)
from tests.helpers import TinyFeatureNet

KWARGS = {"is": {"splits": 2}, "kid": {"subsets": 3, "subset_size": 8}}


def make_callback(real: object, **kwargs: object) -> GenerativeMetricsCallback:
    options = {
        "metrics": ("fid", "is", "kid"),
        "feature_extractor": TinyFeatureNet(16, seed=5, declare=True),
        "num_samples": NUM_SAMPLES,
        "batch_size": 10,
        "num_images": 4,
    }
    options.update(kwargs)
    options["metric_kwargs"] = {name: KWARGS[name] for name in options["metrics"] if name in KWARGS}
    return GenerativeMetricsCallback(gan_sampler, real, **options)


@pytest.mark.parametrize(
    ("kwargs", "value"),
    [
        ({"metrics": ("fid", "psnr")}, "psnr"),
        ({"metrics": "fid"}, "'fid'"),
        ({"every_n_epochs": 0}, "0"),
        ({"num_samples": 1}, "1"),
        ({"batch_size": 2.5}, "2.5"),
        ({"log_images": "yes"}, "'yes'"),
        ({"feature_extractor": "inception"}, "'inception'"),
        ({"real_input_range": (0, 255)}, "(0, 255)"),
        ({"metric_kwargs": {"kid": {"subset_size": 100}}}, "100"),
        ({"metric_kwargs": {"fid": {"input_range": (0, 1)}}}, "input_range"),
        ({"sampler": 3}, "3"),
        ({"guidance": [1.0, -2.0]}, "[1.0, -2.0]"),
        ({"guidance": []}, "`guidance` to be None or a non-empty sequence"),
    ],
)
def test_invalid_configuration_names_the_value(kwargs: dict, value: str) -> None:
    real = DataLoader(CountingImages(), batch_size=4)
    options = {"metrics": ("fid", "kid"), "num_samples": 16, "metric_kwargs": {"kid": {"subset_size": 8}}}
    options.update(kwargs)
    sampler = options.pop("sampler", gan_sampler)
    with pytest.raises(MisconfigurationException, match=re.escape(value)):
        GenerativeMetricsCallback(sampler, real, **options)


def test_invalid_real_sources(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationException, match="shuffle"):
        GenerativeMetricsCallback(gan_sampler, DataLoader(CountingImages(), batch_size=4, shuffle=True))
    with pytest.raises(MisconfigurationException, match=r"missing\.npz"):
        GenerativeMetricsCallback(gan_sampler, tmp_path / "missing.npz")
    fid = FrechetInceptionDistance(TinyFeatureNet(16, seed=5, declare=True), feature_input="float")
    fid.update(torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8), real=True)
    path = fid.save_real_statistics(tmp_path / "real.npz")
    with pytest.raises(MisconfigurationException, match=re.escape("Metric 'kid' needs real images, not statistics")):
        GenerativeMetricsCallback(gan_sampler, path, metrics=("fid", "kid"))


def test_shards_cover_every_sample_once() -> None:
    for total in (2, 7, 24):
        for world in (1, 2, 3, 5):
            indices = [i for rank in range(world) for i in range(*shard_bounds(total, rank, world))]
            assert indices == list(range(total))


def test_logs_scalars_and_images_and_checkpoint_monitors_fid(tmp_path: Path) -> None:
    dataset = CountingImages()
    callback = make_callback(DataLoader(dataset, batch_size=6), cache_dir=tmp_path / "cache")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="gen/fid", mode="min", save_top_k=1)
    model = TinyGAN()
    trainer = make_trainer(tmp_path, [callback, checkpoint], max_epochs=3)
    trainer.fit(model, train_loader())

    history = callback.history
    assert [record["epoch"] for record in history] == [0, 1, 2]
    assert [record["global_step"] for record in history] == [2, 4, 6]
    # Read once, at the first evaluation (after the first batch's check at setup): later evaluations use the kept
    # statistics and KID features.
    assert dataset.reads == 6 + len(dataset)
    fids = [record["fid"] for record in history]
    assert len(set(fids)) == 3
    assert checkpoint.best_model_score.item() == pytest.approx(min(fids), rel=1e-6)
    assert callback.best["fid"] == min(fids)
    assert callback.best["is"] == max(record["is"] for record in history)
    assert model.training
    assert all(model.training_flags)

    events = read_events(trainer.logger.log_dir)
    for key in ("fid", "is", "is_std", "kid", "kid_std", "eval_seconds"):
        scalars = events.Scalars(f"gen/{key}")
        assert [s.step for s in scalars] == [1, 3, 5], key
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in history], rel=1e-6), key
    images = events.Images("gen/samples")
    assert [image.step for image in images] == [1, 3, 5]
    assert (images[0].width, images[0].height) == (2 * 9 + 1, 2 * 9 + 1)

    # The last value is FID/IS/KID of the final generator, computed here without the callback.
    net = TinyFeatureNet(16, seed=5, declare=True)
    fid = FrechetInceptionDistance(net, input_range=(-1, 1), feature_input="float")
    inception = InceptionScore(net, splits=2, input_range=(-1, 1), feature_input="float")
    fid.update(dataset.images, real=True)
    samples = sample_range(gan_sampler(model), 0, NUM_SAMPLES, seed=0, batch_size=10, device="cpu")
    fid.update(samples, real=False)
    inception.update(samples, sample_ids=torch.arange(NUM_SAMPLES))
    # Up to rounding: the callback compares with saved statistics, this metric with its running moments.
    assert history[-1]["fid"] == pytest.approx(float(fid.compute()), rel=1e-6)
    assert history[-1]["is"] == pytest.approx(float(inception.compute()[0]), rel=1e-9)

    # The statistics are cached on disk under the key the callback keeps.
    cached = load_statistics(tmp_path / "cache" / f"real-statistics-{callback.cache_key}.npz")
    assert cached.provenance.num_samples == len(dataset)
    assert cached.provenance.extractor == "TinyFeatureNet"


def test_with_a_validation_loop_checkpoint_reads_the_value_after_validation(tmp_path: Path) -> None:
    callback = make_callback(DataLoader(CountingImages(), batch_size=8), metrics=("fid",))
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="gen/fid", mode="min", save_top_k=1)
    trainer = make_trainer(tmp_path, [callback, checkpoint], max_epochs=2)
    trainer.fit(TinyGANWithValidation(), train_loader(), DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4))
    fids = [record["fid"] for record in callback.history]
    assert [record["epoch"] for record in callback.history] == [0, 1]
    assert checkpoint.best_model_score.item() == pytest.approx(min(fids), rel=1e-6)
    assert checkpoint.best_model_path.endswith(
        f"epoch={fids.index(min(fids))}-step={2 * fids.index(min(fids)) + 2}.ckpt"
    )
    events = read_events(trainer.logger.log_dir)
    assert [s.step for s in events.Scalars("gen/fid")] == [1, 3]
    assert [s.step for s in events.Scalars("val_loss")] == [1, 3]
    assert [image.step for image in events.Images("gen/samples")] == [1, 3]


def test_sampling_leaves_rng_and_train_mode_untouched(tmp_path: Path) -> None:
    runs = []
    for with_callback in (False, True):
        # Built before seeding: constructing the feature net draws its default init from the global RNG.
        callbacks = [make_callback(DataLoader(CountingImages(), batch_size=8))] if with_callback else []
        torch.manual_seed(123)
        model = TinyGAN()
        make_trainer(tmp_path / str(with_callback), callbacks, max_epochs=2).fit(model, train_loader())
        runs.append((model.draws, torch.get_rng_state()))
        assert all(model.training_flags)
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_cadence_skips_off_epochs_and_fast_dev_run(tmp_path: Path) -> None:
    callback = make_callback(
        DataLoader(CountingImages(), batch_size=8), metrics=("fid",), every_n_epochs=2, evaluate_on_last_epoch=True
    )
    make_trainer(tmp_path / "a", [callback], max_epochs=3).fit(TinyGAN(), train_loader())
    assert [record["epoch"] for record in callback.history] == [1, 2]

    dataset = CountingImages()
    callback = make_callback(DataLoader(dataset, batch_size=8), metrics=("fid",))
    make_trainer(tmp_path / "b", [callback], max_epochs=3, fast_dev_run=True, logger=None).fit(
        TinyGAN(), train_loader()
    )
    assert callback.history == []
    assert dataset.reads == 8  # the first batch, checked at setup; nothing is evaluated


def test_resume_continues_identically_and_reuses_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    callback = make_callback(DataLoader(CountingImages(), batch_size=8), metrics=("fid", "is"), cache_dir=cache)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    make_trainer(tmp_path / "straight", [callback, checkpoint], max_epochs=3).fit(TinyGAN(), train_loader())
    straight = callback.history

    for refingerprint in (True, False):
        dataset = CountingImages()
        resumed = make_callback(
            DataLoader(dataset, batch_size=8),
            metrics=("fid", "is"),
            cache_dir=cache,
            refingerprint_on_resume=refingerprint,
        )
        trainer = make_trainer(
            tmp_path / f"resumed{refingerprint}", [resumed], max_epochs=3, enable_checkpointing=False
        )
        trainer.fit(TinyGAN(), train_loader(), ckpt_path=tmp_path / "ckpt" / "epoch=1-step=4.ckpt")

        # The first batch is checked at setup. By default the data are then fingerprinted again (read and hashed,
        # nothing extracted) to find the statistics in the cache; the opt-out trusts the checkpoint's fingerprint.
        assert dataset.reads == 8 + (len(dataset) if refingerprint else 0)
        assert resumed.cache_key == callback.cache_key
        assert len(resumed.history) == 3
        for before, after in zip(straight, resumed.history, strict=True):
            assert before["stage"] == after["stage"] == "fit"
            assert {k: v for k, v in before.items() if "seconds" not in k and k != "stage"} == pytest.approx(
                {k: v for k, v in after.items() if "seconds" not in k and k != "stage"}, rel=1e-12
            )
        assert resumed.best == pytest.approx(callback.best, rel=1e-12)


def test_statistics_file_as_real_gives_the_dataloader_value(tmp_path: Path) -> None:
    callback = make_callback(DataLoader(CountingImages(), batch_size=8), metrics=("fid",), cache_dir=tmp_path)
    make_trainer(tmp_path / "a", [callback], max_epochs=1).fit(TinyGAN(), train_loader())
    path = tmp_path / f"real-statistics-{callback.cache_key}.npz"

    from_file = make_callback(os.fspath(path), metrics=("fid", "is"))
    make_trainer(tmp_path / "b", [from_file], max_epochs=1).fit(TinyGAN(), train_loader())
    assert from_file.history[0]["fid"] == pytest.approx(callback.history[0]["fid"], rel=1e-9)


def test_a_csv_logger_gets_scalars_and_the_sample_grids_as_png_files(tmp_path: Path) -> None:
    from PIL import Image

    callback = make_callback(DataLoader(CountingImages(), batch_size=8), metrics=("fid",))
    trainer = make_trainer(tmp_path, [callback], max_epochs=2, logger=CSVLogger(tmp_path, name="csv"))
    trainer.fit(TinyGAN(), train_loader())
    grids = sorted((Path(trainer.logger.log_dir) / "images" / "gen").glob("samples_step*.png"))
    assert len(grids) == 2  # one per evaluation, read back as images
    for grid in grids:
        with Image.open(grid) as image:
            assert image.mode == "RGB"
            assert min(image.size) > 8
    metrics_csv = (Path(trainer.logger.log_dir) / "metrics.csv").read_text()
    assert "gen/fid" in metrics_csv
    assert math.isfinite(trainer.callback_metrics["gen/fid"].item())


def test_guidance_sweep_logs_each_strength_and_the_best(tmp_path: Path) -> None:
    callback = guidance_sweep_callback()
    trainer = make_trainer(tmp_path, [callback], max_epochs=1)
    trainer.fit(TinyDiffusion(), train_loader())

    (record,) = callback.history
    assert record["fid/w=0"] != record["fid/w=3"]
    best = min((0.0, 3.0), key=lambda w: record[f"fid/w={w:g}"])
    assert record["best_w"] == best
    assert record["fid"] == record[f"fid/w={best:g}"]
    assert record["is"] == record[f"is/w={best:g}"]
    events = read_events(trainer.logger.log_dir)
    for key in ("fid/w=0", "fid/w=3", "is/w=0", "is/w=3", "best_w", "fid"):
        assert [s.value for s in events.Scalars(f"gen/{key}")] == pytest.approx([record[key]], rel=1e-6), key
    assert {"gen/samples/w=0", "gen/samples/w=3"} <= set(events.Tags()["images"])


def test_guidance_sweep_needs_a_guided_diffusion_sampler(tmp_path: Path) -> None:
    callback = make_callback(DataLoader(CountingImages(), batch_size=8), metrics=("fid",), guidance=[0.0, 1.0])
    with pytest.raises(MisconfigurationException, match="needs a guided sampler"):
        make_trainer(tmp_path, [callback], max_epochs=1).fit(TinyGAN(), train_loader())
