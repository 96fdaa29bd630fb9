"""Two gloo processes (``ddp_spawn`` on CPU) log the one-process values: same samples, same real data, no duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader

from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from tests.callbacks.test_generative_metrics import CountingImages, TinyGAN, gan_sampler, make_trainer, train_loader
from tests.helpers import TinyFeatureNet

pytestmark = pytest.mark.ddp


class RecordingCallback(GenerativeMetricsCallback):
    """Saves each rank's history and cache key, which ``ddp_spawn`` does not bring back to the parent."""

    out_dir: Path

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        record = {"history": self.history, "cache_key": self.cache_key}
        torch.save(record, self.out_dir / f"rank{trainer.global_rank}-of-{trainer.world_size}.pt")


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


@pytest.mark.timeout(240)
def test_two_processes_log_the_one_process_values(tmp_path: Path) -> None:
    results = {}
    for world_size in (1, 2):
        options = {"strategy": "ddp_spawn", "devices": 2} if world_size == 2 else {}
        trainer = make_trainer(
            tmp_path / str(world_size), [make_recording_callback(tmp_path)], max_epochs=2, logger=False, **options
        )
        # lr = 0: DDP training sees other batches than one process, so only a fixed generator compares.
        trainer.fit(TinyGAN(lr=0.0), train_loader())
        results[world_size] = trainer.callback_metrics

    one = torch.load(tmp_path / "rank0-of-1.pt", weights_only=False)
    ranks = [torch.load(tmp_path / f"rank{rank}-of-2.pt", weights_only=False) for rank in range(2)]
    assert ranks[0]["history"] == ranks[1]["history"]  # every rank computed, and got, the global values
    assert ranks[0]["cache_key"] == ranks[1]["cache_key"] == one["cache_key"]
    assert len(one["history"]) == len(ranks[0]["history"]) == 2
    assert one["history"][0]["fid"] > 1.0
    for single, distributed in zip(one["history"], ranks[0]["history"], strict=True):
        for key in ("fid", "is", "is_std", "kid", "kid_std"):
            assert distributed[key] == pytest.approx(single[key], rel=1e-7, abs=1e-9), key
    assert results[2]["gen/fid"].item() == pytest.approx(results[1]["gen/fid"].item(), rel=1e-6)
