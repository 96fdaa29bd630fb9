"""DDPM/DDIM against closed-form Gaussian answers, guidance against hand computation, schedules against formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from lightning_genmetrics.samplers import (
    DiffusionSampler,
    NoiseSchedule,
    diffusion_loss,
    drop_labels,
    make_schedule,
    prediction_to_x0_epsilon,
    q_sample,
    sample_range,
    sampling_timesteps,
    velocity_target,
)

# ---------------------------------------------------------------------------------------------------------------
# The Gaussian oracle. For data x ~ N(μ, σ²) per coordinate and z_t = √a·x + √(1 − a)·ε (a = ᾱ_t), z_t ~ N(√a·μ, v)
# with v = a·σ² + 1 − a, and the optimal (posterior-mean) predictions are linear in z_t:
#   E[ε | z_t] = √(1 − a)/v · (z_t − √a·μ),   E[x | z_t] = μ + √a·σ²/v · (z_t − √a·μ),
#   E[v | z_t] = √a·E[ε | z_t] − √(1 − a)·E[x | z_t].
# ---------------------------------------------------------------------------------------------------------------


class GaussianOracle(torch.nn.Module):
    """The exact ε- or v-predictor for data N(μ, σ²) per channel (shape [C, 1, 1])."""

    def __init__(self, schedule: NoiseSchedule, mu: np.ndarray, sigma: np.ndarray, prediction: str) -> None:
        super().__init__()
        self.alphas_cumprod = schedule.alphas_cumprod
        self.mu = torch.tensor(mu, dtype=torch.float64).reshape(-1, 1, 1)
        self.var = torch.tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1) ** 2
        self.prediction = prediction

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        centred = z.double() - a.sqrt() * self.mu
        v = a * self.var + 1 - a
        eps = (1 - a).sqrt() / v * centred
        if self.prediction == "epsilon":
            return eps.float()
        x0 = self.mu + a.sqrt() * self.var / v * centred
        return (a.sqrt() * eps - (1 - a).sqrt() * x0).float()


def chain_moments(schedule, timesteps, method, eta, mu, var):
    """Exact mean and variance of the sampler's output with the oracle, by the linear-Gaussian recursion.

    Each step is x_prev = A·x + B + s·z for scalars A, B, s, so the moments propagate in closed form (float64);
    this is the discretisation the sampler should reproduce, and its distance to (μ, σ²) the discretisation error.
    """
    ac = schedule.alphas_cumprod.numpy()
    m, V = np.zeros_like(mu), np.ones_like(mu)
    for k, t in enumerate(timesteps):
        last = k == len(timesteps) - 1
        a, ap = ac[t], 1.0 if last else ac[timesteps[k + 1]]
        v = a * var + 1 - a
        gain_x0, gain_eps = np.sqrt(a) * var / v, np.sqrt(1 - a) / v  # x̂ = μ + gain_x0·(x − √a μ), ε̂ = gain_eps·(…)
        if method == "ddpm":
            alpha = a / ap
            c0, c1 = np.sqrt(ap) * (1 - alpha) / (1 - a), np.sqrt(alpha) * (1 - ap) / (1 - a)
            s2 = (1 - alpha) * (1 - ap) / (1 - a)
            A, B = c0 * gain_x0 + c1, c0 * (mu - gain_x0 * np.sqrt(a) * mu)
        else:
            s2 = eta**2 * (1 - ap) / (1 - a) * (1 - a / ap)
            c = np.sqrt(max(1 - ap - s2, 0.0))
            A = np.sqrt(ap) * gain_x0 + c * gain_eps
            B = np.sqrt(ap) * (mu - gain_x0 * np.sqrt(a) * mu) - c * gain_eps * np.sqrt(a) * mu
        m, V = A * m + B, A * A * V + (0.0 if last else s2)
    return m, V


GAUSSIAN_CASES = [
    # (schedule, method, eta, prediction, num_steps, spacing)
    ("linear", "ddpm", 0.0, "epsilon", 50, "trailing"),
    ("linear", "ddim", 0.0, "epsilon", 50, "trailing"),
    ("linear", "ddim", 1.0, "epsilon", 50, "trailing"),
    ("cosine", "ddim", 0.5, "v", 20, "trailing"),
    ("cosine", "ddpm", 0.0, "v", 20, "leading"),
    ("linear", "ddim", 0.0, "v", 20, "linspace"),
]


@pytest.mark.parametrize(("schedule", "method", "eta", "prediction", "num_steps", "spacing"), GAUSSIAN_CASES)
def test_gaussian_samples_match_the_exact_discretised_chain(rng, schedule, method, eta, prediction, num_steps, spacing):
    # Sharp check of the update rules: with the oracle, the output of a few-step chain is Gaussian with moments
    # known in closed form (chain_moments). 4000 samples × 3 channels, each moment within 5 standard errors.
    n = 4000
    mu, sigma = rng.uniform(-0.5, 0.5, 3), rng.uniform(0.3, 0.8, 3)
    sched = make_schedule(schedule, 1000)
    oracle = GaussianOracle(sched, mu, sigma, prediction)
    sampler = DiffusionSampler(
        oracle, (3, 1, 1), sched, num_steps=num_steps, method=method, eta=eta, prediction=prediction,
        clip_sample=False, timestep_spacing=spacing, clamp_output=False,
    )  # fmt: skip
    seed = int(rng.integers(2**31))
    x = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu").double().reshape(n, 3).numpy()
    mean, var = chain_moments(sched, sampler.timesteps, method, eta, mu, sigma**2)
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n))
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 5 * var * np.sqrt(2 / (n - 1)))


@pytest.mark.parametrize(
    ("schedule", "method", "eta", "prediction"),
    [("cosine", "ddpm", 0.0, "epsilon"), ("cosine", "ddim", 0.0, "epsilon"), ("cosine", "ddim", 1.0, "v")],
)
def test_gaussian_samples_have_the_data_mean_and_variance(rng, schedule, method, eta, prediction):
    # The samplers converge to the data: 4000 samples of N(μ, σ²) (3 channels) have mean μ and variance σ² within
    # 5 standard errors plus the discretisation error of the chain. With 500 of the 1000 steps on the cosine schedule
    # that error is at most ~1.6% of σ² for σ >= 0.4 (DDPM; ~0.7% for DDIM) against a 5-SE band of 11%, and is
    # checked below to stay under 2.5%.
    n, num_steps = 4000, 500
    mu, sigma = rng.uniform(-0.5, 0.5, 3), rng.uniform(0.4, 0.8, 3)
    sched = make_schedule(schedule, 1000)
    sampler = DiffusionSampler(
        GaussianOracle(sched, mu, sigma, prediction), (3, 1, 1), sched, num_steps=num_steps, method=method, eta=eta,
        prediction=prediction, clip_sample=False, clamp_output=False,
    )  # fmt: skip
    chain_mean, chain_var = chain_moments(sched, sampler.timesteps, method, eta, mu, sigma**2)
    bias_mean, bias_var = np.abs(chain_mean - mu), np.abs(chain_var - sigma**2)
    np.testing.assert_array_less(bias_var, 0.025 * sigma**2)
    np.testing.assert_array_less(bias_mean, 0.01 * sigma)
    seed = int(rng.integers(2**31))
    x = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu").double().reshape(n, 3).numpy()
    np.testing.assert_array_less(np.abs(x.mean(0) - mu), 5 * sigma / np.sqrt(n) + bias_mean)
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - sigma**2), 5 * sigma**2 * np.sqrt(2 / (n - 1)) + bias_var)


def test_one_data_point_is_recovered_exactly_by_ddim(rng):
    # σ → 0: every DDIM step (eta = 0) lands on the line through the data point, so any number of steps returns it.
    mu = rng.uniform(-0.9, 0.9, 2)
    sched = NoiseSchedule.linear(1000)
    sampler = DiffusionSampler(GaussianOracle(sched, mu, np.zeros(2), "epsilon"), (2, 1, 1), num_steps=3)
    x = sampler(5, generator=torch.Generator().manual_seed(0), device="cpu").reshape(5, 2)
    np.testing.assert_allclose(x.numpy(), np.broadcast_to(mu, (5, 2)), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Classifier-free guidance
# ---------------------------------------------------------------------------------------------------------------


class LabelledModel(torch.nn.Module):
    """ε(z, c) = 0.3·z + 0.05·c, ε(z, ∅) = −0.2·z + 0.1 (∅ = null_label); records every call's inputs."""

    def __init__(self, null_label: int) -> None:
        super().__init__()
        self.null_label = null_label
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls.append((z.clone(), t.clone(), labels.clone()))
        c = labels.to(z.dtype).reshape(-1, 1, 1, 1)
        null = (labels == self.null_label).reshape(-1, 1, 1, 1)
        return torch.where(null, -0.2 * z + 0.1, 0.3 * z + 0.05 * c)


@pytest.mark.parametrize("w", [0.5, 3.0, -1.0])
def test_guidance_matches_hand_computation(w):
    # One DDIM step from t = 999 to ᾱ = 1 returns x̂ = (z − √(1 − ᾱ)·ε̃)/√ᾱ with ε̃ = (1 + w)·ε(z, c) − w·ε(z, ∅).
    model = LabelledModel(null_label=10)
    sampler = DiffusionSampler(model, (2, 2, 2), num_steps=1, guidance=w, null_label=10, clip_sample=False,
                               clamp_output=False)  # fmt: skip
    labels = torch.tensor([0, 3, 7])
    out = sampler(3, generator=torch.Generator().manual_seed(5), device="cpu", labels=labels).double()
    z = torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(5)).double()
    c = labels.double().reshape(-1, 1, 1, 1)
    eps = (1 + w) * (0.3 * z + 0.05 * c) - w * (-0.2 * z + 0.1)
    a = sampler.schedule.alphas_cumprod[999].item()
    expected = (z - math.sqrt(1 - a) * eps) / math.sqrt(a)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_guidance_is_one_batch_of_2n_with_the_null_label():
    model = LabelledModel(null_label=-1)
    sampler = DiffusionSampler(model, (1, 2, 2), num_steps=4, guidance=2.0, null_label=-1)
    labels = torch.tensor([4, 0, 2])
    sampler(3, generator=torch.Generator().manual_seed(0), device="cpu", labels=labels)
    assert len(model.calls) == 4
    for (z, t, passed), step in zip(model.calls, sampler.timesteps, strict=True):
        assert z.shape == (6, 1, 2, 2)
        assert torch.equal(z[:3], z[3:])
        assert t.dtype == torch.int64
        assert t.tolist() == [step] * 6
        assert passed.tolist() == [4, 0, 2, -1, -1, -1]


def test_zero_guidance_is_plain_conditional_sampling():
    # w = 0 makes one conditional pass of N rows; it equals sampling the model with the labels fixed.
    labels = torch.tensor([1, 5, 2, 2])
    model = LabelledModel(null_label=9)
    guided = DiffusionSampler(model, (2, 1, 1), num_steps=10, method="ddpm", guidance=0.0, null_label=9)
    plain = DiffusionSampler(lambda z, t: LabelledModel(9)(z, t, labels), (2, 1, 1), num_steps=10, method="ddpm")
    got = guided(4, generator=torch.Generator().manual_seed(3), device="cpu", labels=labels)
    expected = plain(4, generator=torch.Generator().manual_seed(3), device="cpu")
    assert torch.equal(got, expected)
    assert all(z.shape[0] == 4 and (passed != 9).all() for z, _, passed in model.calls)


def test_guidance_scale_is_one_plus_w():
    labels = torch.tensor([0, 1, 2])
    kwargs = {"num_steps": 8, "method": "ddim", "eta": 0.7, "null_label": 3}
    by_w = DiffusionSampler(LabelledModel(3), (1, 2, 2), guidance=2.5, **kwargs)
    by_s = DiffusionSampler(LabelledModel(3), (1, 2, 2), guidance_scale=3.5, **kwargs)
    assert by_s.guidance == 2.5
    a = by_w(3, generator=torch.Generator().manual_seed(1), device="cpu", labels=labels)
    b = by_s(3, generator=torch.Generator().manual_seed(1), device="cpu", labels=labels)
    assert torch.equal(a, b)


def test_guidance_applies_to_v_predictions_as_to_epsilon():
    # Weights summing to one commute with the affine map v ↦ ε at fixed z_t, so guiding v equals guiding ε.
    sched = NoiseSchedule.linear(1000)

    def eps_model(z, t, labels):
        return LabelledModel(7)(z, t, labels)

    def v_model(z, t, labels):
        a = sched.alphas_cumprod[t].reshape(-1, 1, 1, 1).float()
        eps = eps_model(z, t, labels)
        x0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    labels = torch.tensor([1, 2])
    common = {"num_steps": 5, "guidance": 1.5, "null_label": 7, "clip_sample": False, "clamp_output": False}
    a = DiffusionSampler(eps_model, (1, 1, 3), **common)(2, generator=torch.Generator(), device="cpu", labels=labels)
    b = DiffusionSampler(v_model, (1, 1, 3), prediction="v", **common)(
        2, generator=torch.Generator(), device="cpu", labels=labels
    )
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# Schedules, timesteps, noising and the training helpers
# ---------------------------------------------------------------------------------------------------------------


def test_linear_schedule_formula():
    sched = NoiseSchedule.linear(1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(sched.betas.numpy(), betas, rtol=1e-15)
    np.testing.assert_allclose(sched.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-13)
    assert sched.alphas_cumprod.dtype == torch.float64
    assert sched.alphas_cumprod.shape == (1000,)


@pytest.mark.parametrize("num_train_steps", [1000, 4000, 50])
def test_cosine_schedule_formula(num_train_steps):
    # Nichol & Dhariwal (2021) eq. 17: ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008, with β clipped
    # at 0.999. Our ᾱ[t] is their ᾱ at t + 1 (index 0 is the first noising step).
    T, s = num_train_steps, 0.008
    sched = NoiseSchedule.cosine(T)

    def f(u):
        return np.cos((u / T + s) / (1 + s) * np.pi / 2) ** 2

    steps = np.arange(1, T + 1)
    betas = np.minimum(1 - f(steps) / f(steps - 1), 0.999)
    np.testing.assert_allclose(sched.betas.numpy(), betas, rtol=1e-12)
    clipped = betas >= 0.999
    assert clipped[-1]
    assert clipped.sum() <= 2
    np.testing.assert_allclose(sched.alphas_cumprod.numpy()[~clipped], (f(steps) / f(0))[~clipped], rtol=1e-10)
    np.testing.assert_allclose(sched.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)


def test_schedule_object_is_used_as_given():
    sched = NoiseSchedule(torch.full((20,), 0.1, dtype=torch.float64))
    sampler = DiffusionSampler(lambda z, t: z, (1, 1, 1), sched, num_train_steps=20, num_steps=20)
    assert sampler.schedule is sched
    np.testing.assert_allclose(sched.alphas_cumprod.numpy(), 0.9 ** np.arange(1, 21), rtol=1e-13)


@pytest.mark.parametrize(("total", "steps"), [(1000, 50), (1000, 7), (1000, 1), (1000, 1000), (37, 5), (10, 3)])
def test_timestep_spacings(total, steps):
    T, S = total, steps
    trailing = sampling_timesteps(T, S, "trailing")
    leading = sampling_timesteps(T, S, "leading")
    linspace = sampling_timesteps(T, S, "linspace")
    assert trailing[0] == T - 1
    assert trailing == [math.floor(T * (S - k) / S + 0.5) - 1 for k in range(S)]
    assert leading == list((np.arange(S) * (T // S))[::-1])
    assert linspace == [math.floor(x + 0.5) for x in np.linspace(0, T - 1, S)[::-1]]
    for visited in (trailing, leading, linspace):
        assert len(visited) == S
        assert all(0 <= t < T for t in visited)
        assert all(a > b for a, b in itertools.pairwise(visited))


def test_q_sample_formula_and_statistics(rng):
    sched = NoiseSchedule.cosine(1000)
    n = 20000
    x0 = torch.from_numpy(rng.uniform(-1, 1, (1, 3))).float().expand(n, 3)
    t = torch.from_numpy(rng.integers(0, 1000, 2)).repeat_interleave(n // 2)
    noise = torch.randn(n, 3, generator=torch.Generator().manual_seed(int(rng.integers(2**31))))
    z = q_sample(sched, x0, t, noise).double()
    a = sched.alphas_cumprod[t].reshape(-1, 1)
    torch.testing.assert_close(z, a.sqrt() * x0.double() + (1 - a).sqrt() * noise.double(), rtol=1e-6, atol=1e-6)
    for half in (slice(0, n // 2), slice(n // 2, n)):
        ah = a[half][0].item()
        m = n // 2
        mean_err = (z[half].mean(0) - math.sqrt(ah) * x0[0].double()).abs()
        assert bool((mean_err < 5 * math.sqrt((1 - ah) / m)).all())
        assert bool(((z[half].var(0) - (1 - ah)).abs() < 5 * (1 - ah) * math.sqrt(2 / (m - 1))).all())


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_prediction_conversion_round_trip(rng, prediction):
    sched = NoiseSchedule.linear(1000)
    x0 = torch.from_numpy(rng.uniform(-1, 1, (6, 2, 2, 2)))
    noise = torch.from_numpy(rng.standard_normal((6, 2, 2, 2)))
    t = torch.from_numpy(rng.integers(0, 1000, 6))
    z = q_sample(sched, x0, t, noise)
    output = noise if prediction == "epsilon" else velocity_target(sched, x0, t, noise)
    x0_hat, eps_hat = prediction_to_x0_epsilon(sched, output, z, t, prediction)
    torch.testing.assert_close(eps_hat, noise, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-6, atol=1e-6)  # /√ᾱ amplifies rounding at large t
    a = sched.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    v = velocity_target(sched, x0, t, noise)
    torch.testing.assert_close(v, a.sqrt() * noise - (1 - a).sqrt() * x0)


def test_label_dropout_frequency(rng):
    n, p = 20000, float(rng.uniform(0.1, 0.2))
    labels = torch.from_numpy(rng.integers(0, 10, n))
    before = labels.clone()
    dropped = drop_labels(labels, p, null_label=10, generator=torch.Generator().manual_seed(int(rng.integers(2**31))))
    assert torch.equal(labels, before)
    is_null = dropped == 10
    assert torch.equal(dropped[~is_null], labels[~is_null])
    assert abs(is_null.double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(drop_labels(labels, 0.0, null_label=10), labels)
    assert bool((drop_labels(labels, 1.0, null_label=-1) == -1).all())


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_diffusion_loss_is_the_documented_draws(rng, prediction):
    sched = NoiseSchedule.linear(100)
    x0 = torch.from_numpy(rng.uniform(-1, 1, (8, 1, 2, 2))).float()
    labels = torch.from_numpy(rng.integers(0, 3, 8))
    net = torch.nn.Conv2d(1, 1, 1)
    seen = {}

    def model(z, t, c):
        seen["labels"] = c
        return net(z) + c.reshape(-1, 1, 1, 1)

    loss = diffusion_loss(model, x0, sched, labels=labels, p_uncond=0.5, null_label=3, prediction=prediction,
                          generator=torch.Generator().manual_seed(11))  # fmt: skip
    g = torch.Generator().manual_seed(11)
    t = torch.randint(100, (8,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    dropped = drop_labels(labels, 0.5, 3, generator=g)
    assert torch.equal(seen["labels"], dropped)
    target = noise if prediction == "epsilon" else velocity_target(sched, x0, t, noise)
    expected = ((model(q_sample(sched, x0, t, noise), t, dropped) - target) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert net.weight.grad is not None


# ---------------------------------------------------------------------------------------------------------------
# Determinism, shards, modes and the global RNG
# ---------------------------------------------------------------------------------------------------------------


class PerSampleModel(torch.nn.Module):
    """A conditional ε-model whose rows do not interact (so batching cannot change a row's value)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.3))
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, z, t, labels):
        return self.dropout(self.scale * z + 1e-4 * t.reshape(-1, 1, 1, 1) + 0.1 * labels.reshape(-1, 1, 1, 1))


@pytest.mark.parametrize(("method", "eta"), [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 0.6)])
def test_shards_equal_one_process(rng, method, eta):
    sampler = DiffusionSampler(PerSampleModel(), (2, 3, 3), num_steps=6, method=method, eta=eta, guidance=1.0,
                               null_label=5, num_classes=5)  # fmt: skip
    seed = int(rng.integers(2**63))
    whole = sample_range(sampler, 0, 24, seed=seed, batch_size=24, device="cpu")
    # Three "ranks" with contiguous shards and their own batch sizes.
    shards = [
        sample_range(sampler, lo, hi, seed=seed, batch_size=bs, device="cpu")
        for lo, hi, bs in ((0, 10, 3), (10, 11, 4), (11, 24, 5))
    ]
    torch.testing.assert_close(torch.cat(shards), whole, rtol=1e-6, atol=1e-6)
    again = sample_range(sampler, 0, 24, seed=seed, batch_size=7, device="cpu")
    torch.testing.assert_close(again, whole, rtol=1e-6, atol=1e-6)
    other = sample_range(sampler, 0, 24, seed=seed ^ 1, batch_size=24, device="cpu")
    assert not torch.allclose(other, whole)


def test_per_sample_generators_are_consumed_in_the_documented_order():
    # Initial noise, then the label (num_classes set, none given), then one noise per step but the last.
    shape, steps = (1, 2, 2), 5
    for method, eta, draws in (("ddim", 0.0, 1), ("ddpm", 0.0, steps), ("ddim", 1.0, steps)):
        sampler = DiffusionSampler(PerSampleModel(), shape, num_steps=steps, method=method, eta=eta, num_classes=4)
        gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
        sampler(2, generator=gens, device="cpu")
        for s, g in zip((1, 2), gens, strict=True):
            ref = torch.Generator().manual_seed(s)
            torch.randn(shape, generator=ref)
            torch.randint(4, (1,), generator=ref)
            for _ in range(draws - 1):
                torch.randn(shape, generator=ref)
            assert torch.equal(g.get_state(), ref.get_state()), (method, eta)


def test_sampling_is_deterministic_restores_modes_and_leaves_the_global_rng():
    model = PerSampleModel()
    model.dropout.eval()  # a submodule the user keeps in eval mode while the rest trains
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    sampler = DiffusionSampler(model, (1, 2, 2), num_steps=5, method="ddpm", num_classes=3)
    state = torch.get_rng_state()
    a = sampler(4, generator=torch.Generator().manual_seed(0), device="cpu")
    b = sampler(4, generator=[torch.Generator().manual_seed(s) for s in range(4)], device="cpu")
    c = sampler(4, generator=torch.Generator().manual_seed(0), device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, c)
    assert not torch.equal(a, b)
    assert not a.requires_grad
    assert modes
    assert not any(modes)
    assert model.training
    assert not model.dropout.training


def test_outputs_are_clipped_and_clamped():
    sampler = DiffusionSampler(lambda z, t: -10 * torch.ones_like(z), (1, 2, 2), num_steps=3)
    out = sampler(3, generator=torch.Generator(), device="cpu")
    assert out.min() >= -1
    assert out.max() <= 1
    loose = DiffusionSampler(lambda z, t: -10 * torch.ones_like(z), (1, 2, 2), num_steps=3, clip_sample=False,
                             clamp_output=False)  # fmt: skip
    assert loose(3, generator=torch.Generator(), device="cpu").max() > 1


def test_zero_samples():
    sampler = DiffusionSampler(PerSampleModel(), (2, 3, 3), num_steps=4, num_classes=3)
    assert sampler(0, generator=[], device="cpu").shape == (0, 2, 3, 3)
    assert sample_range(sampler, 5, 5, seed=0, batch_size=4, device="cpu").shape == (0, 2, 3, 3)


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


def identity(z, t, labels=None):
    return z


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_steps": 0}, ValueError, r"`num_steps` to be an int >= 1, got 0"),
        ({"num_steps": 1001}, ValueError, r"`num_steps` <= num_train_steps = 1000, got 1001"),
        ({"num_steps": 2.5}, TypeError, r"`num_steps` to be an int, got 2.5"),
        ({"num_train_steps": 0}, ValueError, r"`num_train_steps` to be an int >= 1, got 0"),
        ({"eta": -0.1}, ValueError, r"`eta` in \[0, 1\], got -0.1"),
        ({"eta": 1.5}, ValueError, r"`eta` in \[0, 1\], got 1.5"),
        ({"eta": float("nan")}, ValueError, r"`eta` to be finite, got nan"),
        ({"eta": 0.5, "method": "ddpm"}, ValueError, r"eta=0.5 with method='ddpm'"),
        ({"method": "euler"}, ValueError, r"`method` to be 'ddim' or 'ddpm', got 'euler'"),
        ({"prediction": "x0"}, ValueError, r"`prediction` to be 'epsilon' or 'v', got 'x0'"),
        ({"schedule": "quadratic"}, ValueError, r"`schedule` to be 'linear', 'cosine' or a NoiseSchedule, got 'quad"),
        ({"schedule": NoiseSchedule.linear(10)}, ValueError, r"num_train_steps = 1000 steps, got 10"),
        ({"guidance": 2.0, "guidance_scale": 3.0, "null_label": 0}, ValueError, r"both `guidance` = 2.0 .* 3.0"),
        ({"guidance": 2.0}, ValueError, r"Guidance \(w = 2.0\) needs `null_label`"),
        ({"guidance": -2.0, "null_label": 0}, ValueError, r"`guidance` >= -1 .*got -2.0"),
        ({"guidance_scale": -1.0, "null_label": 0}, ValueError, r"`guidance_scale` >= 0 .*got -1.0"),
        ({"guidance": "2"}, TypeError, r"`guidance` to be a float, got '2'"),
        ({"null_label": 1.5}, TypeError, r"`null_label` to be an int or None, got 1.5"),
        ({"clip_sample": 1}, TypeError, r"`clip_sample` to be a bool, got 1"),
        ({"sample_shape": (3, 8)}, ValueError, r"`sample_shape` to be 3 positive ints, got \(3, 8\)"),
        ({"sample_shape": (3, 0, 8)}, ValueError, r"`sample_shape` to be 3 positive ints, got \(3, 0, 8\)"),
        ({"num_classes": 0}, ValueError, r"`num_classes` to be an int >= 1, got 0"),
        ({"timestep_spacing": "uniform"}, ValueError, r"`timestep_spacing` .*got 'uniform'"),
        ({"model": "unet"}, TypeError, r"`model` to be callable, got str"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"model": identity, "sample_shape": (1, 2, 2), **kwargs}
    with pytest.raises(error, match=match):
        DiffusionSampler(**arguments)


def test_bad_schedules():
    with pytest.raises(ValueError, match=r"`betas` in \(0, 1\), got values in \[0.0, 0.5\]"):
        NoiseSchedule(torch.tensor([0.0, 0.5], dtype=torch.float64))
    with pytest.raises(TypeError, match=r"floating point tensor, got dtype torch.int64"):
        NoiseSchedule(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"beta_start=0.03, beta_end=0.02"):
        NoiseSchedule.linear(10, 0.03, 0.02)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"labels": torch.tensor([0, 1])}, ValueError, r"shape \[num_samples\] = \[3\], got shape \(2,"),
        ({"labels": torch.tensor([0, 1, 4])}, ValueError, r"`labels` in \[0, 4\) \(num_classes\), got .*\[0, 4\]"),
        ({"labels": torch.tensor([0, -1, 2])}, ValueError, r"got values in \[-1, 2\]"),
        ({"labels": torch.tensor([0.0, 1.0, 2.0])}, TypeError, r"integer tensor of class .*torch.float32"),
        ({"generator": [torch.Generator()] * 2}, ValueError, r"3 of them \(one per sample\), got a sequence of 2"),
        ({"generator": None}, TypeError, r"`generator` to be a torch.Generator or a sequence of them, got NoneType"),
        ({"num_samples": -1}, ValueError, r"`num_samples` to be an int >= 0, got -1"),
    ],
)  # fmt: skip
def test_bad_calls(call, error, match):
    sampler = DiffusionSampler(LabelledModel(4), (1, 2, 2), num_steps=2, guidance=1.0, null_label=4, num_classes=4)
    arguments = {"num_samples": 3, "generator": torch.Generator(), "device": "cpu", **call}
    num_samples = arguments.pop("num_samples")
    with pytest.raises(error, match=match):
        sampler(num_samples, **arguments)


def test_guidance_without_labels():
    sampler = DiffusionSampler(LabelledModel(4), (1, 2, 2), num_steps=2, guidance=1.0, null_label=4)
    with pytest.raises(ValueError, match=r"Guidance \(w = 1.0\) needs `labels`"):
        sampler(3, generator=torch.Generator(), device="cpu")


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        (lambda z, t: z[:, :, :1], ValueError, r"`model` to return shape \(3, 1, 2, 2\), got shape \(3, 1, 1, 2\)"),
        (lambda z, t: z[:2], ValueError, r"shape \(3, 1, 2, 2\), got shape \(2, 1, 2, 2\)"),
        (lambda z, t: torch.where(t.reshape(-1, 1, 1, 1) < 600, z * math.nan, z), ValueError,
         r"NaN/Inf in 3 of 3 samples \(the first is sample 0\) from DiffusionSampler\(sample_shape=\(1, 2, 2\)"),
        (lambda z, t: {"sample": z}, TypeError, r"return a torch.Tensor, got dict"),
    ],
)  # fmt: skip
def test_bad_model_outputs(model, error, match):
    sampler = DiffusionSampler(model, (1, 2, 2), num_steps=2)
    with pytest.raises(error, match=match):
        sampler(3, generator=torch.Generator(), device="cpu")


def test_bad_training_helper_inputs():
    sched = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match=r"`t` in \[0, 10\) \(num_train_steps\), got values in \[0, 10\]"):
        q_sample(sched, torch.zeros(2, 1), torch.tensor([0, 10]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"`noise` to have the shape of `x0` \(2, 1\), got \(2, 2\)"):
        q_sample(sched, torch.zeros(2, 1), torch.tensor([0, 1]), torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"`t` to be an int64 tensor of training-step indices, got dtype torch.float32"):
        q_sample(sched, torch.zeros(2, 1), torch.tensor([0.0, 1.0]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"`p_uncond` in \[0, 1\], got 1.5"):
        drop_labels(torch.tensor([1, 2]), 1.5, null_label=0)
    with pytest.raises(TypeError, match=r"`null_label` to be an int, got None"):
        drop_labels(torch.tensor([1, 2]), 0.1, null_label=None)
    with pytest.raises(ValueError, match=r"`p_uncond` = 0.1 needs `labels` and `null_label`"):
        diffusion_loss(identity, torch.zeros(2, 1), sched, p_uncond=0.1)
    with pytest.raises(ValueError, match=r"`model output` to have the shape of `x0` \(2, 1\), got \(2,\)"):
        diffusion_loss(lambda z, t: z[:, 0], torch.zeros(2, 1), sched)
