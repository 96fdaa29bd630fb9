"""Continuous-time log-SNR diffusion (Ho & Salimans 2022) against closed-form Gaussian answers and hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.samplers import (
    LogSNRDiffusionSampler,
    drop_labels,
    logsnr_diffusion_loss,
    logsnr_schedule,
    logsnr_to_alpha_sigma,
    sample_range,
)
from tests.helpers import TinyFeatureNet

# ---------------------------------------------------------------------------------------------------------------
# The Gaussian oracle. For data x ~ N(μ, s²) per coordinate and z = α·x + σ·ε (α² + σ² = 1), z ~ N(α·μ, D) with
# D = α²·s² + σ², and the optimal predictions are linear in z:
#   E[ε | z] = σ/D · (z − α·μ),   E[x | z] = μ + α·s²/D · (z − α·μ),   E[v | z] = α·E[ε | z] − σ·E[x | z].
# With the same s² for every class and for the unconditional model, the guided ε̃ = (1 + w)·ε(z, c) − w·ε(z, ∅) is
# the optimal ε of N((1 + w)·μ_c − w·μ_∅, s²): the sampler should return that Gaussian.
# ---------------------------------------------------------------------------------------------------------------


class GaussianClasses:
    """The exact ε- or v-predictor of class ``c`` (row ``c`` of ``means``, ``[classes + 1, C]``, the last row ∅)."""

    def __init__(self, means: np.ndarray, std: float, prediction: str = "epsilon") -> None:
        self.means = torch.tensor(means, dtype=torch.float64)
        self.var = std**2
        self.prediction = prediction

    def __call__(self, z: torch.Tensor, logsnr: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        assert logsnr.dtype == torch.float32
        assert logsnr.shape == (z.shape[0],)
        # α and σ of each distinct λ (the sampler passes one per call): float64 kernels over all rows are slow on a
        # loaded CPU with several threads.
        lam, rows = logsnr.double().unique(return_inverse=True)
        alpha, sigma = (x.sqrt()[rows].reshape(-1, 1, 1, 1) for x in (torch.sigmoid(lam), torch.sigmoid(-lam)))
        mu = self.means[labels].reshape(*self.means[labels].shape, 1, 1)
        denominator = alpha**2 * self.var + sigma**2
        centred = z.double() - alpha * mu
        eps = sigma / denominator * centred
        if self.prediction == "epsilon":
            return eps.to(z.dtype)
        x = mu + alpha * self.var / denominator * centred
        return (alpha * eps - sigma * x).to(z.dtype)


def chain_moments(logsnrs: list[float], v: float, target_mean: np.ndarray, var: float) -> tuple[np.ndarray, float]:
    """Exact mean and variance of Algorithm 2's output with the guided oracle, by the linear-Gaussian recursion.

    Each step is z' = A·z + B + s·noise for scalars A, B, s written from the paper's formulas (float64): the
    discretisation the sampler should reproduce; its distance to (mean, var) is the discretisation error.
    """
    m, V = np.zeros_like(target_mean), 1.0
    for t, lam in enumerate(logsnrs):
        alpha, sigma = math.sqrt(1 / (1 + math.exp(-lam))), math.sqrt(1 / (1 + math.exp(lam)))
        gain = sigma / (alpha**2 * var + sigma**2)  # ε̃ = gain·(z − α·mean)
        # x̃ = (z − σ·ε̃)/α = kx·z + bx
        kx, bx = (1 - sigma * gain) / alpha, sigma * gain * target_mean
        if t == len(logsnrs) - 1:
            return kx * m + bx, kx * kx * V
        nxt = logsnrs[t + 1]
        alpha_n, sigma_n = math.sqrt(1 / (1 + math.exp(-nxt))), math.sqrt(1 / (1 + math.exp(nxt)))
        r = math.exp(lam - nxt)
        cz, cx = r * alpha_n / alpha, (1 - r) * alpha_n
        s2 = ((1 - r) * sigma_n**2) ** (1 - v) * ((1 - r) * sigma**2) ** v
        m, V = (cz + cx * kx) * m + cx * bx, (cz + cx * kx) ** 2 * V + s2
    raise AssertionError("unreachable")


@pytest.fixture
def one_thread():
    """Run the many small kernels of a 256-step chain on one thread: on a busy CPU, two threads made them 40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_classes(rng: np.random.Generator, channels: int = 2) -> tuple[np.ndarray, float]:
    """Means of classes 0, 1 and of ∅ (rows), and a shared standard deviation."""
    return rng.uniform(-0.4, 0.4, (3, channels)), float(rng.uniform(0.2, 0.5))


@pytest.mark.parametrize("v", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_gaussian_samples_have_the_guided_mean_and_std(one_thread, rng, v, w):
    means, std = random_classes(rng)
    n, c = 4000, int(rng.integers(2))
    sampler = LogSNRDiffusionSampler(GaussianClasses(means, std), (2, 1, 1), num_steps=256, variance_interpolation=v,
                                     guidance=w, null_label=2, clamp_output=False)  # fmt: skip
    labels = torch.full((n,), c)
    seed = int(rng.integers(2**63))
    out = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=labels).double()
    samples = out.reshape(n, 2).numpy()
    target = (1 + w) * means[c] - w * means[2]
    np.testing.assert_allclose(samples.mean(0), target, atol=0.05)
    np.testing.assert_allclose(samples.std(0), std, atol=0.05)
    # The exact discretised chain: within 0.01 of the target, and the samples within Monte Carlo error of it.
    chain_mean, chain_var = chain_moments(sampler.logsnrs, v, target, std**2)
    np.testing.assert_allclose(chain_mean, target, atol=0.01)
    assert abs(math.sqrt(chain_var) - std) < 0.01
    np.testing.assert_allclose(samples.mean(0), chain_mean, atol=5 * std / math.sqrt(n))
    np.testing.assert_allclose(samples.var(0), chain_var, rtol=5 * math.sqrt(2 / n))


def test_few_steps_follow_the_exact_chain_not_the_target(one_thread, rng):
    # With 8 steps the chain's moments differ from the target's; the sampler must reproduce the chain's.
    means, std = random_classes(rng, channels=1)
    n, v, w = 6000, 0.5, 2.0
    sampler = LogSNRDiffusionSampler(GaussianClasses(means, std), (1, 1, 1), num_steps=8, variance_interpolation=v,
                                     guidance=w, null_label=2, clamp_output=False)  # fmt: skip
    seed = int(rng.integers(2**63))
    labels = torch.zeros(n, dtype=torch.int64)
    out = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=labels).double().flatten()
    target = (1 + w) * means[0] - w * means[2]
    chain_mean, chain_var = chain_moments(sampler.logsnrs, v, target, std**2)
    assert abs(chain_var - std**2) > 10 * math.sqrt(2 / n) * std**2
    assert abs(out.mean().item() - chain_mean[0]) < 5 * std / math.sqrt(n)
    assert out.var().item() == pytest.approx(chain_var, rel=5 * math.sqrt(2 / n))


def test_v_prediction_samples_the_same_gaussian(one_thread, rng):
    means, std = random_classes(rng)
    n, w = 4000, 1.0
    sampler = LogSNRDiffusionSampler(GaussianClasses(means, std, "v"), (2, 1, 1), num_steps=256, guidance=w,
                                     null_label=2, prediction="v", clamp_output=False)  # fmt: skip
    labels = torch.ones(n, dtype=torch.int64)
    seed = int(rng.integers(2**63))
    out = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=labels).double()
    samples = out.reshape(n, 2).numpy()
    np.testing.assert_allclose(samples.mean(0), 2 * means[1] - means[2], atol=0.05)
    np.testing.assert_allclose(samples.std(0), std, atol=0.05)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_bfloat16_samples_the_same_gaussian(one_thread, rng, prediction):
    # ε-prediction amplifies bfloat16 rounding by 1/α ≈ 2·10⁴ at λ_min; the first steps must still not matter.
    means, std = random_classes(rng)
    n, w = 4000, 1.0
    oracle = GaussianClasses(means, std, prediction)
    sampler = LogSNRDiffusionSampler(oracle, (2, 1, 1), num_steps=256, guidance=w, null_label=2, prediction=prediction,
                                     clamp_output=False, dtype=torch.bfloat16)  # fmt: skip
    labels = torch.zeros(n, dtype=torch.int64)
    seed = int(rng.integers(2**63))
    out = sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=labels).double()
    samples = out.reshape(n, 2).numpy()
    np.testing.assert_allclose(samples.mean(0), 2 * means[0] - means[2], atol=0.05)
    np.testing.assert_allclose(samples.std(0), std, atol=0.05)


# ---------------------------------------------------------------------------------------------------------------
# Algorithm 2 step by step, guidance conventions
# ---------------------------------------------------------------------------------------------------------------


class LabelledModel:
    """A conditional ε-model with a different linear map for the null label; records its calls."""

    def __init__(self, null_label: int) -> None:
        self.null_label = null_label
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, z: torch.Tensor, logsnr: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls.append((z.clone(), logsnr.clone(), labels.clone()))
        c = labels.to(z.dtype).reshape(-1, 1, 1, 1)
        null = (labels == self.null_label).reshape(-1, 1, 1, 1)
        return torch.where(null, -0.2 * z + 0.1, 0.3 * z + 0.05 * c)


@pytest.mark.parametrize(("w", "v"), [(0.5, 0.0), (3.0, 0.3), (-1.0, 1.0)])
def test_steps_match_the_papers_formulas(w, v):
    # Three steps written out from Algorithm 2 in float64: the posterior mean and interpolated variance, then x̃.
    model = LabelledModel(null_label=10)
    sampler = LogSNRDiffusionSampler(model, (2, 2, 2), num_steps=3, variance_interpolation=v, guidance=w, null_label=10,
                                     logsnr_min=-3.0, logsnr_max=4.0, clamp_output=False)  # fmt: skip
    labels = torch.tensor([0, 3, 7])
    out = sampler(3, generator=torch.Generator().manual_seed(5), device="cpu", labels=labels).double()

    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 2, 2, 2, generator=g).double()
    c = labels.double().reshape(-1, 1, 1, 1)
    lams = logsnr_schedule(torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64), -3.0, 4.0).tolist()
    assert lams[0] == pytest.approx(-3.0)
    assert lams[-1] == pytest.approx(4.0)
    for t, lam in enumerate(lams):
        alpha, sigma = (x.item() for x in logsnr_to_alpha_sigma(torch.tensor(lam)))
        eps = (1 + w) * (0.3 * z + 0.05 * c) - w * (-0.2 * z + 0.1)
        x = (z - sigma * eps) / alpha
        if t == len(lams) - 1:
            break
        alpha_n, sigma_n = (x.item() for x in logsnr_to_alpha_sigma(torch.tensor(lams[t + 1])))
        r = math.exp(lam - lams[t + 1])
        mean = r * alpha_n / alpha * z + (1 - r) * alpha_n * x
        var = ((1 - r) * sigma_n**2) ** (1 - v) * ((1 - r) * sigma**2) ** v
        z = mean + math.sqrt(var) * torch.randn(3, 2, 2, 2, generator=g).double()
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)


def test_guidance_is_one_batch_of_2n_with_the_null_label_and_float32_logsnr():
    model = LabelledModel(null_label=-1)
    sampler = LogSNRDiffusionSampler(model, (1, 2, 2), num_steps=4, guidance=2.0, null_label=-1)
    labels = torch.tensor([4, 0, 2])
    sampler(3, generator=torch.Generator().manual_seed(0), device="cpu", labels=labels)
    assert len(model.calls) == 4
    for (z, logsnr, passed), lam in zip(model.calls, sampler.logsnrs, strict=True):
        assert z.shape == (6, 1, 2, 2)
        assert torch.equal(z[:3], z[3:])
        assert logsnr.dtype == torch.float32
        assert torch.equal(logsnr, torch.full((6,), lam, dtype=torch.float32))
        assert passed.tolist() == [4, 0, 2, -1, -1, -1]
    # u evenly spaced from 1 to 0: λ_1 = λ_min, λ_T = λ_max, increasing.
    lams = sampler.logsnrs
    assert lams[0] == pytest.approx(-20.0)
    assert lams[-1] == pytest.approx(20.0)
    assert lams == sorted(lams)
    expected = logsnr_schedule(torch.tensor([1.0, 2 / 3, 1 / 3, 0.0], dtype=torch.float64)).tolist()
    assert lams == pytest.approx(expected, rel=1e-12)


def test_zero_guidance_is_plain_conditional_sampling():
    labels = torch.tensor([1, 5, 2, 2])
    model = LabelledModel(null_label=9)
    guided = LogSNRDiffusionSampler(model, (2, 1, 1), num_steps=10, guidance=0.0, null_label=9)
    plain = LogSNRDiffusionSampler(lambda z, lam: LabelledModel(9)(z, lam, labels), (2, 1, 1), num_steps=10)
    got = guided(4, generator=torch.Generator().manual_seed(3), device="cpu", labels=labels)
    expected = plain(4, generator=torch.Generator().manual_seed(3), device="cpu")
    assert torch.equal(got, expected)
    assert all(z.shape[0] == 4 and (passed != 9).all() for z, _, passed in model.calls)


def test_guidance_scale_is_one_plus_w():
    labels = torch.tensor([0, 1, 2])
    kwargs = {"num_steps": 8, "variance_interpolation": 0.7, "null_label": 3}
    by_w = LogSNRDiffusionSampler(LabelledModel(3), (1, 2, 2), guidance=2.5, **kwargs)
    by_s = LogSNRDiffusionSampler(LabelledModel(3), (1, 2, 2), guidance_scale=3.5, **kwargs)
    assert by_s.guidance == 2.5
    a = by_w(3, generator=torch.Generator().manual_seed(1), device="cpu", labels=labels)
    b = by_s(3, generator=torch.Generator().manual_seed(1), device="cpu", labels=labels)
    assert torch.equal(a, b)


def test_clip_and_clamp():
    def model(z, logsnr):
        return torch.full_like(z, -10.0)

    common = {"num_steps": 6, "logsnr_min": -4.0, "logsnr_max": 4.0}
    loose = LogSNRDiffusionSampler(model, (1, 2, 2), clamp_output=False, **common)
    assert loose(3, generator=torch.Generator().manual_seed(0), device="cpu").max() > 1
    clamped = LogSNRDiffusionSampler(model, (1, 2, 2), **common)
    assert clamped(3, generator=torch.Generator().manual_seed(0), device="cpu").abs().max() <= 1
    clipped = LogSNRDiffusionSampler(model, (1, 2, 2), clip_sample=True, clamp_output=False, **common)
    assert clipped(3, generator=torch.Generator().manual_seed(0), device="cpu").abs().max() <= 1


# ---------------------------------------------------------------------------------------------------------------
# Schedule and the training helper (Algorithm 1)
# ---------------------------------------------------------------------------------------------------------------


def test_schedule_formula_and_bounds(rng):
    low, high = float(rng.uniform(-25, -5)), float(rng.uniform(5, 25))
    u = torch.from_numpy(rng.uniform(0, 1, 50)).float()  # float32 in, float64 out
    b = math.atan(math.exp(-high / 2))
    a = math.atan(math.exp(-low / 2)) - b
    expected = [-2 * math.log(math.tan(a * x + b)) for x in u.double().tolist()]
    got = logsnr_schedule(u, low, high)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)
    ends = logsnr_schedule(torch.tensor([0.0, 1.0], dtype=torch.float64), low, high)
    np.testing.assert_allclose(ends.numpy(), [high, low], rtol=1e-10)
    alpha, sigma = logsnr_to_alpha_sigma(got)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(alpha))
    torch.testing.assert_close(torch.log(alpha**2 / sigma**2), got)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_loss_of_the_optimal_model_is_the_expected_posterior_variance(rng, prediction):
    # For x ~ N(μ, s²): Var(ε | z) = α²s²/D and Var(v | z) = s²/D (v = (ε − σz)/α given z), D = α²s² + σ². The
    # optimal model's loss is their mean over u ~ U[0, 1], here by the midpoint rule on a fine grid.
    means, std = random_classes(rng, channels=1)
    oracle = GaussianClasses(means, std, prediction)
    n = 200_000
    x = torch.from_numpy(means[0] + std * rng.standard_normal((n, 1, 1, 1)))
    labels = torch.zeros(n, dtype=torch.int64)
    loss = logsnr_diffusion_loss(oracle, x, labels=labels, prediction=prediction,
                                 generator=torch.Generator().manual_seed(int(rng.integers(2**63))))  # fmt: skip
    u = (torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000
    alpha, sigma = logsnr_to_alpha_sigma(logsnr_schedule(u))
    denominator = alpha**2 * std**2 + sigma**2
    expected = (alpha**2 * std**2 / denominator if prediction == "epsilon" else std**2 / denominator).mean().item()
    assert loss.item() == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_loss_is_the_documented_draws(rng, prediction):
    x = torch.from_numpy(rng.uniform(-1, 1, (8, 1, 2, 2))).float()
    labels = torch.from_numpy(rng.integers(0, 3, 8))
    net = torch.nn.Conv2d(1, 1, 1)
    seen = {}

    def model(z, logsnr, c):
        seen["logsnr"], seen["labels"] = logsnr, c
        return net(z) + c.reshape(-1, 1, 1, 1) + 0.01 * logsnr.reshape(-1, 1, 1, 1)

    bounds = {"logsnr_min": -10.0, "logsnr_max": 12.0}
    loss = logsnr_diffusion_loss(model, x, labels=labels, p_uncond=0.5, null_label=3, prediction=prediction,
                                 generator=torch.Generator().manual_seed(11), **bounds)  # fmt: skip
    g = torch.Generator().manual_seed(11)
    u = torch.rand(8, generator=g, dtype=torch.float64)
    noise = torch.randn(x.shape, generator=g)
    dropped = drop_labels(labels, 0.5, 3, generator=g)
    lam = logsnr_schedule(u, -10.0, 12.0)
    assert seen["logsnr"].dtype == torch.float32
    torch.testing.assert_close(seen["logsnr"], lam.float())
    assert torch.equal(seen["labels"], dropped)
    alpha, sigma = (c.reshape(-1, 1, 1, 1) for c in logsnr_to_alpha_sigma(lam))
    z = (alpha * x + sigma * noise).float()
    target = noise if prediction == "epsilon" else (alpha * noise - sigma * x).float()
    expected = ((model(z, lam.float(), dropped) - target) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert net.weight.grad is not None


def test_unconditional_loss_calls_the_model_with_two_arguments():
    calls = []
    loss = logsnr_diffusion_loss(lambda z, lam: calls.append(lam) or torch.zeros_like(z), torch.zeros(4, 3))
    assert len(calls) == 1
    assert calls[0].shape == (4,)
    assert loss.item() > 0


# ---------------------------------------------------------------------------------------------------------------
# Determinism, shards, modes and the global RNG
# ---------------------------------------------------------------------------------------------------------------


class PerSampleModel(torch.nn.Module):
    """A conditional ε-model whose rows do not interact, using only exact elementwise float32 operations."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.3))
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, z, logsnr, labels):
        return self.dropout(self.scale * z + 1e-3 * logsnr.reshape(-1, 1, 1, 1) + 0.1 * labels.reshape(-1, 1, 1, 1))


def test_shards_equal_one_process_exactly(rng):
    sampler = LogSNRDiffusionSampler(PerSampleModel(), (2, 3, 3), num_steps=6, guidance=1.0, null_label=5,
                                     num_classes=5, logsnr_min=-6.0, logsnr_max=6.0)  # fmt: skip
    seed = int(rng.integers(2**63))
    whole = sample_range(sampler, 0, 24, seed=seed, batch_size=24, device="cpu")
    # Two "ranks" with uneven contiguous shards and their own batch sizes.
    shards = [
        sample_range(sampler, lo, hi, seed=seed, batch_size=bs, device="cpu") for lo, hi, bs in ((0, 7, 3), (7, 24, 5))
    ]
    assert torch.equal(torch.cat(shards), whole)
    assert torch.equal(sample_range(sampler, 0, 24, seed=seed, batch_size=7, device="cpu"), whole)
    other = sample_range(sampler, 0, 24, seed=seed ^ 1, batch_size=24, device="cpu")
    assert not torch.allclose(other, whole)


def test_per_sample_generators_are_consumed_in_the_documented_order():
    # Initial noise, then the label (num_classes set, none given), then one noise per step but the last.
    shape, steps = (1, 2, 2), 5
    sampler = LogSNRDiffusionSampler(PerSampleModel(), shape, num_steps=steps, num_classes=4)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    sampler(2, generator=gens, device="cpu")
    for s, g in zip((1, 2), gens, strict=True):
        ref = torch.Generator().manual_seed(s)
        torch.randn(shape, generator=ref)
        torch.randint(4, (1,), generator=ref)
        for _ in range(steps - 1):
            torch.randn(shape, generator=ref)
        assert torch.equal(g.get_state(), ref.get_state())


def test_sampling_is_deterministic_restores_modes_and_leaves_the_global_rng():
    model = PerSampleModel()
    model.dropout.eval()  # a submodule the user keeps in eval mode while the rest trains
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    sampler = LogSNRDiffusionSampler(model, (1, 2, 2), num_steps=5, num_classes=3)
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


def test_bfloat16_model_computes_in_its_dtype_and_returns_float32():
    dtypes = []

    class Net(PerSampleModel):
        def forward(self, z, logsnr, labels):
            dtypes.append((z.dtype, logsnr.dtype))
            return super().forward(z, logsnr, labels)

    sampler = LogSNRDiffusionSampler(Net().to(torch.bfloat16), (1, 2, 2), num_steps=4, num_classes=3)
    out = sampler(3, generator=torch.Generator().manual_seed(0), device="cpu")
    assert out.dtype == torch.float32
    assert set(dtypes) == {(torch.bfloat16, torch.float32)}


def test_zero_samples_and_repr():
    sampler = LogSNRDiffusionSampler(PerSampleModel(), (2, 3, 3), num_steps=4, num_classes=3)
    assert sampler(0, generator=[], device="cpu").shape == (0, 2, 3, 3)
    assert sample_range(sampler, 5, 5, seed=0, batch_size=4, device="cpu").shape == (0, 2, 3, 3)
    assert repr(sampler) == (
        "LogSNRDiffusionSampler(sample_shape=(2, 3, 3), num_steps=4, variance_interpolation=0.3, guidance=0.0, "
        "prediction='epsilon', logsnr_min=-20.0, logsnr_max=20.0)"
    )


# ---------------------------------------------------------------------------------------------------------------
# The callback's guidance sweep
# ---------------------------------------------------------------------------------------------------------------


class TinyLogSNRDenoiser(nn.Module):
    """A class-conditional ε-model ``(z, logsnr, labels)`` for two classes; label 2 is the null label."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.embed = nn.Embedding(3, 3)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        self.rows: list[int] = []

    def forward(self, z: torch.Tensor, logsnr: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.rows.append(z.shape[0])
        return self.conv(z) * torch.sigmoid(-logsnr)[:, None, None, None] + self.embed(labels)[:, :, None, None]


class TinyLogSNRDiffusion(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.denoiser = TinyLogSNRDenoiser()

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        labels = torch.zeros(batch[0].shape[0], dtype=torch.int64)
        return logsnr_diffusion_loss(self.denoiser, batch[0], labels=labels, p_uncond=0.2, null_label=2)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_callback_sweeps_guidance_over_the_sampler(tmp_path):
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    real = DataLoader(TensorDataset(images, torch.arange(16) % 2), batch_size=8)
    callback = GenerativeMetricsCallback(
        lambda module: LogSNRDiffusionSampler(module.denoiser, (3, 8, 8), num_steps=4, null_label=2, num_classes=2),
        real,
        metrics=("fid", "is"),
        feature_extractor=TinyFeatureNet(16, seed=5, declare=True),
        num_samples=24,
        batch_size=12,
        log_images=False,
        metric_kwargs={"is": {"splits": 2}},
        guidance=[0.0, 3.0],
    )
    module = TinyLogSNRDiffusion()
    trainer = Trainer(max_epochs=1, accelerator="cpu", devices=1, limit_train_batches=2, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      callbacks=[callback], default_root_dir=tmp_path)  # fmt: skip
    module.denoiser.rows.clear()
    trainer.fit(module, DataLoader(TensorDataset(images), batch_size=8))

    (record,) = callback.history
    assert record["fid/w=0"] != record["fid/w=3"]
    assert record["best_w"] == min((0.0, 3.0), key=lambda w: record[f"fid/w={w:g}"])
    assert record["fid"] == record[f"fid/w={record['best_w']:g}"]
    # w = 0: one conditional pass of 12 rows per step; w = 3: one pass of 2·12 rows (4 steps, 2 batches each).
    sampling = [rows for rows in module.denoiser.rows if rows in (12, 24)]
    assert sampling == [12] * 8 + [24] * 8


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


def identity(z, logsnr, labels=None):
    return z


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_steps": 1}, ValueError, r"`num_steps` to be an int >= 2, got 1"),
        ({"num_steps": 2.5}, TypeError, r"`num_steps` to be an int, got 2.5"),
        ({"variance_interpolation": 1.5}, ValueError, r"`variance_interpolation` in \[0, 1\], got 1.5"),
        ({"variance_interpolation": "0.3"}, TypeError, r"`variance_interpolation` to be a float, got '0.3'"),
        ({"logsnr_min": 5.0, "logsnr_max": 5.0}, ValueError, r"`logsnr_min` < `logsnr_max`, got logsnr_min=5.0"),
        ({"logsnr_max": float("inf")}, ValueError, r"`logsnr_max` to be finite, got inf"),
        ({"prediction": "x0"}, ValueError, r"`prediction` to be 'epsilon' or 'v', got 'x0'"),
        ({"guidance": 2.0, "guidance_scale": 3.0, "null_label": 0}, ValueError, r"both `guidance` = 2.0 .* 3.0"),
        ({"guidance": 2.0}, ValueError, r"Guidance \(w = 2.0\) needs `null_label`"),
        ({"guidance": -2.0, "null_label": 0}, ValueError, r"`guidance` >= -1 .*got -2.0"),
        ({"guidance_scale": -1.0, "null_label": 0}, ValueError, r"`guidance_scale` >= 0 .*got -1.0"),
        ({"null_label": 1.5}, TypeError, r"`null_label` to be an int or None, got 1.5"),
        ({"clip_sample": 1}, TypeError, r"`clip_sample` to be a bool, got 1"),
        ({"sample_shape": (3, 8)}, ValueError, r"`sample_shape` to be 3 positive ints, got \(3, 8\)"),
        ({"num_classes": 0}, ValueError, r"`num_classes` to be an int >= 1, got 0"),
        ({"dtype": torch.int64}, TypeError, r"`dtype` to be a floating point torch.dtype or None, got torch.int64"),
        ({"model": "unet"}, TypeError, r"`model` to be callable, got str"),
    ],
)  # fmt: skip
def test_bad_arguments(kwargs, error, match):
    arguments = {"model": identity, "sample_shape": (1, 2, 2), **kwargs}
    with pytest.raises(error, match=match):
        LogSNRDiffusionSampler(**arguments)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"labels": torch.tensor([0, 1])}, ValueError, r"shape \[num_samples\] = \[3\], got shape \(2,"),
        ({"labels": torch.tensor([0, 1, 4])}, ValueError, r"`labels` in \[0, 4\) \(num_classes\), got .*\[0, 4\]"),
        ({"labels": torch.tensor([0.0, 1.0, 2.0])}, TypeError, r"integer tensor of class .*torch.float32"),
        ({"generator": [torch.Generator()] * 2}, ValueError, r"3 of them \(one per sample\), got a sequence of 2"),
        ({"num_samples": -1}, ValueError, r"`num_samples` to be an int >= 0, got -1"),
    ],
)  # fmt: skip
def test_bad_calls(call, error, match):
    sampler = LogSNRDiffusionSampler(LabelledModel(4), (1, 2, 2), num_steps=2, guidance=1.0, null_label=4,
                                     num_classes=4)  # fmt: skip
    arguments = {"num_samples": 3, "generator": torch.Generator(), "device": "cpu", **call}
    num_samples = arguments.pop("num_samples")
    with pytest.raises(error, match=match):
        sampler(num_samples, **arguments)


def test_guidance_without_labels():
    sampler = LogSNRDiffusionSampler(LabelledModel(4), (1, 2, 2), num_steps=2, guidance=1.0, null_label=4)
    with pytest.raises(ValueError, match=r"Guidance \(w = 1.0\) needs `labels`"):
        sampler(3, generator=torch.Generator(), device="cpu")


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        (lambda z, lam: z[:, :, :1], ValueError, r"`model` to return shape \(3, 1, 2, 2\), got shape \(3, 1, 1, 2\)"),
        (lambda z, lam: torch.where(lam.reshape(-1, 1, 1, 1) > 0, z * math.nan, z), ValueError,
         r"NaN/Inf in 3 of 3 samples \(the first is sample 0\) from LogSNRDiffusionSampler\(sample_shape=\(1, 2, 2\)"),
        (lambda z, lam: {"sample": z}, TypeError, r"return a torch.Tensor, got dict"),
    ],
)  # fmt: skip
def test_bad_model_outputs(model, error, match):
    sampler = LogSNRDiffusionSampler(model, (1, 2, 2), num_steps=3)
    with pytest.raises(error, match=match):
        sampler(3, generator=torch.Generator(), device="cpu")


def test_bad_training_helper_inputs():
    x = torch.zeros(4, 1)
    with pytest.raises(ValueError, match=r"`p_uncond` = 0.1 needs `labels` and `null_label`"):
        logsnr_diffusion_loss(identity, x, p_uncond=0.1)
    with pytest.raises(ValueError, match=r"`prediction` to be 'epsilon' or 'v', got 'x0'"):
        logsnr_diffusion_loss(identity, x, prediction="x0")
    with pytest.raises(TypeError, match=r"`x` to be a floating point tensor, got dtype torch.int64"):
        logsnr_diffusion_loss(identity, torch.zeros(4, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"`model output` to have the shape of `x` \(4, 1\), got \(4, 2\)"):
        logsnr_diffusion_loss(lambda z, lam: torch.zeros(4, 2), x)
    with pytest.raises(ValueError, match=r"`u` in \[0, 1\], got values in \[0.0, 1.5\]"):
        logsnr_schedule(torch.tensor([0.0, 1.5]))
    with pytest.raises(ValueError, match=r"`logsnr_min` < `logsnr_max`, got logsnr_min=3.0, logsnr_max=-3.0"):
        logsnr_schedule(torch.tensor([0.5]), 3.0, -3.0)
