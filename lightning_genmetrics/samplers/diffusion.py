"""Diffusion sampling (DDPM, DDIM) with classifier-free guidance, and the matching training helpers.

Notation (Ho et al. 2020; Song et al. 2021): ``ᾱ_t`` is ``alphas_cumprod[t]``, the data is noised as
``z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε`` with ``ε ~ N(0, I)``, and the model predicts either ``ε``
(``prediction="epsilon"``) or ``v = √ᾱ_t·ε − √(1 − ᾱ_t)·x`` (``prediction="v"``, Salimans & Ho 2022).

Classifier-free guidance follows Ho & Salimans (2022): ``ε̃ = (1 + w)·ε(z, c) − w·ε(z, ∅)`` with the
guidance strength ``w`` (``w = 0`` is plain conditional sampling). diffusers' pipelines call
``s = 1 + w`` the ``guidance_scale``; both are accepted, each under its own name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, cast

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_positive_int, check_tensor
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.samplers.base import (
    Generators,
    check_dtype,
    check_images,
    check_labels,
    check_shape,
    eval_mode,
    randn_per_sample,
    start_guided_sampling,
)

Prediction = Literal["epsilon", "v"]
Method = Literal["ddim", "ddpm"]
TimestepSpacing = Literal["trailing", "leading", "linspace"]


class NoiseSchedule:
    """A discrete noise schedule: ``betas`` and ``alphas_cumprod = ∏ (1 − β)``, float64 ``[num_train_steps]``.

    Args:
        betas: the per-step variances β_t, each in ``(0, 1)``.

    Raises:
        TypeError: ``betas`` not a floating point tensor.
        ValueError: not one-dimensional, empty, or a value outside ``(0, 1)``.

    Example:
        >>> schedule = NoiseSchedule.linear(1000)
        >>> schedule.alphas_cumprod.dtype, len(schedule)
        (torch.float64, 1000)
        >>> round(schedule.alphas_cumprod[-1].item(), 8)
        4.036e-05
    """

    def __init__(self, betas: Tensor) -> None:
        check_tensor(betas, "betas")
        if not betas.is_floating_point():
            raise TypeError(f"Expected `betas` to be a floating point tensor, got dtype {betas.dtype}.")
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"Expected `betas` to have shape [num_train_steps], got shape {tuple(betas.shape)}.")
        betas = betas.detach().to("cpu", torch.float64)
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(f"Expected `betas` in (0, 1), got values in [{betas.min().item()}, {betas.max().item()}].")
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    def __len__(self) -> int:
        return self.betas.shape[0]

    def __repr__(self) -> str:
        return f"NoiseSchedule(num_train_steps={len(self)})"

    @classmethod
    def linear(cls, num_train_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """DDPM's linear schedule: ``β_t`` evenly spaced from ``beta_start`` to ``beta_end`` (both included).

        The defaults are Ho et al.'s for 1000 steps; improved-diffusion scales both by ``1000 / num_train_steps``
        for other lengths, pass the scaled values to match it.

        Example:
            >>> NoiseSchedule.linear(3, 0.1, 0.3).betas
            tensor([0.1000, 0.2000, 0.3000], dtype=torch.float64)
        """
        check_positive_int(num_train_steps, "num_train_steps")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"Expected 0 < `beta_start` <= `beta_end` < 1, got beta_start={beta_start}, beta_end={beta_end}."
            )
        return cls(torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64))

    @classmethod
    def cosine(cls, num_train_steps: int, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """Nichol & Dhariwal's cosine schedule.

        With ``f(u) = cos²((u + s) / (1 + s) · π/2)``: ``β_t = min(1 − f((t + 1)/T) / f(t/T), max_beta)``, so
        ``ᾱ_t ≈ f((t + 1)/T) / f(0)`` except where the clip at ``max_beta`` bites (the last steps).

        Example:
            >>> schedule = NoiseSchedule.cosine(1000)
            >>> schedule.betas[-1].item()
            0.999
        """
        check_positive_int(num_train_steps, "num_train_steps")
        if not s > 0:
            raise ValueError(f"Expected `s` > 0, got {s}.")
        if not 0 < max_beta < 1:
            raise ValueError(f"Expected `max_beta` in (0, 1), got {max_beta}.")
        u = torch.arange(num_train_steps + 1, dtype=torch.float64) / num_train_steps
        f = torch.cos((u + s) / (1 + s) * (math.pi / 2)) ** 2
        return cls((1 - f[1:] / f[:-1]).clamp(max=max_beta))


ScheduleLike = Literal["linear", "cosine"] | NoiseSchedule


def make_schedule(schedule: ScheduleLike, num_train_steps: int) -> NoiseSchedule:
    """A ``NoiseSchedule`` from a name (default parameters) or a schedule object of ``num_train_steps`` steps.

    Example:
        >>> make_schedule("cosine", 10)
        NoiseSchedule(num_train_steps=10)
    """
    check_positive_int(num_train_steps, "num_train_steps")
    if isinstance(schedule, NoiseSchedule):
        if len(schedule) != num_train_steps:
            raise ValueError(
                f"Expected `schedule` to have num_train_steps = {num_train_steps} steps, got {len(schedule)}; "
                "pass num_train_steps=len(schedule)."
            )
        return schedule
    if schedule == "linear":
        return NoiseSchedule.linear(num_train_steps)
    if schedule == "cosine":
        return NoiseSchedule.cosine(num_train_steps)
    raise ValueError(f"Expected `schedule` to be 'linear', 'cosine' or a NoiseSchedule, got {schedule!r}.")


def sampling_timesteps(num_train_steps: int, num_steps: int, spacing: TimestepSpacing = "trailing") -> list[int]:
    """The ``num_steps`` training-step indices a sampler visits, in decreasing order.

    ``trailing`` (the default) starts at ``T − 1``, the noisiest step: ``t_k = round(T·(S − k)/S) − 1`` (halves
    round up; diffusers' ``"trailing"`` is the same up to its float rounding at exact halves).
    ``leading`` is the DDIM paper's ``t_k = (S − 1 − k)·⌊T/S⌋``; ``linspace`` rounds ``S`` evenly spaced points of
    ``[0, T − 1]``. ``leading`` and ``linspace`` never visit ``T − 1`` when ``S < T``, so they start from a noise
    level below the one the sampler's pure-noise start assumes (Lin et al. 2024).

    Example:
        >>> sampling_timesteps(1000, 4)
        [999, 749, 499, 249]
        >>> sampling_timesteps(1000, 4, "leading")
        [750, 500, 250, 0]
    """
    check_positive_int(num_train_steps, "num_train_steps")
    check_positive_int(num_steps, "num_steps")
    if num_steps > num_train_steps:
        raise ValueError(f"Expected `num_steps` <= num_train_steps = {num_train_steps}, got {num_steps}.")
    t, s = num_train_steps, num_steps
    if spacing == "trailing":
        return [(2 * t * (s - k) + s) // (2 * s) - 1 for k in range(s)]
    if spacing == "leading":
        return [(s - 1 - k) * (t // s) for k in range(s)]
    if spacing == "linspace":
        if s == 1:
            return [0]
        # round(k·(T−1)/(S−1)) half up, in integers.
        return [(2 * k * (t - 1) + (s - 1)) // (2 * (s - 1)) for k in reversed(range(s))]
    raise ValueError(f"Expected `timestep_spacing` to be 'trailing', 'leading' or 'linspace', got {spacing!r}.")


def _alpha_bar(schedule: NoiseSchedule, t: Tensor, like: Tensor) -> Tensor:
    # ᾱ_t per row, in float64, shaped to broadcast against ``like``.
    check_tensor(t, "t")
    if t.dtype != torch.int64:
        raise TypeError(f"Expected `t` to be an int64 tensor of training-step indices, got dtype {t.dtype}.")
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"Expected `t` to have shape [{like.shape[0]}], got shape {tuple(t.shape)}.")
    if t.numel() > 0 and (int(t.min()) < 0 or int(t.max()) >= len(schedule)):
        raise ValueError(
            f"Expected `t` in [0, {len(schedule)}) (num_train_steps), got values in [{int(t.min())}, {int(t.max())}]."
        )
    a = schedule.alphas_cumprod.to(like.device)[t]
    return a.reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """Noise clean data to step ``t``: a draw of ``q(z_t | x) = N(√ᾱ_t·x, (1 − ᾱ_t)·I)`` given ``noise``.

    Args:
        schedule: the noise schedule.
        x0: clean data ``[N, ...]``.
        t: int64 ``[N]`` training-step indices in ``[0, num_train_steps)``.
        noise: ``ε`` of the shape of ``x0``.

    Returns:
        ``z_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·noise`` in the dtype of ``x0``.

    Example:
        >>> import torch
        >>> schedule = NoiseSchedule.linear(10)
        >>> z = q_sample(schedule, torch.zeros(1, 2), torch.tensor([9]), torch.ones(1, 2))
        >>> torch.allclose(z, (1 - schedule.alphas_cumprod[9]).sqrt().float().expand(1, 2))
        True
    """
    _check_same_shape(noise, x0, "noise", "x0")
    a = _alpha_bar(schedule, t, x0)
    return (a.sqrt() * x0 + (1 - a).sqrt() * noise).to(x0.dtype)


def velocity_target(schedule: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """The v-prediction target ``v = √ᾱ_t·ε − √(1 − ᾱ_t)·x0`` (Salimans & Ho 2022).

    Example:
        >>> import torch
        >>> schedule = NoiseSchedule.linear(10)
        >>> x0, noise, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 3, 6, 9])
        >>> v = velocity_target(schedule, x0, t, noise)
        >>> x0_hat, eps_hat = prediction_to_x0_epsilon(schedule, v, q_sample(schedule, x0, t, noise), t, "v")
        >>> torch.allclose(x0_hat, x0, atol=1e-5) and torch.allclose(eps_hat, noise, atol=1e-5)
        True
    """
    _check_same_shape(noise, x0, "noise", "x0")
    a = _alpha_bar(schedule, t, x0)
    return (a.sqrt() * noise - (1 - a).sqrt() * x0).to(x0.dtype)


def prediction_to_x0_epsilon(
    schedule: NoiseSchedule, output: Tensor, z_t: Tensor, t: Tensor, prediction: Prediction
) -> tuple[Tensor, Tensor]:
    """The predicted clean data and noise implied by a model output at ``z_t``.

    ``epsilon``: ``x̂ = (z_t − √(1 − ᾱ)·ε̂) / √ᾱ``. ``v``: ``x̂ = √ᾱ·z_t − √(1 − ᾱ)·v̂`` and
    ``ε̂ = √(1 − ᾱ)·z_t + √ᾱ·v̂``. Computed in float64, returned in the dtype of ``z_t``.

    Example:
        >>> import torch
        >>> schedule = NoiseSchedule.linear(10)
        >>> x0_hat, eps_hat = prediction_to_x0_epsilon(schedule, torch.zeros(1, 1), torch.ones(1, 1),
        ...                                            torch.tensor([0]), "epsilon")
        >>> torch.allclose(x0_hat, 1 / schedule.alphas_cumprod[0].sqrt().float().reshape(1, 1))
        True
    """
    _check_same_shape(output, z_t, "output", "z_t")
    a = _alpha_bar(schedule, t, z_t)
    out, z = output.to(torch.float64), z_t.to(torch.float64)
    if prediction == "epsilon":
        eps = out
        x0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
    elif prediction == "v":
        x0 = a.sqrt() * z - (1 - a).sqrt() * out
        eps = (1 - a).sqrt() * z + a.sqrt() * out
    else:
        raise ValueError(f"Expected `prediction` to be 'epsilon' or 'v', got {prediction!r}.")
    return x0.to(z_t.dtype), eps.to(z_t.dtype)


def drop_labels(
    labels: Tensor, p_uncond: float, null_label: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Replace each label by ``null_label`` with probability ``p_uncond`` (Algorithm 1 of Ho & Salimans 2022).

    Training with dropped labels teaches one network both ``ε(z, c)`` and ``ε(z, ∅)`` for classifier-free
    guidance. The paper found ``p_uncond`` of 0.1 to 0.2 best across guidance strengths; 0.5 was worse.

    Args:
        labels: integer class labels ``[N]``.
        p_uncond: the drop probability, in ``[0, 1]``.
        null_label: the label that stands for "no class" (for example ``num_classes``, an extra embedding row).
        generator: the random stream (on the labels' device); ``None`` uses torch's global one.

    Returns:
        A new tensor; ``labels`` is not modified.

    Example:
        >>> import torch
        >>> drop_labels(torch.tensor([3, 1, 2]), 1.0, null_label=10)
        tensor([10, 10, 10])
    """
    check_tensor(labels, "labels")
    if labels.ndim != 1:
        raise ValueError(f"Expected `labels` to have shape [N], got shape {tuple(labels.shape)}.")
    check_labels(labels, labels.shape[0], None)
    p_uncond = _check_probability(p_uncond, "p_uncond")
    if isinstance(null_label, bool) or not isinstance(null_label, int):
        raise TypeError(f"Expected `null_label` to be an int, got {null_label!r}.")
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < p_uncond
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def diffusion_loss(
    model: Callable[..., Tensor],
    x0: Tensor,
    schedule: NoiseSchedule,
    *,
    labels: Tensor | None = None,
    p_uncond: float = 0.0,
    null_label: int | None = None,
    prediction: Prediction = "epsilon",
    generator: torch.Generator | None = None,
) -> Tensor:
    """The simple diffusion training loss ``E‖target − model(z_t, t[, c])‖²`` (mean over all elements).

    Draws, in this order from ``generator`` (or the global stream): ``t ~ U{0, …, T − 1}`` per row, the noise
    ``ε ~ N(0, I)``, and, when ``p_uncond > 0``, the label-dropout mask. The target is ``ε`` for
    ``prediction="epsilon"`` and ``v`` for ``"v"``.

    Args:
        model: ``model(z_t, t)`` or, with ``labels``, ``model(z_t, t, labels)``.
        x0: clean training data ``[N, ...]`` (usually scaled to ``[-1, 1]``).
        schedule: the noise schedule.
        labels: integer class labels ``[N]`` for a conditional model.
        p_uncond: label-dropout probability for classifier-free guidance (see ``drop_labels``).
        null_label: the "no class" label, required when ``p_uncond > 0``.
        prediction: what the model predicts.
        generator: the random stream, on the device of ``x0``.

    Returns:
        A scalar loss that carries the model's gradient.

    Example:
        >>> import torch
        >>> model = lambda z, t: torch.zeros_like(z)
        >>> loss = diffusion_loss(model, torch.zeros(5000, 1), NoiseSchedule.linear(100))
        >>> abs(loss.item() - 1.0) < 0.1
        True
    """
    check_tensor(x0, "x0")
    if prediction not in ("epsilon", "v"):
        raise ValueError(f"Expected `prediction` to be 'epsilon' or 'v', got {prediction!r}.")
    p_uncond = _check_probability(p_uncond, "p_uncond")
    labels = check_labels(labels, x0.shape[0], None)
    if p_uncond > 0 and (labels is None or null_label is None):
        raise ValueError(f"`p_uncond` = {p_uncond} needs `labels` and `null_label` (got null_label={null_label!r}).")
    t = torch.randint(len(schedule), (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    z_t = q_sample(schedule, x0, t, noise)
    target = noise if prediction == "epsilon" else velocity_target(schedule, x0, t, noise)
    if labels is None:
        out = model(z_t, t)
    else:
        if p_uncond > 0:
            labels = drop_labels(labels, p_uncond, cast(int, null_label), generator=generator)
        out = model(z_t, t, labels)
    _check_same_shape(out, x0, "model output", "x0")
    return torch.mean((out - target) ** 2)


class DiffusionSampler:
    """DDPM or DDIM sampling of an ε- or v-prediction model, with optional classifier-free guidance.

    The model is called ``model(x_t, t)`` (unconditional) or ``model(x_t, t, labels)`` (conditional), with
    ``t`` an int64 ``[N]`` tensor of training-step indices in ``[0, num_train_steps)``. Under guidance the
    conditional and unconditional passes are one call on ``2N`` rows: ``x_t`` twice, the labels then
    ``N`` copies of ``null_label``. Sampling runs under ``torch.no_grad()`` with the model in eval mode when it is an
    ``nn.Module`` or a bound method of one (each submodule's train flag is restored afterwards; put a model wrapped
    in a lambda in eval mode yourself) and draws only from the given generator(s).

    The sampler visits ``num_steps`` timesteps (see ``sampling_timesteps``); each step maps ``x_t`` to the
    previous visited step (``ᾱ = 1`` after the last), through ``x̂ = E[x | x_t]`` clipped to ``[-1, 1]`` when
    ``clip_sample``:

    - DDIM: ``x_prev = √ᾱ_prev·x̂ + √(1 − ᾱ_prev − σ²)·ε̂ + σ·z`` with
      ``σ = eta·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev)``; ``eta = 0`` is deterministic.
    - DDPM: the posterior ``q(x_prev | x_t, x̂)``, mean ``(√ᾱ_prev·β/(1 − ᾱ_t))·x̂ + (√α·(1 − ᾱ_prev)/(1 − ᾱ_t))·x_t``
      and variance ``β·(1 − ᾱ_prev)/(1 − ᾱ_t)``, with ``α = ᾱ_t/ᾱ_prev``, ``β = 1 − α``.

    With one generator per sample, a sample's generator yields its initial noise, then its label (only when
    ``num_classes`` is set and no labels are given: uniform over the classes), then the noise of every step
    but the last (none for DDIM with ``eta = 0``).

    Precision: the noise is drawn in float32 (the same bits for every model dtype), then cast to the model's
    dtype (``dtype``, else that of the model's parameters, see ``model_dtype``), in which ``x_t`` and each step's
    update are computed; the schedule's coefficients are float64 Python floats. The result is float32. The final
    samples are checked once for NaN/Inf (``NonFiniteSamplesError``); a NaN/Inf of an intermediate step reaches
    them, except with DDPM an Inf of ``ε̂`` that ``clip_sample`` turns into ±1 in ``x̂`` (DDPM uses ``x̂`` alone).

    Args:
        model: the denoising network (or any callable) returning a tensor of the shape of ``x_t``.
        sample_shape: ``(C, H, W)``.
        schedule: ``"linear"``, ``"cosine"`` or a ``NoiseSchedule`` of ``num_train_steps`` steps.
        num_train_steps: the number of training diffusion steps ``T``.
        num_steps: the number of sampling steps, ``1 <= num_steps <= num_train_steps``.
        method: ``"ddim"`` or ``"ddpm"``.
        eta: DDIM's noise level in ``[0, 1]`` (0: deterministic, 1: DDPM's variance); must be 0 for DDPM.
        guidance: the guidance strength ``w`` of Ho & Salimans (``w >= -1``; 0 is plain conditional sampling).
        guidance_scale: diffusers' ``s = 1 + w``, instead of ``guidance`` (giving both is an error).
        null_label: the "no class" label of the unconditional pass; required when guidance is on.
        prediction: ``"epsilon"`` or ``"v"``.
        clip_sample: clamp each predicted ``x̂`` to ``[-1, 1]``.
        num_classes: when set, labels must lie in ``[0, num_classes)``, and missing labels are drawn uniformly.
        timestep_spacing: ``"trailing"``, ``"leading"`` or ``"linspace"`` (see ``sampling_timesteps``).
        clamp_output: clamp the final samples to the output range ``(-1, 1)``, so the metrics can read them.
        dtype: the floating point dtype the model takes; ``None`` reads it from the model's parameters, which a
            model wrapped in a lambda hides (it then gets float32).

    Raises:
        TypeError: a bad argument type.
        ValueError: a bad value: unknown option, ``num_steps`` outside ``[1, num_train_steps]``, ``eta`` outside
            ``[0, 1]`` (or non-zero with DDPM), both ``guidance`` and ``guidance_scale``, guidance without
            ``null_label``.

    Example:
        >>> import torch
        >>> model = lambda x, t: torch.zeros_like(x)
        >>> sampler = DiffusionSampler(model, (1, 2, 2), num_steps=10)
        >>> sampler(3, generator=torch.Generator().manual_seed(0), device="cpu").shape
        torch.Size([3, 1, 2, 2])
        >>> sampler.schedule.alphas_cumprod.shape
        torch.Size([1000])
    """

    output_range: InputRange = (-1.0, 1.0)

    def __init__(
        self,
        model: Callable[..., Tensor],
        sample_shape: tuple[int, int, int],
        schedule: ScheduleLike = "linear",
        num_train_steps: int = 1000,
        num_steps: int = 50,
        method: Method = "ddim",
        eta: float = 0.0,
        guidance: float = 0.0,
        guidance_scale: float | None = None,
        null_label: int | None = None,
        prediction: Prediction = "epsilon",
        clip_sample: bool = True,
        *,
        num_classes: int | None = None,
        timestep_spacing: TimestepSpacing = "trailing",
        clamp_output: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"Expected `model` to be callable, got {type(model).__name__}.")
        self.model = model
        self.sample_shape = check_shape(sample_shape, "sample_shape", length=3)
        self.schedule = make_schedule(schedule, num_train_steps)
        self.num_train_steps = num_train_steps
        self.timesteps = sampling_timesteps(num_train_steps, num_steps, timestep_spacing)
        self.num_steps = num_steps
        if method not in ("ddim", "ddpm"):
            raise ValueError(f"Expected `method` to be 'ddim' or 'ddpm', got {method!r}.")
        self.method = method
        eta = _check_real(eta, "eta")
        if not 0 <= eta <= 1:
            raise ValueError(f"Expected `eta` in [0, 1], got {eta}.")
        if method == "ddpm" and eta != 0:
            raise ValueError(f"`eta` applies to method='ddim' only, got eta={eta} with method='ddpm'.")
        self.eta = eta
        self.guidance = _resolve_guidance(guidance, guidance_scale)
        if null_label is not None and (isinstance(null_label, bool) or not isinstance(null_label, int)):
            raise TypeError(f"Expected `null_label` to be an int or None, got {null_label!r}.")
        if self.guidance != 0 and null_label is None:
            raise ValueError(f"Guidance (w = {self.guidance}) needs `null_label`, the label of the unconditional pass.")
        self.null_label = null_label
        if prediction not in ("epsilon", "v"):
            raise ValueError(f"Expected `prediction` to be 'epsilon' or 'v', got {prediction!r}.")
        self.prediction = prediction
        self.clip_sample = check_bool(clip_sample, "clip_sample")
        self.num_classes = None if num_classes is None else check_positive_int(num_classes, "num_classes")
        self.clamp_output = check_bool(clamp_output, "clamp_output")
        self.dtype = check_dtype(dtype)

    def __repr__(self) -> str:
        return (
            f"DiffusionSampler(sample_shape={self.sample_shape}, num_train_steps={self.num_train_steps}, "
            f"num_steps={self.num_steps}, method={self.method!r}, eta={self.eta}, guidance={self.guidance}, "
            f"prediction={self.prediction!r})"
        )

    @torch.no_grad()
    def __call__(
        self, num_samples: int, *, generator: Generators, device: torch.device | str, labels: Tensor | None = None
    ) -> Tensor:
        """Draw ``num_samples`` float32 samples ``[N, C, H, W]`` in ``(-1, 1)`` (see the class docstring).

        Raises:
            TypeError: bad generator or labels type, or the model returning a non-tensor.
            ValueError: wrong label count or range, guidance without labels, or a model output of the wrong
                shape.
            NonFiniteSamplesError: the final samples hold NaN/Inf.
        """
        generator, labels, dtype, x = start_guided_sampling(self, num_samples, generator, device, labels)
        if num_samples == 0:
            return x
        x = x.to(dtype)
        stochastic = self.method == "ddpm" or self.eta > 0
        alphas_cumprod = self.schedule.alphas_cumprod.tolist()
        with eval_mode(self.model):
            for k, t in enumerate(self.timesteps):
                last = k == len(self.timesteps) - 1
                a = alphas_cumprod[t]
                a_prev = 1.0 if last else alphas_cumprod[self.timesteps[k + 1]]
                x0_hat, eps_hat = self._predict(x, t, labels, a)
                if self.clip_sample:
                    x0_hat = x0_hat.clamp_(-1, 1)
                x, std = self._step(x, x0_hat, eps_hat, a, a_prev)
                if stochastic and not last:
                    noise = randn_per_sample(self.sample_shape, generator, num_samples, device)
                    x = x.add_(noise.to(dtype).mul_(std))
        clamp_range = self.output_range if self.clamp_output else None
        return check_images(x, num_samples, "sampler", f"{self!r}, computed in {dtype}", clamp_range)

    def _step(self, x: Tensor, x0_hat: Tensor, eps_hat: Tensor, a: float, a_prev: float) -> tuple[Tensor, float]:
        # One reverse step from ᾱ_t = a to ᾱ_prev = a_prev: the mean of x_prev (a new tensor) and the std of its
        # noise. Coefficients are float64 Python floats.
        if self.method == "ddpm":
            alpha = a / a_prev
            beta = 1 - alpha
            coef_x0 = math.sqrt(a_prev) * beta / (1 - a)
            coef_x = math.sqrt(alpha) * (1 - a_prev) / (1 - a)
            return _combine(x0_hat, coef_x0, x, coef_x), math.sqrt(max(beta * (1 - a_prev) / (1 - a), 0.0))
        std = self.eta * math.sqrt(max((1 - a_prev) / (1 - a) * (1 - a / a_prev), 0.0))
        direction = math.sqrt(max(1 - a_prev - std**2, 0.0))
        return _combine(x0_hat, math.sqrt(a_prev), eps_hat, direction), std

    def _predict(self, x: Tensor, t: int, labels: Tensor | None, a: float) -> tuple[Tensor, Tensor]:
        # x̂ (a new tensor, free to clip in place) and ε̂ in the dtype of ``x``, with ᾱ_t = a.
        n = x.shape[0]
        steps = torch.full((n,), t, dtype=torch.int64, device=x.device)
        out = guided_model_output(self, x, steps, labels).to(x.dtype)
        root_a, root_b = math.sqrt(a), math.sqrt(1 - a)
        if self.prediction == "epsilon":
            # x̂ = (x − √(1 − ᾱ)·ε̂)/√ᾱ, with both coefficients divided in float64.
            return _combine(x, 1 / root_a, out, -root_b / root_a), out
        return _combine(x, root_a, out, -root_b), _combine(x, root_b, out, root_a)


def guided_model_output(sampler: Any, x: Tensor, times: Tensor, labels: Tensor | None) -> Tensor:
    """The model's output at ``(x, times[, labels])``, with classifier-free guidance ``(1 + w)·out(c) − w·out(∅)``
    in one call of 2N rows when ``sampler.guidance`` is not 0 (``sampler`` has ``model``, ``guidance``,
    ``null_label`` and ``sample_shape``); in the model's output dtype.

    Raises:
        TypeError: the model returns something other than a tensor.
        ValueError: the model returns another shape than ``[rows, *sample_shape]``.
    """
    n = x.shape[0]
    if labels is None:
        return _checked_output(sampler, n, x, times)
    if sampler.guidance == 0:
        return _checked_output(sampler, n, x, times, labels)
    null = torch.full_like(labels, cast(int, sampler.null_label))
    both = _checked_output(sampler, 2 * n, torch.cat([x, x]), torch.cat([times, times]), torch.cat([labels, null]))
    return _combine(both[:n], 1 + sampler.guidance, both[n:], -sampler.guidance)


def _checked_output(sampler: Any, rows: int, *inputs: Tensor) -> Tensor:
    out = sampler.model(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"Expected `model` to return a torch.Tensor, got {type(out).__name__} "
            "(wrap a model that returns an object, e.g. `lambda *inputs: net(*inputs).sample`)."
        )
    expected = (rows, *sampler.sample_shape)
    if tuple(out.shape) != expected:
        raise ValueError(f"Expected `model` to return shape {expected}, got shape {tuple(out.shape)}.")
    return out


def _combine(u: Tensor, a: float, v: Tensor, b: float) -> Tensor:
    # a·u + b·v as a new tensor. Not torch.add(..., alpha=b): in bfloat16/float16 its CPU kernel rounds ``b``
    # differently in its vectorised body and its scalar tail, so a sample's value would depend on its batch.
    return (u * a).add_(v * b)


def _resolve_guidance(guidance: Any, guidance_scale: Any) -> float:
    w = _check_real(guidance, "guidance")
    if guidance_scale is not None:
        s = _check_real(guidance_scale, "guidance_scale")
        if w != 0:
            raise ValueError(
                f"Got both `guidance` = {guidance} (w) and `guidance_scale` = {guidance_scale} (s = 1 + w); pass one."
            )
        if s < 0:
            raise ValueError(f"Expected `guidance_scale` >= 0 (s = 1 + w), got {guidance_scale}.")
        return s - 1.0
    if w < -1:
        raise ValueError(f"Expected `guidance` >= -1 (w; -1 is unconditional sampling), got {guidance}.")
    return w


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected `{name}` to be a float, got {value!r} of type {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"Expected `{name}` to be finite, got {value}.")
    return float(value)


def _check_probability(value: Any, name: str) -> float:
    value = _check_real(value, name)
    if not 0 <= value <= 1:
        raise ValueError(f"Expected `{name}` in [0, 1], got {value}.")
    return value


def _check_same_shape(value: Any, like: Tensor, name: str, like_name: str) -> None:
    check_tensor(like, like_name)
    check_tensor(value, name)
    if value.shape != like.shape:
        raise ValueError(
            f"Expected `{name}` to have the shape of `{like_name}` {tuple(like.shape)}, got {tuple(value.shape)}."
        )
