"""DiffusersSampler: equal to diffusers' own pipelines, shard-exact with every scheduler family, guidance, setup."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import (
    DDIMPipeline,
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    UNet2DModel,
)
from lightning import LightningModule
from torch import nn

import lightning_genmetrics
from lightning_genmetrics.samplers import DiffusersSampler, NonFiniteSamplesError, sample_generators, sample_range
from tests.callbacks.support import check_fid_guidance_sweep


@pytest.fixture(autouse=True)
def one_thread():
    # The tiny UNet's kernels are far too small to share out: a second thread only waits for the first.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_unet(seed: int = 0, num_class_embeds: int | None = None) -> UNet2DModel:
    """A seeded, randomly initialised UNet2DModel on 3×8×8 images (about 40k parameters)."""
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        num_class_embeds=num_class_embeds,
    )
    return unet.eval()


class RowwiseUNet(nn.Module):
    """A model with UNet2DModel's call convention whose output row i depends on row i alone, through IEEE-exact
    multiplications and additions: a sampler that keeps every random draw of a sample on its own generator gives
    bit-identical samples in any batch split. Label ``num_labels - 1`` is the null label."""

    def __init__(self, num_labels: int = 4, channels: int = 2, *, return_tensor: bool = False) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(11)
        self.gain = nn.Parameter(torch.tensor(0.9))
        self.embed = nn.Parameter(0.3 * torch.randn(num_labels, channels, generator=generator))
        self.return_tensor = return_tensor
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor | None = None):
        self.calls.append((sample.clone(), timestep.clone(), None if class_labels is None else class_labels.clone()))
        t = timestep.to(sample.dtype).reshape(-1, 1, 1, 1) / 1000
        out = sample * (self.gain.to(sample.dtype) * (1 - 0.5 * t))
        if class_labels is not None:
            out = out + self.embed.to(sample.dtype)[class_labels][:, :, None, None]
        return out if self.return_tensor else SimpleNamespace(sample=out)


class DPMSolverSDEScheduler(DDIMScheduler):
    """A stand-in, by name, for diffusers' class of that name, which needs torchsde (not in the test extra)."""


class BrownianTreeScheduler(DPMSolverSDEScheduler):
    """A subclass of it: refused too."""


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


# ---------------------------------------------------------------------------------------------------------------
# Import and the optional extra
# ---------------------------------------------------------------------------------------------------------------


def test_importing_the_package_does_not_import_diffusers():
    code = "import sys, lightning_genmetrics\nprint('diffusers' in sys.modules, lightning_genmetrics.DiffusersSampler)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "False"
    assert lightning_genmetrics.DiffusersSampler is DiffusersSampler


def test_missing_diffusers_names_the_extra(monkeypatch):
    scheduler = DDPMScheduler()
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match=r"pip install lightning-genmetrics\[diffusers\]"):
        DiffusersSampler(RowwiseUNet(), scheduler, num_inference_steps=2, sample_shape=(2, 2, 2))


# ---------------------------------------------------------------------------------------------------------------
# Equal to diffusers' own pipelines (the pipelines return (x / 2 + 0.5).clamp(0, 1) as "pt")
# ---------------------------------------------------------------------------------------------------------------


def test_equals_the_ddpm_pipeline_with_per_sample_generators():
    unet, seeds = tiny_unet(1), (3, 141, 59, 26)
    scheduler = DDPMScheduler(num_train_timesteps=50)
    pipeline = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipeline.set_progress_bar_config(disable=True)
    expected = pipeline(batch_size=4, generator=generators(*seeds), num_inference_steps=5, output_type="pt").images
    sampler = DiffusersSampler(unet, scheduler, num_inference_steps=5, output_range=(0, 1))
    images = sampler(4, generator=generators(*seeds), device="cpu")
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-5)
    # The default range is the same images in [-1, 1].
    default = DiffusersSampler(unet, scheduler, num_inference_steps=5)(4, generator=generators(*seeds), device="cpu")
    assert default.min() >= -1
    assert default.max() <= 1
    torch.testing.assert_close(default / 2 + 0.5, expected, rtol=0, atol=1e-5)
    # One generator for the whole batch, as pipelines also accept.
    single = pipeline(batch_size=3, generator=torch.Generator().manual_seed(8), num_inference_steps=5, output_type="pt")
    images = sampler(3, generator=torch.Generator().manual_seed(8), device="cpu")
    torch.testing.assert_close(images, single.images, rtol=0, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_equals_the_ddim_pipeline_with_per_sample_generators(eta):
    unet, seeds = tiny_unet(2), (5, 8, 13)
    scheduler = DDIMScheduler(num_train_timesteps=50)
    pipeline = DDIMPipeline(unet=unet, scheduler=scheduler)
    pipeline.set_progress_bar_config(disable=True)
    expected = pipeline(
        batch_size=3, generator=generators(*seeds), num_inference_steps=4, eta=eta, output_type="pt"
    ).images
    sampler = DiffusersSampler(unet, scheduler, num_inference_steps=4, eta=eta, output_range=(0, 1))
    torch.testing.assert_close(sampler(3, generator=generators(*seeds), device="cpu"), expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Shard-exactness with each scheduler family
# ---------------------------------------------------------------------------------------------------------------

SCHEDULERS = {
    "ddpm": (lambda: DDPMScheduler(num_train_timesteps=100), {}),
    "ddim": (lambda: DDIMScheduler(num_train_timesteps=100), {"eta": 1.0}),
    "dpm_solver": (lambda: DPMSolverMultistepScheduler(num_train_timesteps=100), {}),
    "dpm_solver_sde": (
        lambda: DPMSolverMultistepScheduler(num_train_timesteps=100, algorithm_type="sde-dpmsolver++"),
        {},
    ),
    "euler": (lambda: EulerDiscreteScheduler(num_train_timesteps=100), {}),
    "euler_ancestral": (lambda: EulerAncestralDiscreteScheduler(num_train_timesteps=100), {}),
    "flow_match": (lambda: FlowMatchEulerDiscreteScheduler(shift=3.0), {}),
    "flow_match_stochastic": (lambda: FlowMatchEulerDiscreteScheduler(stochastic_sampling=True), {}),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_shards_equal_one_process(rng, name):
    make_scheduler, kwargs = SCHEDULERS[name]
    sampler = DiffusersSampler(RowwiseUNet(), make_scheduler(), num_inference_steps=4, sample_shape=(2, 3, 3),
                               guidance=1.5, null_label=3, num_classes=3, **kwargs)  # fmt: skip
    seed = int(rng.integers(2**63))
    whole = sample_range(sampler, 0, 13, seed=seed, batch_size=13, device="cpu")
    # Two "ranks" with uneven contiguous shards and their own batch sizes; labels drawn per sample.
    shards = [
        sample_range(sampler, 0, 5, seed=seed, batch_size=2, device="cpu"),
        sample_range(sampler, 5, 13, seed=seed, batch_size=3, device="cpu"),
    ]
    assert torch.equal(torch.cat(shards), whole)
    assert not torch.equal(sample_range(sampler, 0, 13, seed=seed ^ 1, batch_size=13, device="cpu"), whole)


def test_shards_of_a_unet_agree_to_its_batched_rounding(rng):
    # A real UNet2DModel is not batch-invariant on the CPU (its 1×1 convolutions round differently for another
    # batch size, by about 1e-6), so shards agree to that rounding; the random draws themselves are exact (above).
    scheduler = EulerAncestralDiscreteScheduler(num_train_timesteps=50)
    sampler = DiffusersSampler(tiny_unet(3, num_class_embeds=3), scheduler, num_inference_steps=3, guidance=1.0,
                               null_label=2, num_classes=2)  # fmt: skip
    seed = int(rng.integers(2**63))
    whole = sample_range(sampler, 0, 7, seed=seed, batch_size=7, device="cpu")
    shards = [
        sample_range(sampler, 0, 3, seed=seed, batch_size=2, device="cpu"),
        sample_range(sampler, 3, 7, seed=seed, batch_size=4, device="cpu"),
    ]
    torch.testing.assert_close(torch.cat(shards), whole, rtol=0, atol=1e-5)


def test_stochastic_steps_draw_from_each_samples_own_generator():
    # Euler ancestral draws at every step: the samples must depend on the generators, sample by sample.
    sampler = DiffusersSampler(RowwiseUNet(), EulerAncestralDiscreteScheduler(num_train_timesteps=100),
                               num_inference_steps=3, sample_shape=(2, 3, 3))  # fmt: skip
    pair = sampler(2, generator=generators(4, 5), device="cpu")
    swapped = sampler(2, generator=generators(5, 4), device="cpu")
    assert torch.equal(pair, swapped.flip(0))
    # Any sequence of generators works, not only the list diffusers' randn_tensor needs.
    assert torch.equal(sampler(2, generator=tuple(generators(4, 5)), device="cpu"), pair)
    first_noise = torch.randn((1, 2, 3, 3), generator=torch.Generator().manual_seed(4))
    model = sampler.unet
    model.calls.clear()
    sampler(1, generator=generators(4), device="cpu")
    scheduler = EulerAncestralDiscreteScheduler(num_train_timesteps=100)
    scheduler.set_timesteps(3)
    # The first model input is the sample's first draw, scaled by init_noise_sigma and scale_model_input.
    expected = scheduler.scale_model_input(first_noise * scheduler.init_noise_sigma, scheduler.timesteps[0])
    torch.testing.assert_close(model.calls[0][0], expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# The flow-match scheduler against a hand-written Euler loop on the same sigmas
# ---------------------------------------------------------------------------------------------------------------


def test_flow_match_euler_is_the_euler_integration_of_the_velocity():
    unet = tiny_unet(4)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sampler = DiffusersSampler(unet, scheduler, num_inference_steps=4)
    images = sampler(3, generator=generators(1, 2, 3), device="cpu")
    grid = FlowMatchEulerDiscreteScheduler(shift=3.0)
    grid.set_timesteps(4)
    sigmas = grid.sigmas.tolist()
    assert len(sigmas) == 5
    assert (sigmas[0], sigmas[-1]) == (1.0, 0.0)
    x = torch.cat([torch.randn((1, 3, 8, 8), generator=g) for g in generators(1, 2, 3)])
    with torch.no_grad():
        for sigma, sigma_next in itertools.pairwise(sigmas):
            velocity = unet(x, torch.full((3,), sigma * 1000)).sample
            x = x + (sigma_next - sigma) * velocity
    torch.testing.assert_close(images, x.clamp(-1, 1), rtol=0, atol=1e-5)


def test_set_timesteps_kwargs_reach_the_scheduler():
    # A flow-matching scheduler with dynamic shifting needs `mu`: refused at setup without it.
    with pytest.raises(ValueError, match="`mu` must be passed"):
        DiffusersSampler(RowwiseUNet(), FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
                         num_inference_steps=3, sample_shape=(2, 3, 3))  # fmt: skip
    model = RowwiseUNet()
    sampler = DiffusersSampler(model, FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True), num_inference_steps=3,
                               sample_shape=(2, 3, 3), set_timesteps_kwargs={"mu": 0.5})  # fmt: skip
    sampler(1, generator=generators(1), device="cpu")
    grid = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    grid.set_timesteps(3, mu=0.5)
    assert torch.equal(torch.stack([timestep[0] for _, timestep, _ in model.calls]), grid.timesteps)


# ---------------------------------------------------------------------------------------------------------------
# Guidance
# ---------------------------------------------------------------------------------------------------------------


def test_zero_guidance_is_the_conditional_run_in_one_call_of_n_rows():
    labels = torch.tensor([0, 2, 1])
    guided = DiffusersSampler(RowwiseUNet(), DDIMScheduler(num_train_timesteps=100), num_inference_steps=3,
                              sample_shape=(2, 3, 3), null_label=3)  # fmt: skip
    plain = DiffusersSampler(RowwiseUNet(), DDIMScheduler(num_train_timesteps=100), num_inference_steps=3,
                             sample_shape=(2, 3, 3))  # fmt: skip
    a = guided(3, generator=generators(1, 2, 3), device="cpu", labels=labels)
    b = plain(3, generator=generators(1, 2, 3), device="cpu", labels=labels)
    assert torch.equal(a, b)
    assert [call[0].shape[0] for call in guided.unet.calls] == [3, 3, 3]
    # Labels matter: the conditional run is not the unconditional one.
    assert not torch.equal(a, plain(3, generator=generators(1, 2, 3), device="cpu"))


@pytest.mark.parametrize("w", [1.0, 3.5])
def test_guidance_is_the_extrapolated_output_of_one_2n_call(w):
    labels, null = torch.tensor([0, 2]), 3
    model = RowwiseUNet(return_tensor=True)
    sampler = DiffusersSampler(model, DPMSolverMultistepScheduler(num_train_timesteps=100), num_inference_steps=4,
                               sample_shape=(2, 3, 3), guidance=w, null_label=null)  # fmt: skip
    images = sampler(2, generator=generators(6, 7), device="cpu", labels=labels)
    # By hand: ε̃ = (1 + w)·ε(x, c) − w·ε(x, ∅) from two separate calls, then the scheduler's own step.
    reference = RowwiseUNet(return_tensor=True)
    scheduler = DPMSolverMultistepScheduler(num_train_timesteps=100)
    scheduler.set_timesteps(4)
    x = torch.cat([torch.randn((1, 2, 3, 3), generator=g) for g in generators(6, 7)])
    with torch.no_grad():
        for t in scheduler.timesteps:
            times = t.expand(2)
            out = (1 + w) * reference(x, times, labels) - w * reference(x, times, torch.full_like(labels, null))
            x = scheduler.step(out, t, x).prev_sample
    torch.testing.assert_close(images, x.clamp(-1, 1), rtol=0, atol=1e-6)
    assert not torch.allclose(images, DiffusersSampler(model, DPMSolverMultistepScheduler(num_train_timesteps=100),
                              num_inference_steps=4, sample_shape=(2, 3, 3))(2, generator=generators(6, 7),
                              device="cpu", labels=labels))  # fmt: skip
    # Each model call is one batch of 2N rows: the inputs twice, the labels then the null label.
    for sample, timestep, class_labels in model.calls[:4]:
        assert sample.shape[0] == 4
        assert torch.equal(sample[:2], sample[2:])
        assert timestep.shape == (4,)
        assert torch.equal(class_labels, torch.tensor([0, 2, null, null]))


def test_guidance_scale_is_one_plus_w():
    def run(**kwargs):
        sampler = DiffusersSampler(RowwiseUNet(), EulerDiscreteScheduler(num_train_timesteps=100),
                                   num_inference_steps=3, sample_shape=(2, 3, 3), null_label=3, **kwargs)  # fmt: skip
        return sampler, sampler(2, generator=generators(1, 2), device="cpu", labels=torch.tensor([1, 0]))

    by_scale, images = run(guidance_scale=3.0)
    assert by_scale.guidance == 2.0
    assert torch.equal(images, run(guidance=2.0)[1])


def test_class_conditional_unet_with_a_null_label():
    num_classes = 2
    unet = tiny_unet(5, num_class_embeds=num_classes + 1)
    scheduler = DDIMScheduler(num_train_timesteps=50)
    labels, w = torch.tensor([1, 0, 1]), 2.0
    sampler = DiffusersSampler(unet, scheduler, num_inference_steps=3, guidance=w, null_label=num_classes,
                               num_classes=num_classes)  # fmt: skip
    images = sampler(3, generator=generators(9, 8, 7), device="cpu", labels=labels)
    reference = DDIMScheduler(num_train_timesteps=50)
    reference.set_timesteps(3)
    x = torch.cat([torch.randn((1, 3, 8, 8), generator=g) for g in generators(9, 8, 7)])
    null = torch.full_like(labels, num_classes)
    with torch.no_grad():
        for t in reference.timesteps:
            conditional = unet(x, t, class_labels=labels).sample
            unconditional = unet(x, t, class_labels=null).sample
            x = reference.step((1 + w) * conditional - w * unconditional, t, x).prev_sample
    torch.testing.assert_close(images, x.clamp(-1, 1), rtol=0, atol=1e-5)
    other = sampler(3, generator=generators(9, 8, 7), device="cpu", labels=torch.tensor([0, 1, 0]))
    assert (other - images).abs().max() > 1e-3


def test_labels_are_drawn_after_the_initial_noise():
    model = RowwiseUNet()
    sampler = DiffusersSampler(model, DDIMScheduler(num_train_timesteps=100), num_inference_steps=2,
                               sample_shape=(2, 3, 3), num_classes=3)  # fmt: skip
    sampler(2, generator=generators(4, 5), device="cpu")
    for row, seed in enumerate((4, 5)):
        g = torch.Generator().manual_seed(seed)
        noise, label = torch.randn((2, 3, 3), generator=g), torch.randint(3, (1,), generator=g)
        x, _, labels = model.calls[0]
        assert torch.equal(x[row], noise)
        assert labels[row] == label


# ---------------------------------------------------------------------------------------------------------------
# A fresh scheduler state per call
# ---------------------------------------------------------------------------------------------------------------


def test_each_call_uses_a_fresh_copy_of_a_multistep_scheduler():
    scheduler = DPMSolverMultistepScheduler(num_train_timesteps=100, solver_order=3)
    scheduler.set_timesteps(7)
    before = scheduler.timesteps.clone()
    sampler = DiffusersSampler(RowwiseUNet(), scheduler, num_inference_steps=4, sample_shape=(2, 3, 3))
    first = sampler(2, generator=generators(1, 2), device="cpu")
    second = sampler(2, generator=generators(1, 2), device="cpu")
    assert torch.equal(first, second)
    # The user's scheduler is never stepped nor reset.
    assert torch.equal(scheduler.timesteps, before)
    assert scheduler.step_index is None
    assert all(output is None for output in scheduler.model_outputs)


# ---------------------------------------------------------------------------------------------------------------
# Precision, errors, edge cases
# ---------------------------------------------------------------------------------------------------------------


def test_bfloat16_model_gets_bfloat16_inputs_and_float32_scheduler_state():
    model = RowwiseUNet().to(torch.bfloat16)
    sampler = DiffusersSampler(model, EulerAncestralDiscreteScheduler(num_train_timesteps=100), num_inference_steps=2,
                               sample_shape=(2, 3, 3))  # fmt: skip
    images = sampler(2, generator=generators(1, 2), device="cpu")
    assert images.dtype == torch.float32
    assert all(sample.dtype == torch.bfloat16 for sample, _, _ in model.calls)
    # The initial noise is drawn in float32, then scaled and cast: the model sees those bits rounded once.
    scheduler = EulerAncestralDiscreteScheduler(num_train_timesteps=100)
    scheduler.set_timesteps(2)
    noise = torch.cat([torch.randn((1, 2, 3, 3), generator=g) for g in generators(1, 2)])
    expected = scheduler.scale_model_input(noise * scheduler.init_noise_sigma, scheduler.timesteps[0])
    assert torch.equal(model.calls[0][0], expected.to(torch.bfloat16))


def test_non_finite_output_raises():
    class NaNModel(nn.Module):
        def forward(self, sample, timestep, class_labels=None):
            return sample * float("nan")

    sampler = DiffusersSampler(NaNModel(), DDIMScheduler(), num_inference_steps=2, sample_shape=(1, 2, 2))
    with pytest.raises(NonFiniteSamplesError, match="in 3 of 3 samples"):
        sampler(3, generator=generators(1, 2, 3), device="cpu")


def test_zero_samples_and_repr():
    sampler = DiffusersSampler(tiny_unet(), DDPMScheduler(num_train_timesteps=10), num_inference_steps=2)
    assert sampler(0, generator=[], device="cpu").shape == (0, 3, 8, 8)
    assert repr(sampler) == (
        "DiffusersSampler(unet=UNet2DModel, scheduler=DDPMScheduler, num_inference_steps=2, sample_shape=(3, 8, 8), "
        "guidance=0.0, eta=None, output_range=(-1.0, 1.0))"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scheduler": "ddpm"}, TypeError, "diffusers scheduler \\(SchedulerMixin\\), got str"),
        ({"scheduler": BrownianTreeScheduler()}, ValueError, "one Brownian tree"),
        ({"unet": 3}, TypeError, "`unet` to be callable, got int"),
        ({"num_inference_steps": 0}, ValueError, "`num_inference_steps` to be an int >= 1, got 0"),
        ({"num_inference_steps": 11}, ValueError, "num_inference_steps"),
        ({"eta": 0.5, "scheduler": EulerDiscreteScheduler()}, ValueError, "`eta` applies to"),
        ({"eta": 1.5}, ValueError, r"`eta` in \[0, 1\], got 1.5"),
        ({"guidance": 1.0}, ValueError, "needs `null_label`"),
        ({"guidance": 1.0, "guidance_scale": 2.0, "null_label": 2}, ValueError, "pass one"),
        ({"null_label": 3}, ValueError, r"`null_label` in \[0, 3\) \(the unet's num_class_embeds\), got 3"),
        ({"num_classes": 4}, ValueError, r"`num_classes` <= 3"),
        ({"unet": tiny_unet(), "num_classes": 2}, ValueError, "got an unconditional one"),
        ({"unet": tiny_unet(), "guidance": 1.0, "null_label": 0}, ValueError, "got an unconditional one"),
        ({"output_range": (0, 255)}, ValueError, "`output_range` to be"),
        ({"dtype": torch.int64}, TypeError, "`dtype`"),
        ({"set_timesteps_kwargs": [1]}, TypeError, "`set_timesteps_kwargs` to be a mapping"),
        ({"unet": lambda sample, timestep: sample}, ValueError, "Expected `sample_shape`"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    options = {"unet": tiny_unet(num_class_embeds=3), "scheduler": DDIMScheduler(num_train_timesteps=10),
               "num_inference_steps": 2}  # fmt: skip
    options.update(kwargs)
    with pytest.raises(error, match=match):
        DiffusersSampler(options.pop("unet"), options.pop("scheduler"), **options)


def test_bad_calls():
    sampler = DiffusersSampler(lambda sample, timestep: [sample], DDIMScheduler(), num_inference_steps=2,
                               sample_shape=(1, 2, 2))  # fmt: skip
    with pytest.raises(
        TypeError, match=r"`unet` to return a torch\.Tensor or an object with a `\.sample` tensor, got list"
    ):
        sampler(1, generator=generators(1), device="cpu")
    wrong_shape = DiffusersSampler(lambda sample, timestep: sample[:, :1], DDIMScheduler(), num_inference_steps=2,
                                   sample_shape=(2, 2, 2))  # fmt: skip
    with pytest.raises(ValueError, match=r"return shape \(1, 2, 2, 2\), got shape \(1, 1, 2, 2\)"):
        wrong_shape(1, generator=generators(1), device="cpu")
    with pytest.raises(ValueError, match=r"one torch\.Generator or 2 of them"):
        sampler(2, generator=generators(1), device="cpu")


# ---------------------------------------------------------------------------------------------------------------
# The callback sweeps guidance over a DiffusersSampler
# ---------------------------------------------------------------------------------------------------------------


class TinyUNetDiffusion(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.unet = tiny_unet(6, num_class_embeds=3)  # two classes and the null label 2

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = batch[0]
        labels = torch.zeros(images.shape[0], dtype=torch.int64)
        return self.unet(images, torch.full_like(labels, 5), class_labels=labels).sample.pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def diffusers_sampler(pl_module: TinyUNetDiffusion) -> DiffusersSampler:
    return DiffusersSampler(pl_module.unet, DDIMScheduler(num_train_timesteps=20), num_inference_steps=2, null_label=2,
                            num_classes=2)  # fmt: skip


def test_callback_sweeps_guidance_over_a_diffusers_sampler(tmp_path: Path) -> None:
    check_fid_guidance_sweep(tmp_path, diffusers_sampler, TinyUNetDiffusion())


def test_sample_generators_feed_the_pipeline_convention():
    # sample_range's generators are the per-sample list diffusers' pipelines take: same images as the pipeline.
    unet, scheduler = tiny_unet(7), DDPMScheduler(num_train_timesteps=30)
    pipeline = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipeline.set_progress_bar_config(disable=True)
    expected = pipeline(batch_size=3, generator=sample_generators(5, 10, 13), num_inference_steps=3, output_type="pt")
    sampler = DiffusersSampler(unet, scheduler, num_inference_steps=3, output_range=(0, 1))
    images = sample_range(sampler, 10, 13, seed=5, batch_size=3, device="cpu")
    torch.testing.assert_close(images, expected.images, rtol=0, atol=1e-5)
