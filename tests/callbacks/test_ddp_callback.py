"""Two gloo processes (``ddp_spawn`` on CPU) log the one-process values: same samples, same real data, no duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import CallableSampler
from tests.callbacks.support import (
    BrightnessClassifier,
    ConditionalGAN,
    CountingImages,
    RecordingCallback,
    ThresholdSegmenter,
    conditional_sampler,
    gan_sampler,
    make_trainer,
    masks_to_images,
    train_loader,
)
from tests.helpers import TinyFeatureNet

pytestmark = pytest.mark.ddp


def make_recording_callback(out_dir: Path) -> RecordingCallback:
    # 16 real images in batches of 6: three batches, so rank 0 reads two and rank 1 one.
    callback = RecordingCallback(
        gan_sampler,
        DataLoader(CountingImages(), batch_size=6),
        metrics=("fid", "is", "kid"),
        feature_extractor=TinyFeatureNet(16, seed=5, declare=True),
        num_samples=23,
        batch_size=5,
        num_images=4,
        metric_kwargs={"is": {"splits": 2}, "kid": {"subsets": 3, "subset_size": 8}},
    )
    callback.out_dir = out_dir
    return callback


def make_conditional_callback(out_dir: Path) -> RecordingCallback:
    """Classifier accuracy/AUROC (23 samples: 11 and 12 per rank) and reconstruction metrics (10 images in batches
    of 4: 6 and 4 per rank)."""
    callback = RecordingCallback(
        conditional_sampler,
        None,
        metrics=(),
        num_samples=23,
        batch_size=5,
        prefix="cond/",
        classifier=BrightnessClassifier(),
        reconstruct=shrink,
        reconstruction_data=DataLoader(
            TensorDataset(torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(3))), batch_size=4
        ),
        reconstruction_metrics=("ssim", "psnr"),
        metric_kwargs={"ssim": {"gaussian_kernel": False, "kernel_size": 3}},
    )
    callback.out_dir = out_dir
    return callback


def make_mask_callback(out_dir: Path) -> RecordingCallback:
    """A segmenter on 10 mask-conditioned samples in batches of 4: 6 and 4 per rank."""
    masks = torch.randint(0, 3, (10, 8, 8), generator=torch.Generator().manual_seed(6))
    callback = RecordingCallback(
        CallableSampler(masks_to_images, output_range=(0, 1)),
        None,
        metrics=(),
        prefix="mask/",
        segmenter=ThresholdSegmenter(),
        masks=DataLoader(TensorDataset(masks), batch_size=4),
        num_mask_classes=3,
        num_samples=4,
    )
    callback.out_dir = out_dir
    return callback


def shrink(pl_module: LightningModule, images: torch.Tensor) -> torch.Tensor:
    return images * 0.8 + 0.1


@pytest.mark.timeout(240)
def test_two_processes_log_the_one_process_values(tmp_path: Path) -> None:
    results = {}
    for world_size in (1, 2):
        options = {"strategy": "ddp_spawn", "devices": 2} if world_size == 2 else {}
        callbacks = [
            make_recording_callback(tmp_path),
            make_conditional_callback(tmp_path),
            make_mask_callback(tmp_path),
        ]
        trainer = make_trainer(tmp_path / str(world_size), callbacks, max_epochs=2, logger=False, **options)
        # lr = 0: DDP training sees other batches than one process, so only a fixed generator compares.
        trainer.fit(ConditionalGAN(lr=0.0), train_loader())
        results[world_size] = trainer.callback_metrics

    one = torch.load(tmp_path / "gen-rank0-of-1.pt", weights_only=False)
    ranks = [torch.load(tmp_path / f"gen-rank{rank}-of-2.pt", weights_only=False) for rank in range(2)]
    assert ranks[0]["history"] == ranks[1]["history"]  # every rank computed, and got, the global values
    assert ranks[0]["cache_key"] == ranks[1]["cache_key"] == one["cache_key"]
    assert len(one["history"]) == len(ranks[0]["history"]) == 2
    assert one["history"][0]["fid"] > 1.0
    for single, distributed in zip(one["history"], ranks[0]["history"], strict=True):
        for key in ("fid", "is", "is_std", "kid", "kid_std"):
            assert distributed[key] == pytest.approx(single[key], rel=1e-7, abs=1e-9), key
    assert results[2]["gen/fid"].item() == pytest.approx(results[1]["gen/fid"].item(), rel=1e-6)
    for name, keys in (
        ("cond", ("accuracy", "balanced_accuracy", "auroc", "recon/ssim", "recon/psnr")),
        ("mask", ("miou", "pixel_accuracy", "mdice")),
    ):
        single = torch.load(tmp_path / f"{name}-rank0-of-1.pt", weights_only=False)["history"]
        shards = [torch.load(tmp_path / f"{name}-rank{rank}-of-2.pt", weights_only=False)["history"] for rank in (0, 1)]
        assert shards[0] == shards[1]
        assert len(single) == len(shards[0]) == 2
        for one_process, two_processes in zip(single, shards[0], strict=True):
            for key in keys:
                assert two_processes[key] == pytest.approx(one_process[key], rel=1e-12), (name, key)
