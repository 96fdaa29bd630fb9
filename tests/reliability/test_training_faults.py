"""Fault injection with real Trainers: a metric-side fault never ends the run, a configuration error ends it
before the first training step, and no stale or partial number is logged."""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from packaging.version import Version
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from lightning_genmetrics import CallableSampler, GANSampler
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.callbacks.sharding import RankShare, known_sample_count
from lightning_genmetrics.samplers.base import NonFiniteSamplesError, sample_seed
from lightning_genmetrics.stats import load_statistics, save_statistics
from tests.helpers import ReadCountingImages as Images
from tests.helpers import TinyFeatureNet

LATENT = 6
NUM_SAMPLES = 24
KWARGS = {"is": {"splits": 2}, "kid": {"subsets": 3, "subset_size": 8}}


class Generator(LightningModule):
    """A tiny GAN generator regressed onto fixed images; ``poison_after_epoch`` turns its weights NaN after that
    epoch (the module's own hook runs after the callbacks' at the end of an epoch)."""

    def __init__(self, poison_after_epoch: int | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.net = nn.Sequential(nn.Linear(LATENT, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
        with torch.no_grad():
            for parameter in self.net.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        self.register_buffer("z", torch.randn(8, LATENT, generator=generator))
        self.poison_after_epoch = poison_after_epoch
        self.steps = 0

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.steps += 1
        images = batch[0]
        return ((self.net(self.z[: images.shape[0]]) - images) ** 2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", batch[0].mean())

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("test_loss", batch[0].mean())

    def on_train_epoch_end(self) -> None:
        if self.current_epoch == self.poison_after_epoch:
            with torch.no_grad():
                self.net[0].weight.fill_(math.nan)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def generator_sampler(pl_module: Generator) -> GANSampler:
    return GANSampler(pl_module.net, latent_shape=(LATENT,))


def train_loader() -> DataLoader:
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8
    return DataLoader(TensorDataset(images), batch_size=8)


def make_callback(real: object, metrics: tuple[str, ...] = ("fid", "is", "kid"), **kwargs: object):
    options = {
        "feature_extractor": TinyFeatureNet(16, seed=5, declare=True),
        "num_samples": NUM_SAMPLES,
        "batch_size": 10,
        "num_images": 4,
        "log_figures": False,
        "metric_kwargs": {name: KWARGS[name] for name in metrics if name in KWARGS},
    }
    options.update(kwargs)
    return GenerativeMetricsCallback(options.pop("sampler", generator_sampler), real, metrics=metrics, **options)


def make_trainer(root: Path, callbacks: list, max_epochs: int = 2, **kwargs: object) -> Trainer:
    options = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "devices": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "limit_test_batches": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
        "num_sanity_val_steps": 0,
    }
    options.update(kwargs)
    return Trainer(callbacks=callbacks, default_root_dir=root, **options)


def messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(warning.message) for warning in caught]


# Non-finite samples ---------------------------------------------------------------------------------------------


def test_a_model_that_turns_nan_logs_nan_and_training_goes_on(tmp_path: Path) -> None:
    callback = make_callback(DataLoader(Images(), batch_size=8))
    model = Generator(poison_after_epoch=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path, [callback], max_epochs=3).fit(model, train_loader())
    assert model.steps == 6  # all three epochs trained
    first, *later = callback.history
    assert all(math.isfinite(first[key]) for key in ("fid", "is", "is_std", "kid", "kid_std"))
    for record in later:
        assert all(math.isnan(record[key]) for key in ("fid", "is", "is_std", "kid", "kid_std")), record
    notes = [m for m in messages(caught) if "not finite" in m]
    assert len(notes) == 2
    assert f"{NUM_SAMPLES} of the {NUM_SAMPLES} generated samples are not finite" in notes[0]
    assert "'gen/fid'" in notes[0]
    assert "on_nonfinite='raise'" in notes[0]
    assert callback.best["fid"] == first["fid"]  # NaN never becomes "best"


def test_one_nonfinite_sample_is_counted_and_early_stopping_sees_nan(tmp_path: Path) -> None:
    poisoned = {"on": False}
    marked_seed = sample_seed(0, 5)  # sample 5 of the stream: each sample has its own seeded generator

    def images(num_samples: int, *, generator: list, device: torch.device, labels: object = None) -> torch.Tensor:
        out = torch.stack([torch.rand(3, 8, 8, generator=g) for g in generator])
        for row, g in enumerate(generator):
            if poisoned["on"] and g.initial_seed() == marked_seed:
                out[row, 0, 0, 0] = math.inf
        return out

    class Model(Generator):
        def on_train_epoch_end(self) -> None:
            poisoned["on"] = True  # from the second evaluation on

    callback = make_callback(
        DataLoader(Images(), batch_size=8),
        metrics=("fid",),
        sampler=CallableSampler(images, output_range=(0, 1), accepts_generator_list=True),
        real_input_range=(-1, 1),
    )
    stopper = EarlyStopping(monitor="gen/fid", check_finite=True, patience=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = make_trainer(tmp_path, [callback, stopper], max_epochs=4)
        trainer.fit(Model(), train_loader())
    assert [math.isnan(record["fid"]) for record in callback.history] == [False, True]
    assert stopper.stopped_epoch == 1  # stopped as on any NaN metric
    assert any(f"1 of the {NUM_SAMPLES} generated samples are not finite" in m for m in messages(caught))


def test_on_nonfinite_raise_keeps_the_error(tmp_path: Path) -> None:
    callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid",), on_nonfinite="raise")
    with pytest.raises(NonFiniteSamplesError, match="in 10 of 10 samples"):
        make_trainer(tmp_path, [callback], max_epochs=3).fit(Generator(poison_after_epoch=0), train_loader())


def test_a_sampler_that_checks_nothing_is_checked_by_the_callback(tmp_path: Path) -> None:
    class Unchecked:
        output_range = (0.0, 1.0)

        def __call__(self, num_samples: int, *, generator: list, device: torch.device, labels=None) -> torch.Tensor:
            out = torch.stack([torch.rand(3, 8, 8, generator=g) for g in generator])
            out[::4] = math.nan  # samples 0, 4, 8, ... of each batch of 10
            return out

    callback = make_callback(
        DataLoader(Images(), batch_size=8), metrics=("fid", "is"), sampler=Unchecked(), real_input_range=(-1, 1)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path, [callback], max_epochs=1).fit(Generator(), train_loader())
    assert math.isnan(callback.history[0]["fid"])
    assert math.isnan(callback.history[0]["is_std"])
    # Batches of 10, 10 and 4 samples: 3 + 3 + 1 rows poisoned.
    assert any(f"7 of the {NUM_SAMPLES} generated samples" in m for m in messages(caught))


def test_nonfinite_reconstructions_log_nan(tmp_path: Path) -> None:
    def broken(pl_module: LightningModule, images: torch.Tensor) -> torch.Tensor:
        out = images.clone()
        out[0] = math.nan
        return out

    data = DataLoader(TensorDataset(torch.rand(6, 3, 16, 16)), batch_size=3)
    callback = GenerativeMetricsCallback(
        generator_sampler,
        None,
        metrics=(),
        reconstruct=broken,
        reconstruction_data=data,
        real_input_range=(0, 1),
        log_images=False,
        metric_kwargs={"ssim": {"gaussian_kernel": False, "kernel_size": 3}},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path, [callback], max_epochs=1).fit(Generator(), train_loader())
    record = callback.history[0]
    assert math.isnan(record["recon/ssim"])
    assert math.isnan(record["recon/psnr"])
    assert any("2 reconstructions are not finite" in m for m in messages(caught))


# Cache faults ---------------------------------------------------------------------------------------------------


def _cache_run(root: Path, cache: Path, name: str) -> GenerativeMetricsCallback:
    callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid", "kid"), cache_dir=cache)
    torch.manual_seed(0)
    make_trainer(root / name, [callback], max_epochs=1).fit(Generator(), train_loader())
    return callback


@pytest.mark.parametrize("damage", ["empty", "garbage", "npy", "truncated"])
def test_damaged_cache_files_are_warned_about_recomputed_and_rewritten(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache"
    first = _cache_run(tmp_path, cache, "first")
    files = sorted(cache.glob("real-*.npz"))
    assert [path.name.split("-")[1] for path in files] == ["kid", "statistics"]
    for path in files:
        if damage == "empty":
            path.write_bytes(b"")
        elif damage == "garbage":
            path.write_bytes(os.urandom(300))
        elif damage == "npy":
            with open(path, "wb") as file:
                np.save(file, np.arange(5.0))
        else:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = _cache_run(tmp_path, cache, "second")
    notes = [m for m in messages(caught) if "ignores the cached" in m]
    # The covariance's root lives in the statistics file: recomputed with them, and written again.
    for path in files:
        assert any(str(path) in note for note in notes), (path, notes)
    assert second.history[0]["fid"] == pytest.approx(first.history[0]["fid"], rel=1e-12)
    assert second.history[0]["kid"] == pytest.approx(first.history[0]["kid"], rel=1e-12, abs=1e-15)
    # Rewritten: a third run reads both without a word.
    assert load_statistics(next(cache.glob("real-statistics-*.npz"))).sigma_root is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        third = _cache_run(tmp_path, cache, "third")
    assert not [m for m in messages(caught) if "cache" in m], messages(caught)
    assert third.history[0]["fid"] == pytest.approx(first.history[0]["fid"], rel=1e-12)
    assert not list(cache.glob("*.tmp*"))


def test_a_wrong_covariance_root_is_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _cache_run(tmp_path, cache, "first")
    path = next(cache.glob("real-statistics-*.npz"))
    statistics = load_statistics(path)
    good = statistics.sigma_root
    save_statistics(path, dataclasses.replace(statistics, sigma_root=good * 2))  # a valid file with the wrong root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = _cache_run(tmp_path, cache, "second")
    assert any("square root" in m and str(path) in m for m in messages(caught))
    assert second.history[0]["fid"] == pytest.approx(first.history[0]["fid"], rel=1e-12)
    assert torch.equal(load_statistics(path).sigma_root, good)


def _failing_writes(monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """Every ``os.fsync`` fails with ``error``: the durable write of a cache file reports it (as a full disk
    reports ENOSPC, or a file system remounted read-only EROFS, when the data reach it)."""

    def fail(fd: int) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "fsync", fail)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_unwritable_cache_warns_once_per_file_and_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    cache = tmp_path / "cache"
    _failing_writes(monkeypatch, error)
    callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid", "kid"), cache_dir=cache)
    model = Generator()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path, [callback], max_epochs=2).fit(model, train_loader())
    assert model.steps == 4
    assert len(callback.history) == 2
    assert all(math.isfinite(record["fid"]) for record in callback.history)
    notes = [m for m in messages(caught) if "cannot write the cache file" in m]
    assert len(notes) == 2  # statistics (then with their root), KID reservoir: one warning each
    assert all(os.strerror(error) in note for note in notes)
    assert not [path for path in cache.iterdir() if path.is_file()]  # nothing written, no temporary left
    reference = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid", "kid"))
    monkeypatch.undo()
    make_trainer(tmp_path / "reference", [reference], max_epochs=2).fit(Generator(), train_loader())
    assert [r["fid"] for r in callback.history] == pytest.approx([r["fid"] for r in reference.history], rel=1e-12)


def test_cache_dir_below_a_regular_file_warns_and_training_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid",), cache_dir=blocker / "cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path, [callback], max_epochs=1).fit(Generator(), train_loader())
    assert math.isfinite(callback.history[0]["fid"])
    # The statistics file, written once, then again with the covariance's root: one warning.
    assert len([m for m in messages(caught) if "cannot write the cache file" in m]) == 1


# Configuration errors before the first step ---------------------------------------------------------------------


class NoImages(IterableDataset):
    def __iter__(self):
        return iter(())


@pytest.mark.parametrize(
    ("real", "kwargs", "message"),
    [
        (DataLoader(TensorDataset(torch.rand(0, 3, 8, 8)), batch_size=4), {}, "empty DataLoader"),
        (DataLoader(NoImages(), batch_size=4), {}, "yields no batch"),
        (
            DataLoader(TensorDataset(torch.rand(1, 3, 8, 8)), batch_size=4),
            {},
            "at least 2 images, got a DataLoader of 1",
        ),
        (DataLoader(Images(6), batch_size=4), {"metrics": ("fid", "kid")}, "`subset_size` (8) exceeds the 6 real"),
        (DataLoader(TensorDataset(torch.rand(8, 3, 8, 8) * 3), batch_size=4), {}, "first batch of `real`"),
        (
            DataLoader(TensorDataset(torch.full((8, 3, 8, 8), math.nan)), batch_size=4),
            {"real_input_range": (0, 1)},
            "first batch of `real`",
        ),
    ],
)
def test_configuration_errors_end_the_run_before_the_first_step(
    tmp_path: Path, real: DataLoader, kwargs: dict, message: str
) -> None:
    metrics = kwargs.pop("metrics", ("fid",))
    callback = make_callback(real, metrics=metrics, **kwargs)
    model = Generator()
    with pytest.raises(MisconfigurationException, match=re.escape(message)):
        make_trainer(tmp_path, [callback]).fit(model, train_loader())
    assert model.steps == 0


def test_cache_dir_that_is_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    path.write_text("")
    model = Generator()
    callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid",), cache_dir=path)
    with pytest.raises(MisconfigurationException, match="`cache_dir` to be a directory"):
        make_trainer(tmp_path, [callback]).fit(model, train_loader())
    assert model.steps == 0


# Resumed with changed data --------------------------------------------------------------------------------------


def test_a_run_resumed_on_changed_data_logs_the_current_datas_value(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid", "kid"), cache_dir=cache)
    make_trainer(tmp_path / "first", [callback, checkpoint], max_epochs=1).fit(Generator(), train_loader())
    ckpt = tmp_path / "ckpt" / "epoch=0-step=2.ckpt"

    fixed = Images()
    fixed.images[3] = -fixed.images[3]  # a preprocessing fix changes one image
    results = {}
    for name, cache_dir in (("cached", cache), ("uncached", None)):
        resumed = make_callback(DataLoader(fixed, batch_size=8), metrics=("fid", "kid"), cache_dir=cache_dir)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer = make_trainer(tmp_path / name, [resumed], max_epochs=2, enable_checkpointing=False)
            trainer.fit(Generator(), train_loader(), ckpt_path=ckpt)
        results[name] = resumed.history[-1]
        assert any("differ from those of the checkpoint" in m for m in messages(caught)), name
    assert results["cached"]["fid"] == pytest.approx(results["uncached"]["fid"], rel=1e-12)
    assert results["cached"]["kid"] == pytest.approx(results["uncached"]["kid"], rel=1e-12, abs=1e-15)
    stale = make_callback(
        DataLoader(fixed, batch_size=8),
        metrics=("fid", "kid"),
        cache_dir=cache,
        refingerprint_on_resume=False,  # the opt-out: the checkpoint's fingerprint is trusted
    )
    make_trainer(tmp_path / "stale", [stale], max_epochs=2, enable_checkpointing=False).fit(
        Generator(), train_loader(), ckpt_path=ckpt
    )
    assert stale.history[-1]["fid"] != pytest.approx(results["uncached"]["fid"], rel=1e-6)


# Evaluating a checkpoint ----------------------------------------------------------------------------------------


def test_validate_and_test_evaluate_a_checkpoint_when_asked(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    fit_callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid", "is"))
    make_trainer(tmp_path / "fit", [fit_callback, checkpoint], max_epochs=2).fit(Generator(), train_loader())
    ckpt = tmp_path / "ckpt" / "epoch=1-step=4.ckpt"

    callback = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid", "is"), stages=("validate", "test"))
    trainer = make_trainer(tmp_path / "eval", [callback])
    # Lightning restores callback states in validate/test too from 2.5 on (before, only in fit): the history then
    # starts over from the checkpoint's, else the callback keeps its own. Either way each call adds its one record.
    restores_callbacks = Version(pl.__version__) >= Version("2.5.0")
    runs = []
    for stage in ("validate", "test"):
        before = [record["stage"] for record in callback.history]
        results = getattr(trainer, stage)(Generator(), train_loader(), ckpt_path=ckpt, verbose=False)
        expected_before = ["fit", "fit"] if restores_callbacks else before
        assert [record["stage"] for record in callback.history] == [*expected_before, stage]
        runs.append((results, callback.history[-1]))
    expected = fit_callback.history[-1]
    for results, record in runs:
        assert record["fid"] == pytest.approx(expected["fid"], rel=1e-12)
        assert record["is"] == pytest.approx(expected["is"], rel=1e-12)
        # Lightning returns logged values as float32.
        assert results[0]["gen/fid"] == pytest.approx(expected["fid"], rel=1e-6)
        assert results[0]["gen/is"] == pytest.approx(expected["is"], rel=1e-6)

    silent = make_callback(DataLoader(Images(), batch_size=8), metrics=("fid",))
    trainer = make_trainer(tmp_path / "default", [silent])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            results = trainer.validate(Generator(), train_loader(), ckpt_path=ckpt, verbose=False)
    assert "gen/fid" not in results[0]
    assert silent.history == []
    notes = [m for m in messages(caught) if "does not evaluate in `trainer.validate()`" in m]
    assert len(notes) == 1
    assert "stages=" in notes[0]


# Each rank reads its own share ----------------------------------------------------------------------------------


class Stream(IterableDataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        return iter(torch.arange(self.n).float())


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last"), [(16, 6, False), (16, 6, True), (7, 2, False), (3, 4, False)]
)
def test_rank_shares_cover_every_batch_once_reading_only_their_own(
    world_size: int, n: int, batch_size: int, drop_last: bool
) -> None:
    expected = list(DataLoader(torch.arange(n).float(), batch_size=batch_size, drop_last=drop_last))
    seen: dict[int, tuple[int, list[float]]] = {}
    for source in ("map", "iterable"):
        seen.clear()
        for rank in range(world_size):
            if source == "map":
                data = Images(n)
                data.images = torch.arange(n).float()
            else:
                data = Stream(n)
            share = RankShare(
                DataLoader(data, batch_size=batch_size, drop_last=drop_last), rank=rank, world_size=world_size
            )
            for item in share:
                assert item.index % world_size == rank
                seen[item.index] = (item.offset, item.batch.tolist())
            assert share.num_batches == len(expected)
            if source == "map":
                assert share.reads_only_own_batches
                assert data.reads == sum(len(b) for i, b in enumerate(expected) if i % world_size == rank)
        offsets = [sum(len(b) for b in expected[:i]) for i in range(len(expected))]
        assert seen == {i: (offsets[i], b.tolist()) for i, b in enumerate(expected)}, source


def test_known_sample_count() -> None:
    assert known_sample_count(DataLoader(torch.arange(10), batch_size=4)) == 10
    assert known_sample_count(DataLoader(torch.arange(10), batch_size=4, drop_last=True)) == 8
    assert known_sample_count(DataLoader(Stream(5), batch_size=2)) is None
    assert known_sample_count(DataLoader(torch.arange(0), batch_size=2)) == 0
