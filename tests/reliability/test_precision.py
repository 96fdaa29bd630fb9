"""The callback under Lightning's true low precision: a bf16 / fp16 model's samplers feed finite metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import GenerativeMetricsCallback
from lightning_genmetrics.samplers import DiffusionSampler, GANSampler, VAESampler
from tests.helpers import TinyFeatureNet

NUM_SAMPLES = 16
LATENT = 6


class EpsilonNet(nn.Module):
    """A 1x1 convolution that ignores the timestep."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class TinyGenerativeModule(LightningModule):
    """A generator/decoder (Linear) and an ε-network (1x1 conv) trained on a toy loss; the dtype is Lightning's."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.decoder = nn.Sequential(nn.Linear(LATENT, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
        self.denoiser = EpsilonNet()
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        self.dtypes_seen: list[torch.dtype] = []
        self.denoiser.conv.register_forward_pre_hook(lambda module, args: self.dtypes_seen.append(args[0].dtype))
        self.decoder.register_forward_pre_hook(lambda module, args: self.dtypes_seen.append(args[0].dtype))

    def epsilon(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = batch[0]
        z = torch.zeros(images.shape[0], LATENT, dtype=images.dtype, device=images.device)
        return ((self.decoder(z) - images) ** 2).mean() + (self.denoiser.conv(images) ** 2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


SAMPLERS = {
    "ddpm": lambda module: DiffusionSampler(module.denoiser, (3, 8, 8), num_steps=4, method="ddpm"),
    # A bound method: the sampler reads the dtype of the module that owns it.
    "ddim": lambda module: DiffusionSampler(module.epsilon, (3, 8, 8), num_steps=4),
    "gan": lambda module: GANSampler(module.decoder, (LATENT,)),
    "vae": lambda module: VAESampler(module.decoder, (LATENT,), output_range=(-1, 1)),
}


def run(tmp_path: Path, precision: str, sampler: str) -> tuple[Trainer, TinyGenerativeModule]:
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    real = DataLoader(TensorDataset(images), batch_size=8)
    callback = GenerativeMetricsCallback(
        SAMPLERS[sampler],
        real,
        metrics=("fid",),
        feature_extractor=TinyFeatureNet(16, seed=5, declare=True),
        num_samples=NUM_SAMPLES,
        batch_size=8,
        log_images=False,
        real_input_range=(-1, 1),
    )
    module = TinyGenerativeModule()
    trainer = Trainer(
        precision=precision,
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=[callback],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(TensorDataset(images), batch_size=8))
    return trainer, module


@pytest.mark.parametrize(
    ("precision", "dtype", "sampler"),
    [
        ("bf16-true", torch.bfloat16, "ddpm"),
        ("bf16-true", torch.bfloat16, "gan"),
        ("16-true", torch.float16, "ddim"),
        ("16-true", torch.float16, "vae"),
    ],
)
def test_training_in_true_low_precision_logs_a_finite_fid(tmp_path, precision, dtype, sampler):
    trainer, module = run(tmp_path, precision, sampler)
    assert trainer.state.finished
    assert module.denoiser.conv.weight.dtype == dtype  # Lightning did cast the module
    assert "gen/fid" in trainer.callback_metrics
    fid = float(trainer.callback_metrics["gen/fid"])
    assert math.isfinite(fid)
    assert fid > 0
    # The sampler fed the network in its own dtype (the training steps did too).
    assert module.dtypes_seen
    assert set(module.dtypes_seen) == {dtype}
