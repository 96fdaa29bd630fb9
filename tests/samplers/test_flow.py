"""Flow matching: the ODE sampler against the closed-form Gaussian flow, guidance, shards, and the training loss."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from lightning_genmetrics.samplers import (
    FlowMatchingSampler,
    NonFiniteSamplesError,
    drop_labels,
    flow_interpolate,
    flow_matching_loss,
    flow_time_grid,
    sample_range,
    shift_time,
)
from tests.callbacks.support import (
    TinyDiffusion,
    check_fid_guidance_sweep,
)

# ---------------------------------------------------------------------------------------------------------------
# The Gaussian oracle. For data x ~ N(μ, s²) per coordinate, ε ~ N(0, 1) and x_t = (1 − t)·x + t·ε, x_t is Gaussian
# with mean m_t = (1 − t)·μ and variance V_t = (1 − t)²·s² + t², and Cov(ε − x, x_t) = t − (1 − t)·s², so the
# optimal velocity is linear in x_t:
#   v*(x_t, t) = E[ε − x | x_t] = −μ + k_t·(x_t − (1 − t)·μ) = k_t·x_t + b_t,
#   k_t = (t − (1 − t)·s²) / V_t,   b_t = −μ·(1 + (1 − t)·k_t).
# Since k_t = V_t'/(2·V_t), the ODE dx/dt = v* is solved by x_t = m_t + √V_t·ε: it maps the noise ε at t = 1 to
# μ + s·ε at t = 0, sample by sample.
# Guidance: v is affine in μ with a coefficient that depends on s alone, so with equal variances
# (1 + w)·v*(·; μ_c) − w·v*(·; μ_∅) = v*(·; (1 + w)·μ_c − w·μ_∅): the guided flow is the exact flow of
# N((1 + w)·μ_c − w·μ_∅, s²), and maps ε to (1 + w)·μ_c − w·μ_∅ + s·ε.
# Every Euler or Heun step of a velocity k·x + b is affine too, so the sampler's output is A·ε + B with scalars
# per coordinate that a float64 recursion gives exactly: the discretisation the sampler must reproduce.
# ---------------------------------------------------------------------------------------------------------------


def velocity_coefficients(t: float, mu: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = (t - (1 - t) * var) / ((1 - t) ** 2 * var + t**2)
    return k, -mu * (1 + (1 - t) * k)


def guided_coefficients(t, w, mu_c, var_c, mu_null, var_null):
    k_c, b_c = velocity_coefficients(t, mu_c, var_c)
    k_n, b_n = velocity_coefficients(t, mu_null, var_null)
    return (1 + w) * k_c - w * k_n, (1 + w) * b_c - w * b_n


def discrete_map(times: list[float], solver: str, coefficients) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) with sampler output = A·ε + B, by the float64 recursion of the solver's affine steps."""
    a, b = 1.0, 0.0
    for t, t_next in itertools.pairwise(times):
        dt = t_next - t
        k, c = coefficients(t)
        if solver == "euler":
            a, b = a + dt * k * a, b + dt * (k * b + c)
        else:
            k2, c2 = coefficients(t_next)
            # x̃ = (1 + dt·k)·x + dt·c;  x' = x + dt/2·(k·x + c + k2·x̃ + c2)
            pa, pb = (1 + dt * k) * a, (1 + dt * k) * b + dt * c
            a, b = a + dt / 2 * (k * a + k2 * pa), b + dt / 2 * (k * b + c + k2 * pb + c2)
    return a, b


def continuous_map(coefficients, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of the exact ODE solution x_0 = A·ε + B, by a fine float64 integration from t = 1 to t = 0."""

    def rhs(t, y):
        k, c = coefficients(t)
        return np.concatenate([k * y[:dim], k * y[dim:] + c])

    y1 = np.concatenate([np.ones(dim), np.zeros(dim)])
    solution = solve_ivp(rhs, (1.0, 0.0), y1, method="DOP853", rtol=1e-11, atol=1e-12)
    assert solution.success
    return solution.y[:dim, -1], solution.y[dim:, -1]


class FlowOracle(torch.nn.Module):
    """The exact velocity for data N(means[label], stds[label]²) per channel; records every call's inputs."""

    def __init__(self, means: np.ndarray, stds: np.ndarray, *, record: bool = False) -> None:
        super().__init__()
        self.means = torch.tensor(means, dtype=torch.float64)  # [num_labels, C]
        self.vars = torch.tensor(stds, dtype=torch.float64) ** 2
        self.record = record
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.record:
            self.calls.append((x.clone(), t.clone(), None if labels is None else labels.clone()))
        rows = torch.zeros(x.shape[0], dtype=torch.int64) if labels is None else labels
        mu, var = self.means[rows][:, :, None, None], self.vars[rows][:, :, None, None]
        s = t.double().reshape(-1, 1, 1, 1)
        k = (s - (1 - s) * var) / ((1 - s) ** 2 * var + s**2)
        return (k * x.double() - mu * (1 + (1 - s) * k)).to(x.dtype)


def class_moments(samples: torch.Tensor, labels: torch.Tensor, label: int) -> tuple[np.ndarray, np.ndarray]:
    rows = samples[labels == label].double().flatten(1).numpy()
    return rows.mean(axis=0), rows.std(axis=0)


def initial_noise(seed: int, n: int, dim: int) -> np.ndarray:
    # The sampler's first draw from its single generator: the noise x_1 = ε.
    return torch.randn((n, dim, 1, 1), generator=torch.Generator().manual_seed(seed)).flatten(1).double().numpy()


# ---------------------------------------------------------------------------------------------------------------
# Time grid
# ---------------------------------------------------------------------------------------------------------------


def test_time_grid_is_the_shifted_uniform_grid(rng):
    num_steps, shift = int(rng.integers(2, 50)), float(rng.uniform(0.2, 6.0))
    grid = flow_time_grid(num_steps, shift)
    uniform = np.linspace(1.0, 0.0, num_steps + 1)
    np.testing.assert_allclose(grid, shift * uniform / (1 + (shift - 1) * uniform), rtol=1e-13, atol=0)
    assert grid[0] == 1.0
    assert grid[-1] == 0.0
    assert all(isinstance(t, float) for t in grid)
    assert all(a > b for a, b in itertools.pairwise(grid))
    assert flow_time_grid(num_steps) == [1 - k / num_steps for k in range(num_steps + 1)]
    # A shift above 1 puts the midpoint of the step budget at higher noise.
    assert shift_time(0.5, 3.0) == 0.75
    assert shift_time(0.5, 1 / 3) == 0.25


def test_the_model_sees_the_grid_as_float32_times():
    oracle = FlowOracle(np.zeros((1, 1)), np.ones((1, 1)), record=True)
    sampler = FlowMatchingSampler(oracle, (1, 1, 1), num_steps=5, solver="heun", shift=3.0)
    sampler(4, generator=torch.Generator().manual_seed(0), device="cpu")
    grid = flow_time_grid(5, 3.0)
    expected = [t for pair in itertools.pairwise(grid) for t in pair]  # Heun: t, then t_next
    assert len(oracle.calls) == 10
    for (_, t, _), value in zip(oracle.calls, expected, strict=True):
        assert t.dtype == torch.float32
        assert t.shape == (4,)
        assert torch.equal(t, torch.full((4,), value, dtype=torch.float32))


# ---------------------------------------------------------------------------------------------------------------
# The Gaussian flow
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("solver", "num_steps", "shift", "map_atol"),
    [("heun", 64, 1.0, 1e-3), ("heun", 64, 3.0, 1e-3), ("euler", 512, 1.0, 5e-3)],
)
def test_reproduces_each_class_of_gaussian_data(rng, solver, num_steps, shift, map_atol):
    # 16,000 samples per class and s <= 0.5: the moments' standard errors are below 0.004, so 0.02 is >= 5 of them.
    # One coordinate keeps every tensor under torch's 32,768-element grain, so it runs on one thread (fast on a
    # loaded machine).
    num_classes, dim, n = 2, 1, 32_000
    means, stds = rng.uniform(-0.6, 0.6, (num_classes, dim)), rng.uniform(0.2, 0.5, (num_classes, dim))
    oracle = FlowOracle(means, stds)
    sampler = FlowMatchingSampler(oracle, (dim, 1, 1), num_steps=num_steps, solver=solver, shift=shift,
                                  clamp_output=False)  # fmt: skip
    seed = int(rng.integers(2**31))
    labels = torch.arange(n) % num_classes
    samples = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=labels)
    assert samples.dtype == torch.float32
    assert samples.shape == (n, dim, 1, 1)
    noise = initial_noise(seed, n, dim)
    for c in range(num_classes):
        # The criterion: mean and standard deviation within 0.02 of the data's.
        mean, std = class_moments(samples, labels, c)
        np.testing.assert_allclose(mean, means[c], atol=0.02, rtol=0)
        np.testing.assert_allclose(std, stds[c], atol=0.02, rtol=0)
        # Sample by sample, the output is the solver's own affine map of its noise, up to float32 rounding ...
        a, b = discrete_map(sampler.times, solver, lambda t, c=c: velocity_coefficients(t, means[c], stds[c] ** 2))
        rows = (labels == c).numpy()
        np.testing.assert_allclose(samples[rows].flatten(1).numpy(), a * noise[rows] + b, atol=2e-5, rtol=0)
        # ... and that map is close to the exact transport ε -> μ + s·ε (Heun's error is second order in the step).
        np.testing.assert_allclose(a, stds[c], atol=map_atol, rtol=0)
        np.testing.assert_allclose(b, means[c], atol=map_atol, rtol=0)


def test_unconditional_model_is_called_without_labels(rng):
    means, stds = rng.uniform(-0.5, 0.5, (1, 1)), rng.uniform(0.2, 0.5, (1, 1))
    oracle = FlowOracle(means, stds, record=True)
    sampler = FlowMatchingSampler(oracle, (1, 1, 1), num_steps=64, solver="heun", clamp_output=False)
    samples = sampler(16_000, generator=torch.Generator().manual_seed(int(rng.integers(2**31))), device="cpu")
    assert all(labels is None for _, _, labels in oracle.calls)
    mean, std = class_moments(samples, torch.zeros(16_000), 0)
    np.testing.assert_allclose(mean, means[0], atol=0.02, rtol=0)
    np.testing.assert_allclose(std, stds[0], atol=0.02, rtol=0)


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_guidance_with_equal_variances_gives_the_extrapolated_gaussian(rng, w):
    num_classes, dim, n = 1, 1, 16_000  # standard errors below 0.004, and 2N rows under the grain, as above
    means = rng.uniform(-0.5, 0.5, (num_classes + 1, dim))  # row num_classes: the null label's data
    std = rng.uniform(0.2, 0.5, dim)
    oracle = FlowOracle(means, np.tile(std, (num_classes + 1, 1)))
    sampler = FlowMatchingSampler(oracle, (dim, 1, 1), num_steps=64, solver="heun", guidance=w,
                                  null_label=num_classes, clamp_output=False)  # fmt: skip
    seed = int(rng.integers(2**31))
    labels = torch.arange(n) % num_classes
    samples = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=labels)
    noise = initial_noise(seed, n, dim)
    for c in range(num_classes):
        target = (1 + w) * means[c] - w * means[num_classes]
        mean, sample_std = class_moments(samples, labels, c)
        np.testing.assert_allclose(mean, target, atol=0.02, rtol=0)
        np.testing.assert_allclose(sample_std, std, atol=0.02, rtol=0)
        # The derivation, checked: a fine integration of the guided ODE itself maps ε to target + s·ε.
        guided = lambda t, c=c: guided_coefficients(t, w, means[c], std**2, means[num_classes], std**2)  # noqa: E731
        exact_a, exact_b = continuous_map(guided, dim)
        np.testing.assert_allclose(exact_a, std, atol=1e-8, rtol=0)
        np.testing.assert_allclose(exact_b, target, atol=1e-8, rtol=0)
        rows = (labels == c).numpy()
        a, b = discrete_map(sampler.times, "heun", guided)
        np.testing.assert_allclose(samples[rows].flatten(1).numpy(), a * noise[rows] + b, atol=2e-5, rtol=0)


def test_guidance_with_unequal_variances_follows_the_guided_ode(rng):
    # No closed form here: the reference is a fine float64 integration of the guided linear ODE, whose solution maps
    # ε to A·ε + B, so the guided samples are N(B, A²) exactly; the sampler must reproduce its Heun discretisation of
    # that ODE sample by sample, and the discretisation must be close to the exact map.
    # Ranges where the guided map stays moderate (|A|, |B| < 3): a null variance far above the class's and a strong w
    # make the guided ODE expand fast, and 64 steps would no longer be close to it.
    dim, n, w = 2, 4_000, float(rng.uniform(0.5, 2.0))  # 2N·dim = 16,000 elements
    means, stds = rng.uniform(-0.5, 0.5, (2, dim)), rng.uniform(0.3, 0.6, (2, dim))  # label 0, null label 1
    oracle = FlowOracle(means, stds)
    sampler = FlowMatchingSampler(oracle, (dim, 1, 1), num_steps=64, solver="heun", guidance_scale=1 + w,
                                  null_label=1, clamp_output=False)  # fmt: skip
    seed = int(rng.integers(2**31))
    samples = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=torch.zeros(n).long())

    def coefficients(t):
        return guided_coefficients(t, w, means[0], stds[0] ** 2, means[1], stds[1] ** 2)

    exact_a, exact_b = continuous_map(coefficients, dim)
    a, b = discrete_map(sampler.times, "heun", coefficients)
    np.testing.assert_allclose(a, exact_a, atol=2e-3, rtol=0)
    np.testing.assert_allclose(b, exact_b, atol=2e-3, rtol=0)
    np.testing.assert_allclose(samples.flatten(1).numpy(), a * initial_noise(seed, n, dim) + b, atol=5e-5, rtol=1e-5)


def test_guidance_is_one_batch_of_2n_with_the_null_label(rng):
    oracle = FlowOracle(rng.uniform(-0.5, 0.5, (4, 1)), rng.uniform(0.3, 0.8, (4, 1)), record=True)
    sampler = FlowMatchingSampler(oracle, (1, 2, 2), num_steps=3, solver="heun", guidance=2.0, null_label=3)
    labels = torch.tensor([0, 2, 1, 2, 0])
    sampler(5, generator=torch.Generator().manual_seed(1), device="cpu", labels=labels)
    assert len(oracle.calls) == 6  # 3 Heun steps, two evaluations each, each one call
    for x, t, called in oracle.calls:
        assert x.shape == (10, 1, 2, 2)
        assert t.shape == (10,)
        assert torch.equal(x[:5], x[5:])
        assert torch.equal(t[:5], t[5:])
        assert torch.equal(called, torch.cat([labels, torch.full((5,), 3)]))


def test_guidance_scale_is_one_plus_w(rng):
    oracle = FlowOracle(rng.uniform(-0.5, 0.5, (3, 1)), rng.uniform(0.3, 0.8, (3, 1)))
    common = {"num_steps": 4, "null_label": 2, "clamp_output": False}
    w = float(rng.uniform(0.1, 4.0))
    by_w = FlowMatchingSampler(oracle, (1, 2, 2), guidance=w, **common)
    by_scale = FlowMatchingSampler(oracle, (1, 2, 2), guidance_scale=1 + w, **common)
    assert by_scale.guidance == pytest.approx(w, abs=1e-12)
    labels = torch.tensor([0, 1, 1])
    a = by_w(3, generator=torch.Generator().manual_seed(5), device="cpu", labels=labels)
    b = by_scale(3, generator=torch.Generator().manual_seed(5), device="cpu", labels=labels)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="pass one"):
        FlowMatchingSampler(oracle, (1, 2, 2), guidance=1.0, guidance_scale=2.0, null_label=2)


# ---------------------------------------------------------------------------------------------------------------
# Shards, generators, dtype, modes
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_shards_equal_one_process(rng, solver):
    oracle = FlowOracle(rng.uniform(-0.5, 0.5, (5, 2)), rng.uniform(0.3, 0.8, (5, 2)))
    sampler = FlowMatchingSampler(oracle, (2, 2, 2), num_steps=6, solver=solver, shift=2.0, guidance=1.5,
                                  null_label=4, num_classes=4)  # fmt: skip
    seed = int(rng.integers(2**63))
    whole = sample_range(sampler, 0, 24, seed=seed, batch_size=24, device="cpu")
    # Two "ranks" with uneven contiguous shards and their own batch sizes; labels drawn per sample.
    shards = [
        sample_range(sampler, 0, 9, seed=seed, batch_size=4, device="cpu"),
        sample_range(sampler, 9, 24, seed=seed, batch_size=7, device="cpu"),
    ]
    assert torch.equal(torch.cat(shards), whole)
    other = sample_range(sampler, 0, 24, seed=seed ^ 1, batch_size=24, device="cpu")
    assert not torch.equal(other, whole)


def test_per_sample_labels_come_after_the_noise():
    oracle = FlowOracle(np.zeros((3, 1)), np.ones((3, 1)), record=True)
    sampler = FlowMatchingSampler(oracle, (1, 1, 1), num_steps=2, num_classes=3)
    generators = [torch.Generator().manual_seed(s) for s in (4, 5)]
    sampler(2, generator=generators, device="cpu")
    for row, seed in enumerate((4, 5)):
        g = torch.Generator().manual_seed(seed)
        noise, label = torch.randn((1, 1, 1), generator=g), torch.randint(3, (1,), generator=g)
        x, _, labels = oracle.calls[0]
        assert torch.equal(x[row], noise)
        assert labels[row] == label


def test_bfloat16_model_gets_bfloat16_states_and_float32_times():
    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.full((1,), 0.5, dtype=torch.bfloat16))
            self.seen: list[tuple[torch.dtype, torch.dtype, bool]] = []

        def forward(self, x, t):
            self.seen.append((x.dtype, t.dtype, self.training))
            return x * self.scale

    model = Recorder()
    out = FlowMatchingSampler(model, (1, 2, 2), num_steps=3, solver="heun")(
        2, generator=torch.Generator().manual_seed(0), device="cpu"
    )
    assert out.dtype == torch.float32
    assert model.seen == [(torch.bfloat16, torch.float32, False)] * 6
    assert model.training  # restored after sampling


def test_non_finite_output_raises():
    sampler = FlowMatchingSampler(lambda x, t: x / (1 - t.reshape(-1, 1, 1, 1)), (1, 2, 2), num_steps=2)
    with pytest.raises(NonFiniteSamplesError, match="2 of 2 samples"):
        sampler(2, generator=torch.Generator().manual_seed(0), device="cpu")


def test_zero_samples_and_repr():
    sampler = FlowMatchingSampler(lambda x, t: x, (3, 4, 4), num_steps=2)
    assert sampler(0, generator=[], device="cpu").shape == (0, 3, 4, 4)
    assert repr(sampler) == "FlowMatchingSampler(sample_shape=(3, 4, 4), num_steps=2, solver='euler', shift=1.0, " \
        "guidance=0.0)"  # fmt: skip


def test_model_returning_its_input_is_not_updated_in_place():
    # The update writes into the velocity tensor: an identity model must not alias the state.
    sampler = FlowMatchingSampler(lambda x, t: x, (1, 1, 2), num_steps=4, solver="heun", clamp_output=False)
    got = sampler(1, generator=torch.Generator().manual_seed(0), device="cpu")
    noise = torch.randn((1, 1, 1, 2), generator=torch.Generator().manual_seed(0))
    # dx/dt = x: each Heun step multiplies by 1 + dt + dt²/2 with dt = −1/4.
    torch.testing.assert_close(got, noise * (1 - 0.25 + 0.25**2 / 2) ** 4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"solver": "rk4"}, ValueError, "`solver` to be 'euler' or 'heun', got 'rk4'"),
        ({"shift": 0.0}, ValueError, "`shift` > 0, got 0.0"),
        ({"shift": "3"}, TypeError, "`shift` to be a float"),
        ({"num_steps": 0}, ValueError, "num_steps"),
        ({"guidance": 1.0}, ValueError, "needs `null_label`"),
        ({"guidance": -2.0, "null_label": 1}, ValueError, "`guidance` >= -1"),
        ({"null_label": 1.0}, TypeError, "`null_label` to be an int or None"),
        ({"dtype": torch.int32}, TypeError, "`dtype`"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FlowMatchingSampler(lambda x, t: x, (1, 2, 2), **kwargs)


def test_bad_calls():
    with pytest.raises(ValueError, match="needs `labels`"):
        FlowMatchingSampler(lambda x, t, c: x, (1, 2, 2), guidance=1.0, null_label=3)(
            2, generator=torch.Generator(), device="cpu"
        )
    with pytest.raises(ValueError, match=r"return shape \(2, 1, 2, 2\), got shape \(2, 1, 2\)"):
        FlowMatchingSampler(lambda x, t: x[..., 0], (1, 2, 2))(2, generator=torch.Generator(), device="cpu")
    with pytest.raises(TypeError, match=r"return a torch\.Tensor, got tuple"):
        FlowMatchingSampler(lambda x, t: (x,), (1, 2, 2))(2, generator=torch.Generator(), device="cpu")


# ---------------------------------------------------------------------------------------------------------------
# Training loss
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("time_distribution", ["uniform", "logit_normal"])
def test_loss_draws_time_noise_and_dropout_in_order(rng, time_distribution):
    x0 = torch.tensor(rng.normal(size=(64, 2, 3, 3)), dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, 5, 64))
    seen = {}

    def model(x_t, t, c):
        seen.update(x_t=x_t, t=t, c=c)
        return torch.tanh(x_t)

    seed, m, s = int(rng.integers(2**31)), float(rng.normal()), float(rng.uniform(0.5, 2))
    loss = flow_matching_loss(model, x0, labels=labels, p_uncond=0.3, null_label=5, time_distribution=time_distribution,
                              logit_mean=m, logit_std=s, generator=torch.Generator().manual_seed(seed))  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    t = (
        torch.rand(64, generator=g)
        if time_distribution == "uniform"
        else torch.sigmoid(torch.randn(64, generator=g) * s + m)
    )
    noise = torch.randn(x0.shape, generator=g)
    dropped = drop_labels(labels, 0.3, 5, generator=g)
    assert seen["t"].dtype == torch.float32
    assert torch.equal(seen["t"], t)
    torch.testing.assert_close(seen["x_t"], (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise)
    assert torch.equal(seen["c"], dropped)
    assert 0 < int((dropped == 5).sum()) < 64
    torch.testing.assert_close(loss, torch.mean((torch.tanh(seen["x_t"]) - (noise - x0)) ** 2))


def test_logit_normal_times_have_the_requested_logit_moments(rng):
    m, s = float(rng.uniform(-1, 1)), float(rng.uniform(0.5, 1.5))
    seen = {}

    def model(x_t, t):
        seen["t"] = t
        return x_t

    flow_matching_loss(model, torch.zeros(40_000, 1), time_distribution="logit_normal", logit_mean=m, logit_std=s,
                       generator=torch.Generator().manual_seed(int(rng.integers(2**31))))  # fmt: skip
    logits = torch.logit(seen["t"].double())
    assert abs(logits.mean().item() - m) < 0.03
    assert abs(logits.std().item() - s) < 0.03


def test_the_oracle_attains_the_loss_minimum(rng):
    # The optimal velocity's loss is E[Var(ε − x | x_t)]; a worse model scores higher. Var(ε − x | x_t) = s² + 1 −
    # (t − (1 − t)·s²)²/V_t per coordinate, averaged over t ~ U[0, 1] by quadrature.
    mu, std = rng.uniform(-0.5, 0.5, (1, 1)), rng.uniform(0.3, 0.8, (1, 1))
    oracle = FlowOracle(mu, std)
    x0 = torch.tensor(mu[0, 0] + std[0, 0] * rng.normal(size=(200_000, 1, 1, 1)))
    seed = int(rng.integers(2**31))
    loss = flow_matching_loss(oracle, x0, generator=torch.Generator().manual_seed(seed)).item()
    t = np.linspace(0, 1, 100_001)
    var = std[0, 0] ** 2
    expected = np.mean(var + 1 - (t - (1 - t) * var) ** 2 / ((1 - t) ** 2 * var + t**2))
    assert abs(loss - expected) < 0.01
    worse = flow_matching_loss(lambda x, t: oracle(x, t) * 1.1, x0, generator=torch.Generator().manual_seed(seed))
    assert worse.item() > loss


def test_interpolate_and_loss_refuse_bad_input():
    with pytest.raises(TypeError, match="floating point tensor of times"):
        flow_interpolate(torch.zeros(2, 1), torch.tensor([0, 1]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"`t` to have shape \[2\]"):
        flow_interpolate(torch.zeros(2, 1), torch.zeros(3), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="needs `labels` and `null_label`"):
        flow_matching_loss(lambda x, t, c: x, torch.zeros(2, 1), labels=torch.tensor([0, 1]), p_uncond=0.1)
    with pytest.raises(ValueError, match="'uniform' or 'logit_normal', got 'beta'"):
        flow_matching_loss(lambda x, t: x, torch.zeros(2, 1), time_distribution="beta")
    with pytest.raises(ValueError, match=r"`logit_std` > 0, got 0\.0"):
        flow_matching_loss(lambda x, t: x, torch.zeros(2, 1), logit_std=0.0)
    with pytest.raises(ValueError, match="`model output` to have the shape"):
        flow_matching_loss(lambda x, t: x[:, :0], torch.zeros(2, 1))


# ---------------------------------------------------------------------------------------------------------------
# The callback sweeps guidance over a flow-matching sampler
# ---------------------------------------------------------------------------------------------------------------


def flow_sampler(pl_module: TinyDiffusion) -> FlowMatchingSampler:
    # The tiny denoiser is called model(x, t, labels) and has an embedding for label 2, the null label.
    return FlowMatchingSampler(pl_module.denoiser, (3, 8, 8), num_steps=2, solver="heun", null_label=2, num_classes=2)


def test_callback_sweeps_guidance_over_a_flow_sampler(tmp_path: Path) -> None:
    check_fid_guidance_sweep(tmp_path, flow_sampler, TinyDiffusion())
