"""NonFiniteSamplesError: one check of the final samples, counting the samples (rows) that hold NaN/Inf."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from lightning_genmetrics.samplers import (
    CallableSampler,
    DiffusionSampler,
    GANSampler,
    NonFiniteSamplesError,
    VAESampler,
    reconstruct_images,
    sample_range,
)
from lightning_genmetrics.samplers.base import check_finite_samples


def poison(x: torch.Tensor, rows: list[int], value: float) -> torch.Tensor:
    """``x`` with one element of each row in ``rows`` replaced by ``value``."""
    x = x.clone()
    for row in rows:
        x[row].view(-1)[row % x[row].numel()] = value
    return x


def test_the_error_is_a_value_error_with_its_counts():
    error = NonFiniteSamplesError(3, 10, "GANSampler(...)", first=4)
    assert isinstance(error, ValueError)
    assert (error.count, error.num_samples, error.sampler, error.first) == (3, 10, "GANSampler(...)", 4)
    assert "3 of 10 samples" in str(error)
    assert "(the first is sample 4) from GANSampler(...)" in str(error)
    # Rebuilt whole when it crosses a process boundary (DDP workers, multiprocessing).
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.count, copy.num_samples, copy.sampler, copy.first, str(copy)) == (3, 10, error.sampler, 4, str(error))


def test_count_is_the_number_of_rows_holding_any_non_finite_value(rng):
    n = int(rng.integers(3, 20))
    rows = sorted(int(i) for i in rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False))
    images = torch.from_numpy(rng.standard_normal((n, 2, 3, 3))).float()
    for i, row in enumerate(rows):  # several bad values in some rows: still one sample each
        images[row, 0, 0, 0] = (math.nan, math.inf, -math.inf)[i % 3]
        images[row, 1, 2, i % 3] = math.nan
    with pytest.raises(NonFiniteSamplesError) as info:
        check_finite_samples(images, "x")
    assert (info.value.count, info.value.num_samples, info.value.first) == (len(rows), n, rows[0])
    check_finite_samples(images[[i for i in range(n) if i not in rows]], "x")  # the rest is finite
    check_finite_samples(torch.empty(0, 2, 3, 3), "x")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("make", [GANSampler, VAESampler])
def test_a_latent_sampler_names_the_one_bad_sample(rng, dtype, make):
    n, bad = 8, int(rng.integers(8))

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(0.5))

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return poison((self.scale * z).reshape(-1, 1, 2, 2), [bad], math.nan)

    sampler = make(Network().to(dtype), (4,))
    with pytest.raises(NonFiniteSamplesError, match=rf"NaN/Inf in 1 of {n} samples \(the first is sample {bad}\) from "
                       rf"{make.__name__}\(latent_shape=\(4,\).*computed in {dtype}") as info:  # fmt: skip
        sampler(n, generator=torch.Generator(), device="cpu")
    assert (info.value.count, info.value.num_samples) == (1, n)


def test_an_inf_is_caught_before_the_clamp_would_hide_it():
    sampler = GANSampler(lambda z: poison(z.reshape(-1, 1, 2, 2), [0, 2], math.inf), (4,))
    with pytest.raises(NonFiniteSamplesError) as info:
        sampler(5, generator=torch.Generator(), device="cpu")
    assert info.value.count == 2


def test_float16_overflow_is_reported_with_the_dtype():
    # A network whose float16 output overflows (65504 is the largest float16): the message says it ran in float16.
    network = nn.Sequential(nn.Linear(4, 4), nn.Unflatten(1, (1, 2, 2))).to(torch.float16)
    with torch.no_grad():
        network[0].weight.fill_(3e4)
    sampler = GANSampler(network, (4,))
    with pytest.raises(NonFiniteSamplesError, match=r"computed in torch.float16"):
        sampler(6, generator=torch.Generator().manual_seed(0), device="cpu")


class NaNAtStep(nn.Module):
    """ε̂ = 0.2·x, except NaN in one element of the given rows at training step ``t``; counts its calls."""

    def __init__(self, rows: list[int], t: int) -> None:
        super().__init__()
        self.rows, self.t, self.calls = rows, t, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = 0.2 * x
        return poison(out, self.rows, math.nan) if int(t[0]) == self.t else out


@pytest.mark.parametrize(
    ("method", "eta", "prediction", "clip_sample"),
    [("ddim", 0.0, "epsilon", True), ("ddpm", 0.0, "epsilon", True), ("ddim", 0.8, "v", False)],
)
def test_a_nan_of_an_intermediate_step_is_counted_once_at_the_end(rng, method, eta, prediction, clip_sample):
    n, steps = 10, 6
    rows = sorted(int(i) for i in rng.choice(n, size=int(rng.integers(1, 4)), replace=False))
    sampler = DiffusionSampler(NaNAtStep(rows, 0), (2, 3, 3), num_steps=steps, method=method, eta=eta,
                               prediction=prediction, clip_sample=clip_sample)  # fmt: skip
    middle = sampler.timesteps[int(rng.integers(1, steps - 1))]
    sampler.model.t = middle
    with pytest.raises(NonFiniteSamplesError, match=rf"{len(rows)} of {n} samples .*from DiffusionSampler\(") as info:
        sampler(n, generator=[torch.Generator().manual_seed(s) for s in range(n)], device="cpu")
    assert (info.value.count, info.value.num_samples, info.value.first) == (len(rows), n, rows[0])
    assert sampler.model.calls == steps  # no check stopped the chain early
    # Without the injected NaN the same chain is finite: the count is the NaN's doing.
    sampler.model.rows = []
    clean = sampler(n, generator=[torch.Generator().manual_seed(s) for s in range(n)], device="cpu")
    assert bool(torch.isfinite(clean).all())


def test_sample_range_passes_the_error_on_unchanged():
    raised = NonFiniteSamplesError(1, 2, "fn")

    def fn(num_samples, *, generator, device, labels=None):
        if len(fn.calls) == 1:
            raise raised
        fn.calls.append(num_samples)
        return torch.zeros(num_samples, 1, 1, 1)

    fn.calls = []
    with pytest.raises(NonFiniteSamplesError) as info:
        sample_range(fn, 0, 6, seed=0, batch_size=2, device="cpu")
    assert info.value is raised
    # A sampler's error carries the counts of the batch it was checking: here the first, of 2 samples.
    sampler = GANSampler(lambda z: z.reshape(-1, 1, 2, 2) * math.nan, (4,))
    with pytest.raises(NonFiniteSamplesError) as info:
        sample_range(sampler, 0, 5, seed=0, batch_size=2, device="cpu")
    assert (info.value.count, info.value.num_samples) == (2, 2)


def test_callable_sampler_counts_bad_samples_of_a_per_sample_function(rng):
    n, bad = 6, int(rng.integers(6))
    calls = []

    def fn(num_samples, *, generator, device, labels=None):
        calls.append(num_samples)
        x = torch.rand(num_samples, 1, 2, 2, generator=generator)
        return x * math.nan if len(calls) == bad + 1 else x

    sampler = CallableSampler(fn, (0, 1))
    with pytest.raises(NonFiniteSamplesError, match=r"from CallableSampler\(fn=") as info:
        sampler(n, generator=[torch.Generator() for _ in range(n)], device="cpu")
    assert (info.value.count, info.value.num_samples, info.value.first) == (1, n, bad)
    assert calls == [1] * n


def test_reconstructions_are_checked_once_over_all_batches(rng):
    n, bad = 7, int(rng.integers(7))
    images = torch.rand(n, 1, 2, 2)
    images[bad, 0, 1, 0] = math.nan
    with pytest.raises(NonFiniteSamplesError, match=r"1 of 7 samples .*from the decoder of reconstruct_images") as info:
        reconstruct_images(lambda x: x, lambda z: z, images, batch_size=3)
    assert (info.value.count, info.value.num_samples, info.value.first) == (1, n, bad)
