"""ClassifierFeatures: hooked layers and logits, checked against direct computation and through the metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import (
    FrechetInceptionDistance,
    GANSampler,
    InceptionScore,
    KernelInceptionDistance,
    images_to_uint8,
)
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.features.classifier import ClassifierFeatures
from lightning_genmetrics.functional import inception_score
from tests.helpers import exact_frechet


class SmallClassifier(nn.Module):
    """A seeded conv classifier on grayscale ``[N, 1, 8, 8]`` in [-1, 1]; ``fc`` is the penultimate layer."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 12)
        self.head = nn.Linear(12, 5)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(h.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(x)))


def to_gray(images: torch.Tensor) -> torch.Tensor:
    return images[:, :1] * 2 - 1


def test_features_are_the_hooked_layer_and_logits_the_output(rng: np.random.Generator) -> None:
    classifier = SmallClassifier()
    images = torch.from_numpy(rng.random((6, 3, 8, 8), dtype=np.float32))
    by_name = ClassifierFeatures(classifier, "fc", input_transform=to_gray)
    by_module = ClassifierFeatures(classifier, classifier.fc, input_transform=to_gray)
    logits = ClassifierFeatures(classifier, output="logits", input_transform=to_gray)
    expected = classifier.hidden(to_gray(images))
    torch.testing.assert_close(by_name(images), expected, rtol=0, atol=0)
    torch.testing.assert_close(by_module(images), expected, rtol=0, atol=0)
    torch.testing.assert_close(logits(images), classifier(to_gray(images)), rtol=0, atol=0)
    assert (by_name.layer, by_module.layer, logits.layer) == ("fc", "fc", "logits")
    assert (by_name.num_features, logits.num_features) == (12, None)
    assert not classifier.fc._forward_hooks


def test_conv_features_are_flattened_and_num_features_declared() -> None:
    classifier = SmallClassifier()
    features = ClassifierFeatures(classifier, "conv", input_transform=to_gray, num_features=4 * 8 * 8)
    assert features(torch.rand(3, 3, 8, 8)).shape == (3, 4 * 8 * 8)
    assert features.num_features == 256


def test_hook_is_removed_when_the_classifier_fails() -> None:
    classifier = SmallClassifier()
    features = ClassifierFeatures(classifier, "fc")  # no transform: 3 channels reach a 1-channel conv
    with pytest.raises(RuntimeError):
        features(torch.rand(2, 3, 8, 8))
    assert not classifier.fc._forward_hooks


def test_a_layer_that_does_not_run_raises() -> None:
    classifier = SmallClassifier()
    classifier.unused = nn.Linear(2, 2)
    features = ClassifierFeatures(classifier, "unused", input_transform=to_gray)
    with pytest.raises(RuntimeError, match="'unused' did not run"):
        features(torch.rand(2, 3, 8, 8))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"classifier": "net"}, TypeError, "`classifier` to be an nn.Module, got str"),
        ({"output": "probs"}, ValueError, "'probs'"),
        ({"feature_layer": None}, ValueError, "needs `feature_layer`"),
        ({"feature_layer": "fc", "output": "logits"}, ValueError, "'fc' with 'logits'"),
        ({"feature_layer": "fc2"}, ValueError, "'fc2'"),
        ({"feature_layer": ""}, ValueError, "got ''"),
        ({"feature_layer": nn.Linear(2, 2)}, ValueError, "submodule of `classifier`"),
        ({"feature_layer": 3}, TypeError, "got 3"),
        ({"input_transform": 1.5}, TypeError, "1.5"),
        ({"num_features": 2.0}, TypeError, "2.0"),
        ({"num_features": 0}, ValueError, "got 0"),
    ],
)
def test_invalid_arguments_name_the_value(kwargs: dict, error: type[Exception], message: str) -> None:
    options = {"classifier": SmallClassifier(), "feature_layer": "fc"}
    options.update(kwargs)
    classifier = options.pop("classifier")
    with pytest.raises(error, match=re.escape(message)):
        ClassifierFeatures(classifier, **options)


def test_declared_size_is_checked_by_the_metrics() -> None:
    fid = FrechetInceptionDistance(ClassifierFeatures(SmallClassifier(), "fc", num_features=7, input_transform=to_gray))
    with pytest.raises(ValueError, match="7 features"):
        fid.update(torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8), real=True)


def test_plugs_into_fid_kid_and_inception_score(rng: np.random.Generator) -> None:
    classifier = SmallClassifier(seed=3)
    features = ClassifierFeatures(classifier, "fc", input_transform=to_gray)
    logits = ClassifierFeatures(classifier, output="logits", input_transform=to_gray)
    real = torch.from_numpy(rng.random((40, 1, 8, 8))).float() * 2 - 1
    fake = torch.from_numpy(rng.random((30, 1, 8, 8))).float().clamp(0.2, 0.9) * 2 - 1

    def reference_inputs(images: torch.Tensor) -> torch.Tensor:
        # The metrics' protocol: quantise to uint8, repeat to RGB, float in [0, 1].
        return images_to_uint8(images, (-1, 1)).float() / 255

    fid = FrechetInceptionDistance(features, input_range=(-1, 1))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with torch.no_grad():
        real_features = features(reference_inputs(real)).double().numpy()
        fake_features = features(reference_inputs(fake)).double().numpy()
        fake_logits = logits(reference_inputs(fake))
    assert fid.compute().item() == pytest.approx(exact_frechet(real_features, fake_features), rel=1e-6)

    score = InceptionScore(logits, splits=1, input_range=(-1, 1))
    score.update(fake)
    mean, _ = score.compute()
    assert mean.item() == pytest.approx(inception_score(fake_logits, splits=1)[0].item(), rel=1e-6)
    assert score.num_classes == 5

    kid = KernelInceptionDistance(features, subsets=3, subset_size=10, input_range=(-1, 1))
    kid.update(real, real=True)
    kid.update(fake, real=False)
    assert torch.isfinite(kid.compute()[0])

    other_layer = FrechetInceptionDistance(ClassifierFeatures(classifier, "conv", input_transform=to_gray))
    assert fid.extractor.provenance_fields()["layer"] == "fc"
    assert other_layer.extractor.provenance_fields()["layer"] == "conv"


class Generator(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return (self.net(torch.randn(batch[0].shape[0], 4)) - batch[0]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_is_the_feature_extractor_of_the_callback(tmp_path: Path) -> None:
    real = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    callback = GenerativeMetricsCallback(
        lambda module: GANSampler(module.net, latent_shape=(4,)),
        DataLoader(real, batch_size=8),
        metrics=("fid", "kid"),
        feature_extractor=ClassifierFeatures(SmallClassifier(), "fc", input_transform=to_gray),
        num_samples=16,
        batch_size=8,
        log_images=False,
        metric_kwargs={"kid": {"subsets": 2, "subset_size": 8}},
    )
    trainer = Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        default_root_dir=tmp_path,
    )
    trainer.fit(Generator(), DataLoader(TensorDataset(real), batch_size=8))
    assert [record["epoch"] for record in callback.history] == [0, 1]
    assert all(np.isfinite(record["fid"]) and np.isfinite(record["kid"]) for record in callback.history)
