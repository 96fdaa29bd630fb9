"""Two gloo processes (``ddp_spawn`` on CPU): non-finite samples on one rank only are logged as NaN on both, with
nothing left waiting, and each rank reads only its own real batches."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import CallableSampler
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.samplers.base import sample_seed
from tests.helpers import ReadCountingImages, TinyFeatureNet

pytestmark = pytest.mark.ddp

NUM_SAMPLES = 23  # ranks draw samples [0, 11) and [11, 23)
POISONED_INDEX = 20  # on rank 1 only
_POISON = {"on": False}


def poisoned_images(num_samples: int, *, generator: list, device: torch.device, labels: object = None) -> torch.Tensor:
    out = torch.stack([torch.rand(3, 8, 8, generator=g) for g in generator])
    marked = sample_seed(0, POISONED_INDEX)
    for row, g in enumerate(generator):
        if _POISON["on"] and g.initial_seed() == marked:
            out[row, 1, 2, 3] = math.nan
    return out.to(device)


class Model(LightningModule):
    """Nothing to learn; from the end of the first epoch on, sample ``POISONED_INDEX`` is NaN (in this process)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return (self.weight - batch[0].mean()) ** 2

    def on_train_epoch_end(self) -> None:
        _POISON["on"] = True

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Recording(GenerativeMetricsCallback):
    """Saves each rank's history and real-image read count, which ``ddp_spawn`` does not bring back."""

    out_dir: Path
    dataset: ReadCountingImages

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        record = {"history": self.history, "reads": self.dataset.reads}
        torch.save(record, self.out_dir / f"rank{trainer.global_rank}-of-{trainer.world_size}.pt")


@pytest.mark.timeout(240)
def test_nan_on_one_rank_is_nan_on_every_rank_and_each_rank_reads_its_share(tmp_path: Path) -> None:
    for world_size in (1, 2):
        _POISON["on"] = False
        dataset = ReadCountingImages(low=0.0)
        callback = Recording(
            CallableSampler(poisoned_images, output_range=(0, 1), accepts_generator_list=True),
            DataLoader(dataset, batch_size=6),  # batches of 6, 6, 4: rank 0 reads the first and last
            metrics=("fid", "is", "kid"),
            feature_extractor=TinyFeatureNet(16, seed=5, declare=True),
            num_samples=NUM_SAMPLES,
            batch_size=5,
            num_images=4,
            metric_kwargs={"is": {"splits": 2}, "kid": {"subsets": 3, "subset_size": 8}},
            log_figures=False,
        )
        callback.out_dir, callback.dataset = tmp_path, dataset
        options = {"strategy": "ddp_spawn", "devices": 2} if world_size == 2 else {"devices": 1}
        trainer = Trainer(
            max_epochs=3,
            accelerator="cpu",
            limit_train_batches=2,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            logger=False,
            callbacks=[callback],
            default_root_dir=tmp_path,
            **options,
        )
        train = DataLoader(TensorDataset(torch.rand(16, 3, 8, 8)), batch_size=4)
        trainer.fit(Model(), train)

    one = torch.load(tmp_path / "rank0-of-1.pt", weights_only=False)
    ranks = [torch.load(tmp_path / f"rank{rank}-of-2.pt", weights_only=False) for rank in range(2)]
    keys = ("fid", "is", "is_std", "kid", "kid_std")
    assert len(one["history"]) == len(ranks[0]["history"]) == len(ranks[1]["history"]) == 3  # training went on
    for record in (one["history"][0], ranks[0]["history"][0], ranks[1]["history"][0]):
        assert all(math.isfinite(record[key]) for key in keys)
    for key in keys:
        assert ranks[0]["history"][0][key] == pytest.approx(one["history"][0][key], rel=1e-7, abs=1e-9), key
        assert ranks[1]["history"][0][key] == ranks[0]["history"][0][key]
        for epoch in (1, 2):  # the NaN sample is drawn by rank 1 alone; both ranks log NaN
            assert math.isnan(one["history"][epoch][key])
            assert math.isnan(ranks[0]["history"][epoch][key])
            assert math.isnan(ranks[1]["history"][epoch][key])
    # Each rank read the first batch (6 images) once to check it at setup, then only its own batches.
    assert one["reads"] == 6 + 16
    assert [rank["reads"] for rank in ranks] == [6 + 6 + 4, 6 + 6]
