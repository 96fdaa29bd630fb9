"""Samplers of bfloat16 / float16 models: float32 noise cast to the model's dtype, float32 images, exact shards."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from lightning_genmetrics.samplers import (
    CallableSampler,
    DiffusionSampler,
    GANSampler,
    VAESampler,
    reconstruct_images,
    sample_generators,
    sample_range,
    sample_seed,
)
from lightning_genmetrics.samplers.base import model_dtype, randn_per_sample

LOW = [torch.bfloat16, torch.float16]
# Unit roundoff (half the spacing of floats near 1) of each dtype.
ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11, torch.float32: 2.0**-24}


class AffineEpsilon(nn.Module):
    """ε̂ = s·x + b per channel (rows do not interact); records every input it is called with."""

    def __init__(self, channels: int, generator: torch.Generator) -> None:
        super().__init__()
        self.scale = nn.Parameter(0.1 + 0.2 * torch.rand(channels, 1, 1, generator=generator))
        self.shift = nn.Parameter(0.1 * torch.randn(channels, 1, 1, generator=generator))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return self.scale * x + self.shift

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        # The same function in float64, with the parameters as the model holds them.
        return self.scale.detach().double() * x + self.shift.detach().double()

    def reference_scale(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.detach().double().abs() * x.abs() + self.shift.detach().double().abs()


def reference_step(model: AffineEpsilon, sampler: DiffusionSampler, k: int, x: torch.Tensor, z: torch.Tensor | None):
    """Step ``k`` of the sampler from the class docstring's formulas in float64, and its rounding scale.

    Returns ``(value, scale)``: ``scale`` is the same expression evaluated on absolute values (|coefficient|·|term|
    summed), so computing the step in a dtype of unit roundoff u is off by at most a few u·scale (each rounding of
    a term is relative to that term; clipping does not enlarge an error).
    """
    ac, timesteps = sampler.schedule.alphas_cumprod.tolist(), sampler.timesteps
    last = k == len(timesteps) - 1
    a, a_prev = ac[timesteps[k]], 1.0 if last else ac[timesteps[k + 1]]
    ra, rb = math.sqrt(a), math.sqrt(1 - a)
    out, out_scale = model.reference(x), model.reference_scale(x)
    if sampler.prediction == "epsilon":
        eps, eps_scale = out, out_scale
        x0, x0_scale = (x - rb * out) / ra, (x.abs() + rb * out_scale) / ra
    else:
        x0, x0_scale = ra * x - rb * out, ra * x.abs() + rb * out_scale
        eps, eps_scale = rb * x + ra * out, rb * x.abs() + ra * out_scale
    x0 = x0.clamp(-1, 1) if sampler.clip_sample else x0
    if sampler.method == "ddpm":
        beta = 1 - a / a_prev
        c0, c1 = math.sqrt(a_prev) * beta / (1 - a), math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)
        value, scale = c0 * x0 + c1 * x, c0 * x0_scale + c1 * x.abs()
        var = beta * (1 - a_prev) / (1 - a)
    else:
        var = sampler.eta**2 * (1 - a_prev) / (1 - a) * (1 - a / a_prev)
        c0, c1 = math.sqrt(a_prev), math.sqrt(1 - a_prev - var)
        value, scale = c0 * x0 + c1 * eps, c0 * x0_scale + c1 * eps_scale
    if z is not None:
        value, scale = value + math.sqrt(var) * z, scale + math.sqrt(var) * z.abs()
    return value, scale


@pytest.mark.parametrize("dtype", [*LOW, torch.float32])
@pytest.mark.parametrize(
    ("method", "eta", "prediction", "clip_sample"),
    [("ddim", 0.0, "epsilon", True), ("ddpm", 0.0, "epsilon", True), ("ddim", 0.5, "v", False)],
)
def test_each_step_in_low_precision_is_the_float64_step_with_the_float32_noise(
    rng, dtype, method, eta, prediction, clip_sample
):
    seed = int(rng.integers(2**63))
    n, steps = 6, 5
    model = AffineEpsilon(3, torch.Generator().manual_seed(seed % 2**31)).to(dtype)
    sampler = DiffusionSampler(model, (3, 4, 4), num_steps=steps, method=method, eta=eta, prediction=prediction,
                               clip_sample=clip_sample, clamp_output=False)  # fmt: skip
    out = sample_range(sampler, 0, n, seed=seed, batch_size=n, device="cpu")
    assert out.dtype == torch.float32
    assert out.shape == (n, 3, 4, 4)
    # The model gets its own dtype at every step, and its first input is the float32 noise cast to that dtype.
    assert len(model.inputs) == steps
    assert {x.dtype for x in model.inputs} == {dtype}
    generators = [torch.Generator().manual_seed(sample_seed(seed, i)) for i in range(n)]

    def draw() -> torch.Tensor:
        return torch.stack([torch.randn(3, 4, 4, generator=g) for g in generators])

    assert torch.equal(model.inputs[0], draw().to(dtype))
    # Each step, from the input the model actually got, lands on the float64 step with the same float32 noise
    # to within a few roundings of its terms (at most 7 roundings lie on any term's path: γ_7 < 8u; 10u leaves
    # room): exact coefficients, the right noise at the right step.
    stochastic = method == "ddpm" or eta > 0
    results = [*model.inputs[1:], out]
    for k in range(steps):
        z = draw().double() if stochastic and k < steps - 1 else None
        value, scale = reference_step(model, sampler, k, model.inputs[k].double(), z)
        error = (results[k].double() - value).abs()
        assert bool((error <= 10 * ROUNDOFF[dtype] * scale + 1e-12).all()), (k, float((error / scale).max()))


class LinearGenerator(nn.Module):
    """A Linear generator ``z -> [N, 3, 2, 2]``; records the latents it receives."""

    def __init__(self, latent: int, generator: torch.Generator) -> None:
        super().__init__()
        self.linear = nn.Linear(latent, 12)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        self.inputs: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.inputs.append(z.clone())
        return torch.tanh(self.linear(z)).reshape(-1, 3, 2, 2)

    def reference(self, z: torch.Tensor) -> torch.Tensor:
        weight, bias = self.linear.weight.detach().double(), self.linear.bias.detach().double()
        return torch.tanh(z.double() @ weight.T + bias).reshape(-1, 3, 2, 2)

    def reference_scale(self, z: torch.Tensor) -> torch.Tensor:
        # |W|·|z| + |b|: what the rounding errors before tanh (slope <= 1) are relative to.
        weight, bias = self.linear.weight.detach().double(), self.linear.bias.detach().double()
        return (z.double().abs() @ weight.abs().T + bias.abs()).reshape(-1, 3, 2, 2)


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("make", [GANSampler, VAESampler])
def test_latent_samplers_in_low_precision(rng, dtype, make):
    seed, n, latent = int(rng.integers(2**63)), 10, 8
    network = LinearGenerator(latent, torch.Generator().manual_seed(seed % 2**31)).to(dtype)
    sampler = make(network, (latent,), output_range=(-1, 1))
    out = sample_range(sampler, 0, n, seed=seed, batch_size=n, device="cpu")
    assert out.dtype == torch.float32
    assert out.shape == (n, 3, 2, 2)
    z = torch.stack(
        [torch.randn(latent, generator=torch.Generator().manual_seed(sample_seed(seed, i))) for i in range(n)]
    )
    assert network.inputs[0].dtype == dtype
    assert torch.equal(network.inputs[0], z.to(dtype))
    # Rounded latents, a product accumulated in float32 and rounded, tanh rounded: within 4u·(|W||z| + |b|) + 2u.
    u = ROUNDOFF[dtype]
    error = (out.double() - network.reference(z)).abs()
    assert bool((error <= 4 * u * network.reference_scale(z) + 2 * u).all())


class RowwiseModel(nn.Module):
    """A bf16 ε-model whose rows do not interact: batching cannot change a row's bits."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.3))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scale * x + 1e-4 * t.reshape(-1, 1, 1, 1).to(x.dtype)


@pytest.mark.parametrize(("method", "eta"), [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 0.7)])
def test_shards_are_exact_in_bfloat16(rng, method, eta):
    sampler = DiffusionSampler(RowwiseModel().to(torch.bfloat16), (2, 3, 3), num_steps=6, method=method, eta=eta)
    seed = int(rng.integers(2**63))
    whole = sample_range(sampler, 0, 20, seed=seed, batch_size=20, device="cpu")
    shards = [sample_range(sampler, lo, hi, seed=seed, batch_size=bs, device="cpu")
              for lo, hi, bs in ((0, 7, 3), (7, 8, 2), (8, 20, 5))]  # fmt: skip
    assert torch.equal(torch.cat(shards), whole)
    gan = GANSampler(nn.Sequential(nn.Tanh(), nn.Unflatten(1, (1, 2, 2)), nn.BatchNorm2d(1)).to(torch.bfloat16), (4,))
    whole = sample_range(gan, 0, 20, seed=seed, batch_size=20, device="cpu")
    parts = [sample_range(gan, 0, 13, seed=seed, batch_size=6, device="cpu"),
             sample_range(gan, 13, 20, seed=seed, batch_size=4, device="cpu")]  # fmt: skip
    assert torch.equal(torch.cat(parts), whole)


def test_noise_stays_float32_under_a_low_default_dtype(rng):
    # Lightning's "bf16-true" sets torch's default dtype to bfloat16 around the module's hooks.
    seed = int(rng.integers(2**63))
    expected = torch.stack(
        [torch.randn(2, 5, generator=torch.Generator().manual_seed(sample_seed(seed, i))) for i in range(3)]
    )
    sampler = GANSampler(lambda z: z.reshape(-1, 1, 2, 5), (2, 5), clamp_output=False)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        noise = randn_per_sample((2, 5), sample_generators(seed, 0, 3), 3, "cpu")
        images = sample_range(sampler, 0, 3, seed=seed, batch_size=2, device="cpu")
        empty = randn_per_sample((2, 5), [], 0, "cpu")
    finally:
        torch.set_default_dtype(previous)
    assert noise.dtype == images.dtype == empty.dtype == torch.float32
    assert torch.equal(noise, expected)
    assert torch.equal(images.reshape(3, 2, 5), expected)


def test_model_dtype_reads_parameters_then_buffers():
    linear = nn.Linear(2, 2).to(torch.float16)
    buffers_only = nn.BatchNorm1d(2, affine=False).to(torch.bfloat16)
    assert model_dtype(linear) == torch.float16
    assert model_dtype(linear.forward) == torch.float16  # a bound method: its module
    assert model_dtype(functools.partial(linear)) == torch.float16
    assert model_dtype(buffers_only) == torch.bfloat16
    assert model_dtype(nn.ReLU()) == torch.float32  # nothing to read
    assert model_dtype(lambda x: x) == torch.float32
    assert model_dtype(lambda x: x, None) is None
    integer_only = nn.Module()
    integer_only.register_buffer("steps", torch.zeros(3, dtype=torch.int64))
    assert model_dtype(integer_only) == torch.float32


def test_the_dtype_argument_serves_a_model_behind_a_lambda():
    network = LinearGenerator(4, torch.Generator().manual_seed(0)).to(torch.bfloat16)
    hidden = GANSampler(lambda z: network(z), (4,))
    with pytest.raises(RuntimeError, match="dtype"):  # float32 latents into bfloat16 weights
        hidden(2, generator=torch.Generator(), device="cpu")
    told = GANSampler(lambda z: network(z), (4,), dtype=torch.bfloat16)
    assert told(2, generator=torch.Generator(), device="cpu").dtype == torch.float32
    model = RowwiseModel().to(torch.float16)
    sampler = DiffusionSampler(lambda x, t: model(x, t), (1, 2, 2), num_steps=2, dtype=torch.float16)
    assert sampler(2, generator=torch.Generator(), device="cpu").dtype == torch.float32
    for make in (lambda: GANSampler(network, (4,), dtype=torch.int64),
                 lambda: VAESampler(network, (4,), dtype="bfloat16"),
                 lambda: DiffusionSampler(model, (1, 2, 2), dtype=float)):  # fmt: skip
        with pytest.raises(TypeError, match=r"`dtype` to be a floating point torch.dtype or None, got"):
            make()


def test_the_dtype_is_read_at_each_call():
    # Lightning casts the module after the callback may have built its sampler.
    model = RowwiseModel()
    sampler = DiffusionSampler(model, (1, 2, 2), num_steps=2)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    sampler(2, generator=torch.Generator(), device="cpu")
    model.to(torch.bfloat16)
    assert sampler(2, generator=torch.Generator(), device="cpu").dtype == torch.float32
    assert seen == [torch.float32] * 2 + [torch.bfloat16] * 2


def test_callable_sampler_returns_float32():
    def fn(num_samples, *, generator, device, labels=None):
        return torch.rand(num_samples, 1, 2, 2, generator=generator).to(torch.bfloat16)

    out = CallableSampler(fn, (0, 1))(3, generator=[torch.Generator().manual_seed(s) for s in range(3)], device="cpu")
    assert out.dtype == torch.float32
    expected = torch.stack([torch.rand(1, 2, 2, generator=torch.Generator().manual_seed(s)) for s in range(3)])
    assert torch.equal(out, expected.to(torch.bfloat16).float())


@pytest.mark.parametrize("dtype", LOW)
def test_reconstructions_of_low_precision_modules(rng, dtype):
    seed = int(rng.integers(2**31))
    generator = torch.Generator().manual_seed(seed)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).to(dtype)
    decoder = LinearGenerator(4, generator).to(dtype)
    images = torch.rand(5, 3, 2, 2, generator=generator)
    out = reconstruct_images(encoder, decoder, images, output_range=(-1, 1), batch_size=2)
    assert out.dtype == torch.float32
    assert {z.dtype for z in decoder.inputs} == {dtype}
    w, b = encoder[1].weight.detach().double(), encoder[1].bias.detach().double()
    latent = images.double().flatten(1) @ w.T + b
    latent_scale = images.double().flatten(1) @ w.abs().T + b.abs()
    # The latent's own rounding (2u of its scale) goes through |W| of the decoder, then the decoder's as above.
    u = ROUNDOFF[dtype]
    scale = decoder.reference_scale(latent.abs() + 2 * u * latent_scale)
    error = (out.double() - decoder.reference(latent)).abs()
    assert bool((error <= 4 * u * scale + 2 * u).all())
