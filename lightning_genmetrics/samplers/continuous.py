"""Continuous-time diffusion in log-SNR with classifier-free guidance (Ho & Salimans 2022, Algorithms 1 and 2).

Notation (Kingma et al. 2021; Ho & Salimans 2022): the data is noised as ``z_λ = α_λ·x + σ_λ·ε`` with
``ε ~ N(0, I)``, ``α²_λ = sigmoid(λ)`` and ``σ²_λ = sigmoid(−λ)``, so ``λ = log(α²/σ²)`` is the log signal-to-noise
ratio. The schedule maps ``u ∈ [0, 1]`` to ``λ(u) = −2·log tan(a·u + b)`` with ``b = arctan(e^(−λ_max/2))`` and
``a = arctan(e^(−λ_min/2)) − b``: ``λ(0) = λ_max`` (nearly clean), ``λ(1) = λ_min`` (nearly pure noise).

The model is called ``model(z, logsnr)`` or ``model(z, logsnr, labels)`` with ``logsnr`` a float32 tensor ``[N]``
(float32 whatever the model's dtype: bfloat16 would round ``λ ≈ 10`` to a multiple of 1/16; cast it inside the
model where its embedding needs another dtype). It predicts ``ε`` (``prediction="epsilon"``) or
``v = α·ε − σ·x`` (``prediction="v"``). Guidance is ``ε̃ = (1 + w)·ε(z, c) − w·ε(z, ∅)``; ``guidance_scale`` is
``s = 1 + w``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

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
from lightning_genmetrics.samplers.diffusion import (
    Prediction,
    _check_probability,
    _check_real,
    _check_same_shape,
    _combine,
    _resolve_guidance,
    drop_labels,
    guided_model_output,
)


def logsnr_schedule(u: Tensor, logsnr_min: float = -20.0, logsnr_max: float = 20.0) -> Tensor:
    """The log-SNR ``λ(u) = −2·log tan(a·u + b)`` of Ho & Salimans (2022), in float64.

    ``b = arctan(e^(−λ_max/2))`` and ``a = arctan(e^(−λ_min/2)) − b``, so ``λ(0) = λ_max`` and ``λ(1) = λ_min``;
    ``λ`` decreases with ``u`` (the cosine schedule of Nichol & Dhariwal, truncated to ``[λ_min, λ_max]``).

    Args:
        u: times in ``[0, 1]``, any shape and floating dtype.
        logsnr_min: ``λ(1)``, the noisiest log-SNR.
        logsnr_max: ``λ(0)``, the cleanest log-SNR, above ``logsnr_min``.

    Returns:
        ``λ(u)``, float64, of the shape of ``u`` on its device.

    Raises:
        TypeError: ``u`` not a floating point tensor, or a bound not a float.
        ValueError: ``u`` outside ``[0, 1]``, or the bounds not finite with ``logsnr_min < logsnr_max``.

    Example:
        >>> import torch
        >>> logsnr_schedule(torch.tensor([0.0, 0.25, 0.75, 1.0])).round(decimals=3)
        tensor([ 20.0000,   1.7630,  -1.7630, -20.0000], dtype=torch.float64)
    """
    check_tensor(u, "u")
    if not u.is_floating_point():
        raise TypeError(f"Expected `u` to be a floating point tensor, got dtype {u.dtype}.")
    if u.numel() > 0 and (float(u.min()) < 0 or float(u.max()) > 1):
        raise ValueError(f"Expected `u` in [0, 1], got values in [{float(u.min())}, {float(u.max())}].")
    return _logsnr(u, *_schedule_coefficients(logsnr_min, logsnr_max))


def logsnr_to_alpha_sigma(logsnr: Tensor) -> tuple[Tensor, Tensor]:
    """``α_λ = √sigmoid(λ)`` and ``σ_λ = √sigmoid(−λ)``, in float64 (so ``α² + σ² = 1``).

    Example:
        >>> import torch
        >>> alpha, sigma = logsnr_to_alpha_sigma(torch.tensor([0.0, 2.0]))
        >>> alpha, sigma
        (tensor([0.7071, 0.9385], dtype=torch.float64), tensor([0.7071, 0.3453], dtype=torch.float64))
        >>> bool(((alpha**2 + sigma**2 - 1).abs() < 1e-15).all())  # to rounding (torch's sqrt may be 1 ulp off)
        True
    """
    check_tensor(logsnr, "logsnr")
    logsnr = logsnr.to(torch.float64)
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def logsnr_diffusion_loss(
    model: Callable[..., Tensor],
    x: Tensor,
    *,
    labels: Tensor | None = None,
    p_uncond: float = 0.0,
    null_label: int | None = None,
    prediction: Prediction = "epsilon",
    logsnr_min: float = -20.0,
    logsnr_max: float = 20.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One step of Algorithm 1 of Ho & Salimans (2022): the loss ``E‖target − model(z_λ, λ[, c])‖²`` (mean).

    Draws, in this order from ``generator`` (or the global stream): ``u ~ U[0, 1)`` per row (float64), the noise
    ``ε ~ N(0, I)`` in the dtype of ``x``, and, when ``p_uncond > 0``, the label-dropout mask (see
    ``drop_labels``). Then ``λ = λ(u)`` (``logsnr_schedule``), ``z_λ = α_λ·x + σ_λ·ε`` and the target is ``ε``
    (``prediction="epsilon"``) or ``v = α_λ·ε − σ_λ·x`` (``"v"``). The model gets ``λ`` as float32 ``[N]``.

    Args:
        model: ``model(z, logsnr)`` or, with ``labels``, ``model(z, logsnr, labels)``.
        x: clean training data ``[N, ...]`` (usually scaled to ``[-1, 1]``).
        labels: integer class labels ``[N]`` for a conditional model.
        p_uncond: label-dropout probability for classifier-free guidance (the paper: 0.1 to 0.2).
        null_label: the "no class" label, required when ``p_uncond > 0``.
        prediction: what the model predicts, ``"epsilon"`` or ``"v"``.
        logsnr_min: the schedule's noisiest log-SNR.
        logsnr_max: the schedule's cleanest log-SNR.
        generator: the random stream, on the device of ``x``.

    Returns:
        A scalar loss that carries the model's gradient.

    Raises:
        TypeError: a bad argument type.
        ValueError: a bad value, ``p_uncond > 0`` without labels and ``null_label``, or a model output of another
            shape than ``x``.

    Example:
        >>> import torch
        >>> model = lambda z, logsnr: torch.zeros_like(z)
        >>> loss = logsnr_diffusion_loss(model, torch.zeros(5000, 1), generator=torch.Generator().manual_seed(0))
        >>> abs(loss.item() - 1.0) < 0.1
        True
    """
    check_tensor(x, "x")
    if not x.is_floating_point():
        raise TypeError(f"Expected `x` to be a floating point tensor, got dtype {x.dtype}.")
    if x.ndim == 0:
        raise ValueError("Expected `x` to have shape [N, ...], got a scalar.")
    if prediction not in ("epsilon", "v"):
        raise ValueError(f"Expected `prediction` to be 'epsilon' or 'v', got {prediction!r}.")
    p_uncond = _check_probability(p_uncond, "p_uncond")
    labels = check_labels(labels, x.shape[0], None)
    if p_uncond > 0 and (labels is None or null_label is None):
        raise ValueError(f"`p_uncond` = {p_uncond} needs `labels` and `null_label` (got null_label={null_label!r}).")
    a, b = _schedule_coefficients(logsnr_min, logsnr_max)
    u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=torch.float64)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    # u is in [0, 1) by construction: no range check, which would synchronise with the device at every step.
    logsnr = _logsnr(u, a, b)
    alpha, sigma = (c.reshape(-1, *([1] * (x.ndim - 1))) for c in logsnr_to_alpha_sigma(logsnr))
    z = (alpha * x + sigma * noise).to(x.dtype)
    target = noise if prediction == "epsilon" else (alpha * noise - sigma * x).to(x.dtype)
    logsnr = logsnr.to(torch.float32)
    if labels is None:
        out = model(z, logsnr)
    else:
        if p_uncond > 0:
            labels = drop_labels(labels, p_uncond, cast(int, null_label), generator=generator)
        out = model(z, logsnr, labels)
    _check_same_shape(out, x, "model output", "x")
    return torch.mean((out - target) ** 2)


class LogSNRDiffusionSampler:
    """Algorithm 2 of Ho & Salimans (2022): ancestral sampling in log-SNR with classifier-free guidance.

    The sampler visits ``λ_1 < … < λ_T``, the schedule at ``num_steps = T`` times ``u`` evenly spaced from 1 down to
    0 (so ``λ_1 = λ_min`` and ``λ_T = λ_max``). From ``z_1 ~ N(0, I)``, step ``t`` computes the guided
    ``ε̃ = (1 + w)·ε(z_t, c) − w·ε(z_t, ∅)`` (one model call of ``2N`` rows: ``z_t`` twice, the labels then ``N``
    copies of ``null_label``; ``N`` rows when ``w = 0``), ``x̃ = (z_t − σ_t·ε̃)/α_t`` (clipped to ``[-1, 1]`` when
    ``clip_sample``), and draws ``z_{t+1}`` from the forward-process posterior ``q(z_{λ'} | z_λ, x̃)`` with
    ``λ = λ_t``, ``λ' = λ_{t+1}`` and ``r = e^(λ − λ')``:

    - mean ``r·(α_{λ'}/α_λ)·z_t + (1 − r)·α_{λ'}·x̃``;
    - variance ``(σ̃²)^(1 − v)·(σ²_{λ|λ'})^v`` with ``σ̃² = (1 − r)·σ²_{λ'}`` (the posterior's own) and
      ``σ²_{λ|λ'} = (1 − r)·σ²_λ`` (the forward step's), ``v = variance_interpolation``.

    The last step returns ``x̃``. With one generator per sample, a sample's generator yields its initial noise, then
    its label (only when ``num_classes`` is set and no labels are given: uniform over the classes), then the noise
    of every step but the last.

    Sampling runs under ``torch.no_grad()`` with the model in eval mode when it is an ``nn.Module`` or a bound method
    of one (each submodule's train flag is restored afterwards).

    Precision: the noise is drawn in float32 (the same bits for every model dtype), then cast to the model's dtype
    (``dtype``, else that of the model's parameters, see ``model_dtype``), in which ``z`` and each step's update
    are computed; the schedule's coefficients are float64 Python floats and ``logsnr`` is passed as float32. The
    result is float32, checked once for NaN/Inf (``NonFiniteSamplesError``). With ε-prediction, ``1/α ≈ 2·10⁴``
    at ``λ_min = −20`` multiplies the model's rounding error in the first steps' ``x̃``; those steps weigh little in
    the sample (``α_{λ'}`` is small), and a bfloat16 model samples the Gaussian test case as a float32 one does.

    Args:
        model: the denoising network (or any callable) returning a tensor of the shape of ``z``.
        sample_shape: ``(C, H, W)``.
        num_steps: the number of sampling steps ``T >= 2``.
        variance_interpolation: ``v`` in ``[0, 1]``: 0 is the posterior variance ``σ̃²``, 1 the forward
            step's ``σ²_{λ|λ'}`` (larger).
        guidance: the guidance strength ``w`` (``w >= -1``; 0 is plain conditional sampling).
        guidance_scale: ``s = 1 + w``, instead of ``guidance`` (giving both is an error).
        null_label: the "no class" label of the unconditional pass; required when guidance is on.
        prediction: ``"epsilon"`` or ``"v"`` (``ε̂ = σ·z + α·v̂``).
        clip_sample: clamp each ``x̃`` to ``[-1, 1]`` (not part of Algorithm 2).
        logsnr_min: the schedule's noisiest log-SNR ``λ_min``, where sampling starts.
        logsnr_max: the schedule's cleanest log-SNR ``λ_max``, where it ends.
        num_classes: when set, labels must lie in ``[0, num_classes)``, and missing labels are drawn uniformly.
        clamp_output: clamp the final samples to the output range ``(-1, 1)``, so the metrics can read them.
        dtype: the floating point dtype the model takes; ``None`` reads it from the model's parameters.

    Raises:
        TypeError: a bad argument type.
        ValueError: a bad value: ``num_steps < 2``, ``variance_interpolation`` outside ``[0, 1]``, bad log-SNR
            bounds, both ``guidance`` and ``guidance_scale``, guidance without ``null_label``.

    Example:
        >>> import torch
        >>> model = lambda z, logsnr: torch.zeros_like(z)
        >>> sampler = LogSNRDiffusionSampler(model, (1, 2, 2), num_steps=8)
        >>> sampler(3, generator=torch.Generator().manual_seed(0), device="cpu").shape
        torch.Size([3, 1, 2, 2])
        >>> [round(x, 2) for x in sampler.logsnrs]
        [-20.0, -2.95, -1.46, -0.45, 0.45, 1.46, 2.95, 20.0]
    """

    output_range: InputRange = (-1.0, 1.0)

    def __init__(
        self,
        model: Callable[..., Tensor],
        sample_shape: tuple[int, int, int],
        num_steps: int = 256,
        variance_interpolation: float = 0.3,
        guidance: float = 0.0,
        guidance_scale: float | None = None,
        null_label: int | None = None,
        prediction: Prediction = "epsilon",
        clip_sample: bool = False,
        *,
        logsnr_min: float = -20.0,
        logsnr_max: float = 20.0,
        num_classes: int | None = None,
        clamp_output: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"Expected `model` to be callable, got {type(model).__name__}.")
        self.model = model
        self.sample_shape = check_shape(sample_shape, "sample_shape", length=3)
        self.num_steps = check_positive_int(num_steps, "num_steps", minimum=2)
        self.variance_interpolation = _check_probability(variance_interpolation, "variance_interpolation")
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
        _schedule_coefficients(logsnr_min, logsnr_max)
        self.logsnr_min, self.logsnr_max = float(logsnr_min), float(logsnr_max)
        self.num_classes = None if num_classes is None else check_positive_int(num_classes, "num_classes")
        self.clamp_output = check_bool(clamp_output, "clamp_output")
        self.dtype = check_dtype(dtype)

    @property
    def logsnrs(self) -> list[float]:
        """The visited ``λ_1 < … < λ_T`` as float64 Python floats: ``λ(u)`` at ``u`` evenly spaced from 1 to 0."""
        u = torch.linspace(1, 0, self.num_steps, dtype=torch.float64)
        return logsnr_schedule(u, self.logsnr_min, self.logsnr_max).tolist()

    def __repr__(self) -> str:
        return (
            f"LogSNRDiffusionSampler(sample_shape={self.sample_shape}, num_steps={self.num_steps}, "
            f"variance_interpolation={self.variance_interpolation}, guidance={self.guidance}, "
            f"prediction={self.prediction!r}, logsnr_min={self.logsnr_min}, logsnr_max={self.logsnr_max})"
        )

    @torch.no_grad()
    def __call__(
        self, num_samples: int, *, generator: Generators, device: torch.device | str, labels: Tensor | None = None
    ) -> Tensor:
        """Draw ``num_samples`` float32 samples ``[N, C, H, W]`` (see the class docstring).

        Raises:
            TypeError: bad generator or labels type, or the model returning a non-tensor.
            ValueError: wrong label count or range, guidance without labels, or a model output of the wrong
                shape.
            NonFiniteSamplesError: the final samples hold NaN/Inf.
        """
        generator, labels, dtype, z = start_guided_sampling(self, num_samples, generator, device, labels)
        if num_samples == 0:
            return z
        z = z.to(dtype)
        logsnrs = self.logsnrs
        v = self.variance_interpolation
        with eval_mode(self.model):
            for t, logsnr in enumerate(logsnrs):
                alpha, sigma = _alpha_sigma(logsnr)
                x_hat = self._predict_x(z, logsnr, labels, alpha, sigma)
                if self.clip_sample:
                    x_hat = x_hat.clamp_(-1, 1)
                if t == len(logsnrs) - 1:
                    z = x_hat
                    break
                next_logsnr = logsnrs[t + 1]
                next_alpha, next_sigma = _alpha_sigma(next_logsnr)
                # 1 − r = 1 − e^(λ − λ') without cancellation when consecutive λ are close.
                one_minus_r = -math.expm1(logsnr - next_logsnr)
                z = _combine(z, (1 - one_minus_r) * next_alpha / alpha, x_hat, one_minus_r * next_alpha)
                # (σ̃²)^(1−v)·(σ²_{λ|λ'})^v = (1 − r)·σ'^(2(1−v))·σ^(2v), as a standard deviation.
                std = math.sqrt(one_minus_r) * next_sigma ** (1 - v) * sigma**v
                noise = randn_per_sample(self.sample_shape, generator, num_samples, device)
                z = z.add_(noise.to(dtype).mul_(std))
        clamp_range = self.output_range if self.clamp_output else None
        return check_images(z, num_samples, "sampler", f"{self!r}, computed in {dtype}", clamp_range)

    def _predict_x(self, z: Tensor, logsnr: float, labels: Tensor | None, alpha: float, sigma: float) -> Tensor:
        # x̃ from the (guided) model output at z, as a new tensor in the dtype of ``z``.
        n = z.shape[0]
        logsnr_rows = torch.full((n,), logsnr, dtype=torch.float32, device=z.device)
        out = guided_model_output(self, z, logsnr_rows, labels).to(z.dtype)
        if self.prediction == "epsilon":
            # x̃ = (z − σ·ε̃)/α, with both coefficients divided in float64.
            return _combine(z, 1 / alpha, out, -sigma / alpha)
        # x̃ = α·z − σ·ṽ: the same x̃ as through ε̃ = σ·z + α·ṽ, since α² + σ² = 1.
        return _combine(z, alpha, out, -sigma)


def _logsnr(u: Tensor, a: float, b: float) -> Tensor:
    return -2 * torch.log(torch.tan(a * u.to(torch.float64) + b))


def _alpha_sigma(logsnr: float) -> tuple[float, float]:
    # α = √sigmoid(λ), σ = √sigmoid(−λ) as float64 Python floats.
    return math.sqrt(1 / (1 + math.exp(-logsnr))), math.sqrt(1 / (1 + math.exp(logsnr)))


def _schedule_coefficients(logsnr_min: Any, logsnr_max: Any) -> tuple[float, float]:
    # a and b of λ(u) = −2·log tan(a·u + b), after checking the bounds.
    low, high = _check_real(logsnr_min, "logsnr_min"), _check_real(logsnr_max, "logsnr_max")
    if not low < high:
        raise ValueError(f"Expected `logsnr_min` < `logsnr_max`, got logsnr_min={low}, logsnr_max={high}.")
    b = math.atan(math.exp(-high / 2))
    return math.atan(math.exp(-low / 2)) - b, b
