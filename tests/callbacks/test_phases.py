"""The phases of an evaluation on their own, with a stub trainer: conditional (classifier and segmenter) and
reconstruction scoring against direct computations, the non-finite rule, and the choice of the best guidance."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import CallableSampler, SegmentationMetrics, sample_range
from lightning_genmetrics.callbacks.conditional import ClassFidelity, MaskFidelity
from lightning_genmetrics.callbacks.phases.generation import Generation
from lightning_genmetrics.callbacks.phases.masks import MaskConditioning
from lightning_genmetrics.callbacks.phases.reconstruction import Reconstruction
from lightning_genmetrics.callbacks.phases.scope import EvaluationContext, PhaseTimer, Sampling
from lightning_genmetrics.callbacks.plan import EvaluationPlan
from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.callbacks.reconstruction import ReconstructionQuality
from lightning_genmetrics.features.preprocess import images_to_uint8
from tests.callbacks.support import BrightnessClassifier, ThresholdSegmenter, masks_to_images, stub_trainer


def context(num_samples: int = 12, **sampling: object) -> EvaluationContext:
    options = {"batch_size": 5, "seed": 0, "on_nonfinite": "nan", "prefix": "gen/", "progress_bar": False}
    options.update(sampling)
    module = SimpleNamespace(device=torch.device("cpu"))
    return EvaluationContext(stub_trainer(), module, PhaseTimer(torch.device("cpu")), Sampling(num_samples, **options))


def shades(num_samples: int, *, generator: object, device: object, labels: torch.Tensor) -> torch.Tensor:
    """Class-conditional "samples": label k is brightness 0.43 + 0.065·k, plus noise."""
    noise = torch.randn(num_samples, 3, 4, 4, generator=generator) * 0.2
    return (0.43 + 0.065 * labels.float()[:, None, None, None] + noise).clamp(0, 1)


def test_generation_scores_class_conditional_samples_against_their_labels() -> None:
    sampler = CallableSampler(shades, output_range=(0, 1))
    classifier = ClassFidelity(BrightnessClassifier(), 3, (0.0, 1.0))
    phase = Generation([], classifier, (0.0, 1.0), num_images=4, figures_wanted=lambda trainer: False)
    result = phase.run(context(), sampler, "")

    labels = torch.arange(12) % 3
    samples = sample_range(sampler, 0, 12, seed=0, batch_size=5, device="cpu", labels=labels)
    logits = BrightnessClassifier()(images_to_uint8(samples, (0, 1)).float() / 255)
    accuracy = float((logits.argmax(1) == labels).double().mean())
    assert 0.3 < accuracy < 1.0  # some right, some wrong: a swapped label would show
    assert result.values["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    torch.testing.assert_close(result.grids[""], samples[:4], rtol=0, atol=0)


def test_masks_phase_scores_mask_conditioned_samples() -> None:
    masks = torch.randint(0, 3, (10, 8, 8), generator=torch.Generator().manual_seed(6))
    sampler = CallableSampler(masks_to_images, output_range=(0, 1))
    phase = MaskConditioning(
        MaskFidelity(ThresholdSegmenter(), 3, (0.0, 1.0)), DataLoader(TensorDataset(masks), batch_size=4)
    )
    result = phase.run(context(), sampler, "")
    images = sample_range(sampler, 0, 10, seed=0, batch_size=3, device="cpu", labels=masks)
    expected = SegmentationMetrics(3)
    expected.update(ThresholdSegmenter()(images_to_uint8(images, (0, 1)).float() / 255), masks)
    scores = expected.compute()
    assert 0.3 < scores["miou"] < 1.0
    for name in ("miou", "pixel_accuracy", "mdice"):
        assert result.values[name] == pytest.approx(float(scores[name]), abs=1e-12), name


def test_nonfinite_mask_conditioned_samples_give_nan_with_a_warning() -> None:
    def broken(num_samples: int, *, generator: object, device: object, labels: torch.Tensor) -> torch.Tensor:
        return masks_to_images(num_samples, generator=generator, device=device, labels=labels) * math.nan

    masks = torch.zeros(6, 8, 8, dtype=torch.int64)
    phase = MaskConditioning(
        MaskFidelity(ThresholdSegmenter(), 3, (0.0, 1.0)), DataLoader(TensorDataset(masks), batch_size=4)
    )
    with pytest.warns(UserWarning, match=r"6 mask-conditioned samples are not finite.*'gen/miou'"):
        result = phase.run(context(), CallableSampler(broken, output_range=(0, 1)), "")
    assert set(result.values) == {"miou", "pixel_accuracy", "mdice"}
    assert all(math.isnan(value) for value in result.values.values())


def test_reconstruction_phase_gives_the_mean_psnr_of_the_pairs() -> None:
    data = torch.rand(7, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    quality = ReconstructionQuality(("psnr",), (0.0, 1.0))
    phase = Reconstruction(quality, DataLoader(TensorDataset(data), batch_size=3), lambda module, x: x * 0.9 + 0.05)
    run = context()
    result = phase.run(run)
    errors = ((data * 0.9 + 0.05 - data) ** 2).double().mean(dim=(1, 2, 3)).numpy()
    assert result.values == {"recon/psnr": pytest.approx(float(np.mean(10 * np.log10(1 / errors))), rel=1e-5)}
    assert run.timer.seconds["reconstruction"] > 0

    broken = Reconstruction(quality, DataLoader(TensorDataset(data), batch_size=3), lambda module, x: x / 0)
    with pytest.warns(UserWarning, match="reconstructions are not finite"):
        assert math.isnan(broken.run(context()).values["recon/psnr"])


class Constant(nn.Module):
    """A metric stub: a fixed value per guidance strength, with a direction."""

    def __init__(self, higher_is_better: bool | None) -> None:
        super().__init__()
        self.higher_is_better = higher_is_better

    def update(self, images: torch.Tensor) -> None: ...

    def compute(self) -> float: ...


def plan_of(*plugs: tuple[str, bool | None], best_guidance_by: str | None = None) -> tuple[EvaluationPlan, list]:
    warned: list[str] = []
    generation = Generation(
        [MetricPlug(name, Constant(higher)) for name, higher in plugs], None, (0.0, 1.0), 0, lambda t: False
    )
    plan = EvaluationPlan(
        None, None, generation, None, None, (0.0, 1.0, 2.0), best_guidance_by, lambda t, m: warned.append(m)
    )
    return plan, warned


def test_the_best_guidance_follows_the_metrics_direction() -> None:
    per_w = {0.0: {"a": 3.0, "b": 1.0}, 1.0: {"a": 1.0, "b": math.nan}, 2.0: {"a": 2.0, "b": 2.0}}
    plan, _ = plan_of(("a", False), ("b", True))
    assert plan.best_guidance(per_w) == 1.0  # the first metric, lower is better
    plan, _ = plan_of(("a", True), ("b", True))
    assert plan.best_guidance(per_w) == 0.0
    plan, _ = plan_of(("a", False), ("b", True), best_guidance_by="b")
    assert plan.best_guidance(per_w) == 2.0  # NaN ranks last
    plan, _ = plan_of(("a", None), ("b", False))
    assert plan.best_guidance(per_w) == 0.0  # "a" has no direction: "b" decides
    plan, warned = plan_of(("a", False), best_guidance_by="c")
    assert plan.best_guidance(per_w) == 1.0
    assert len(warned) == 1
    assert "'c'" in warned[0]
    plan, _ = plan_of(("a", False), ("b", True))
    assert plan.tradeoff_pair() == (("a", False), ("b", True))
