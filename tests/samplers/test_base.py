"""The seeding rule, the shard-exact sample_range, CallableSampler and the protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_genmetrics.samplers import (
    CallableSampler,
    DiffusionSampler,
    GANSampler,
    NonFiniteSamplesError,
    Sampler,
    VAESampler,
    sample_generators,
    sample_range,
    sample_seed,
    sampler_output_range,
    splitmix64,
)
from lightning_genmetrics.samplers.base import eval_mode

GAMMA = 0x9E3779B97F4A7C15
PINNED_NOISE = torch.tensor([0.01984543912112713, -0.8807255625724792, 0.5285565853118896])


def test_splitmix64_matches_the_reference_sequence():
    # The first outputs of SplitMix64 seeded with 1234567 (the published test vector); output k is splitmix64(s + kγ).
    expected = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
                16408922859458223821]  # fmt: skip
    assert [splitmix64((1234567 + k * GAMMA) % 2**64) for k in range(5)] == expected


def test_sample_seed_is_pinned():
    # The rule is part of the API: these values must never change between versions.
    assert [sample_seed(0, i) for i in range(3)] == [16294208416944391909, 16294208418136551787, 16294208416427350654]
    assert sample_seed(2**64 - 1, 2**32 - 1) == 16490336270650886730
    assert sample_seed(20261120, 123456) == 6929784687120159472
    # The noise also depends on torch's CPU generator; should a torch release change its stream, this says so.
    noise = torch.randn(3, generator=torch.Generator().manual_seed(sample_seed(0, 0)))
    torch.testing.assert_close(noise, PINNED_NOISE)


def test_sample_seeds_low_bits_are_distinct(rng):
    # torch's CPU generator only uses the low 32 bits of its seed; they are a bijection of the index.
    seed = int(rng.integers(2**63))
    start = int(rng.integers(2**32 - 100_000))
    low = np.array([sample_seed(seed, i) & 0xFFFFFFFF for i in range(start, start + 100_000)])
    assert np.unique(low).size == low.size
    assert sample_seed(seed, start) != sample_seed(seed + 1, start)


def test_generators_draw_per_index(rng):
    seed = int(rng.integers(2**63))
    gens = sample_generators(seed, 10, 13)
    for i, g in zip(range(10, 13), gens, strict=True):
        expected = torch.randn(5, generator=torch.Generator().manual_seed(sample_seed(seed, i)))
        assert torch.equal(torch.randn(5, generator=g), expected)


def noise_fn(num_samples, *, generator, device, labels=None):
    """A batch-invariant 'model' when given per-sample generators; records each call's batch size."""
    noise_fn.calls.append(num_samples)
    if isinstance(generator, torch.Generator):
        x = torch.rand(num_samples, 1, 2, 2, generator=generator)
    else:
        x = torch.stack([torch.rand(1, 2, 2, generator=g) for g in generator]) if generator else torch.empty(0, 1, 2, 2)
    if labels is not None:
        x = x + 0 * labels.reshape(-1, 1, 1, 1)
    return x.to(device)


noise_fn.calls = []


@pytest.mark.parametrize("accepts_generator_list", [False, True])
def test_sample_range_shards_equal_one_process(rng, accepts_generator_list):
    sampler = CallableSampler(noise_fn, (0, 1), accepts_generator_list=accepts_generator_list)
    seed = int(rng.integers(2**64, dtype=np.uint64))
    noise_fn.calls.clear()
    whole = sample_range(sampler, 0, 64, seed=seed, batch_size=64, device="cpu")
    assert noise_fn.calls == ([64] if accepts_generator_list else [1] * 64)
    parts = [sample_range(sampler, 0, 40, seed=seed, batch_size=7, device="cpu"),
             sample_range(sampler, 40, 64, seed=seed, batch_size=9, device="cpu")]  # fmt: skip
    assert torch.equal(whole, torch.cat(parts))
    for rank, world in ((0, 3), (1, 3), (2, 3)):
        lo, hi = 64 * rank // world, 64 * (rank + 1) // world
        assert torch.equal(sample_range(sampler, lo, hi, seed=seed, batch_size=5, device="cpu"), whole[lo:hi])


def test_sample_range_passes_the_slice_of_labels():
    seen = []

    def fn(num_samples, *, generator, device, labels=None):
        seen.append(labels.tolist())
        return torch.zeros(num_samples, 1, 1, 1)

    sampler = CallableSampler(fn, (0, 1), accepts_generator_list=True)
    sample_range(sampler, 3, 8, seed=0, batch_size=2, device="cpu", labels=torch.tensor([3, 4, 5, 6, 7]))
    assert seen == [[3, 4], [5, 6], [7]]


def test_sample_range_leaves_the_global_rng():
    sampler = GANSampler(lambda z: z.reshape(-1, 1, 2, 2).tanh(), (4,))
    state = torch.get_rng_state()
    sample_range(sampler, 0, 10, seed=1, batch_size=4, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)


def test_empty_range():
    sampler = CallableSampler(noise_fn, (0, 1))
    assert sample_range(sampler, 7, 7, seed=0, batch_size=4, device="cpu").shape == (0, 1, 2, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"start": 5, "stop": 4}, ValueError, r"0 <= `start` <= `stop` <= 2\*\*32, got start=5, stop=4"),
        ({"stop": 2**32 + 1}, ValueError, r"got start=0, stop=4294967297"),
        ({"start": -1}, ValueError, r"`start` to be an int >= 0, got -1"),
        ({"seed": -3}, ValueError, r"`seed` to be an int >= 0, got -3"),
        ({"seed": 2**64}, ValueError, r"`seed` to be below 2\*\*64, got 18446744073709551616"),
        ({"seed": 1.0}, TypeError, r"`seed` to be an int, got 1.0"),
        ({"batch_size": 0}, ValueError, r"`batch_size` to be an int >= 1, got 0"),
        ({"labels": torch.tensor([1, 2])}, ValueError, r"shape \[stop - start, ...\] = \[4, ...\], got shape \(2,\)"),
        ({"labels": torch.tensor(1)}, ValueError, r"got shape \(\)"),
        ({"sampler": "gan"}, TypeError, r"`sampler` to be callable, got str"),
    ],
)  # fmt: skip
def test_sample_range_bad_arguments(kwargs, error, match):
    arguments = {"sampler": CallableSampler(noise_fn, (0, 1)), "start": 0, "stop": 4, "seed": 0, "batch_size": 2,
                 "device": "cpu", **kwargs}  # fmt: skip
    with pytest.raises(error, match=match):
        sample_range(**arguments)


def test_sample_range_checks_the_sampler_output():
    def short(num_samples, *, generator, device, labels=None):
        return torch.zeros(max(num_samples - 1, 0), 1, 2, 2)

    with pytest.raises(ValueError, match=r"return 3 samples for indices \[0, 3\), got shape \(2, 1, 2, 2\)"):
        sample_range(short, 0, 3, seed=0, batch_size=3, device="cpu")
    with pytest.raises(TypeError, match=r"`sampler output` to be a torch.Tensor, got list"):
        sample_range(lambda n, **kwargs: [0] * n, 0, 3, seed=0, batch_size=3, device="cpu")


def test_callable_sampler_checks_and_clamps():
    def fn(num_samples, *, generator, device, labels=None):
        return torch.linspace(-2, 2, 4 * num_samples).reshape(num_samples, 1, 2, 2)

    out = CallableSampler(fn, (-1, 1), accepts_generator_list=True)(3, generator=torch.Generator(), device="cpu")
    assert out.min() == -1
    assert out.max() == 1
    raw = CallableSampler(fn, (-1, 1), clamp_output=False)(3, generator=torch.Generator(), device="cpu")
    assert raw.min() == -2
    with pytest.raises(ValueError, match=r"`output_range` to be \(0, 1\) or \(-1, 1\), got \(0, 255\)"):
        CallableSampler(fn, (0, 255))
    with pytest.raises(TypeError, match="`fn` to be callable, got int"):
        CallableSampler(3, (0, 1))
    with pytest.raises(ValueError, match=r"`fn` to return shape \[num_samples, C, H, W\] with num_samples = 2, got"):
        CallableSampler(lambda n, **kwargs: torch.zeros(n, 4), (0, 1))(2, generator=torch.Generator(), device="cpu")
    # An Inf that clamping would turn into the bound 1 is still caught: the check comes before the clamp.
    with pytest.raises(NonFiniteSamplesError, match=r"NaN/Inf in 2 of 2 samples .* from CallableSampler\(fn=") as info:
        CallableSampler(lambda n, **kwargs: torch.full((n, 1, 1, 2), torch.inf), (0, 1))(
            2, generator=torch.Generator(), device="cpu"
        )
    assert (info.value.count, info.value.num_samples) == (2, 2)
    with pytest.raises(TypeError, match=r"floating point values, got dtype torch.uint8"):
        CallableSampler(lambda n, **kwargs: torch.zeros(n, 1, 1, 1, dtype=torch.uint8), (0, 1))(
            2, generator=torch.Generator(), device="cpu"
        )


def test_output_range_and_protocol():
    samplers = [
        CallableSampler(noise_fn, (0, 1)),
        DiffusionSampler(lambda z, t: z, (1, 2, 2)),
        GANSampler(lambda z: z, (1, 2, 2)),
        VAESampler(lambda z: z, (1, 2, 2)),
    ]
    assert [sampler_output_range(s) for s in samplers] == [(0.0, 1.0), (-1.0, 1.0), (-1.0, 1.0), (0.0, 1.0)]
    assert all(isinstance(s, Sampler) for s in samplers)
    with pytest.raises(TypeError, match=r"\(function\) to declare `output_range`"):
        sampler_output_range(noise_fn)
    noise_fn.output_range = (0, 255)
    try:
        with pytest.raises(ValueError, match=r"got \(0, 255\)"):
            sampler_output_range(noise_fn)
    finally:
        del noise_fn.output_range


def test_eval_mode_restores_each_flag():
    model = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Dropout())
    model[1].eval()
    with eval_mode(model, "not a module"):
        assert not any(m.training for m in model.modules())
    assert model.training
    assert model[0].training
    assert not model[1].training
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError
    assert model.training
    assert not model[1].training
