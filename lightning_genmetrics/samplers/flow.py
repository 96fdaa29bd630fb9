"""Flow matching (rectified flow) with classifier-free guidance on the velocity, and the matching training loss.

Notation (Liu et al. 2023; Lipman et al. 2023; Esser et al. 2024, "SD3"): the straight path from data to noise is
``x_t = (1 − t)·x + t·ε`` with ``ε ~ N(0, I)``, ``t = 0`` the data and ``t = 1`` pure noise. The model predicts the
velocity ``v = dx_t/dt = ε − x``; its optimum is ``E[ε − x | x_t]``, whose probability-flow ODE ``dx/dt = v(x, t)``
carries ``N(0, I)`` at ``t = 1`` to the data distribution at ``t = 0``.

Classifier-free guidance acts on the velocity as on ε in diffusion (Ho & Salimans 2022):
``ṽ = (1 + w)·v(x, c) − w·v(x, ∅)``; ``guidance = w``, or diffusers' ``guidance_scale = s = 1 + w``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast

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
    start_guided_sampling,
)
from lightning_genmetrics.samplers.diffusion import (
    _check_probability,
    _check_real,
    _check_same_shape,
    _combine,
    _resolve_guidance,
    drop_labels,
    guided_model_output,
)

FlowSolver = Literal["euler", "heun"]
TimeDistribution = Literal["uniform", "logit_normal"]


def shift_time(t: float, shift: float) -> float:
    """The shifted time ``t' = s·t / (1 + (s − 1)·t)`` of SD3-style samplers (``shift = s > 0``).

    ``s > 1`` spends more of a fixed step budget at high noise (where large images need it, Esser et al. 2024);
    ``s = 1`` is the identity. The map keeps ``0`` and ``1`` fixed and is increasing.

    Example:
        >>> shift_time(0.5, 3.0), shift_time(0.5, 1.0), shift_time(1.0, 3.0)
        (0.75, 0.5, 1.0)
    """
    shift = _check_real(shift, "shift")
    if not shift > 0:
        raise ValueError(f"Expected `shift` > 0, got {shift}.")
    return shift * t / (1 + (shift - 1) * t)


def flow_time_grid(num_steps: int, shift: float = 1.0) -> list[float]:
    """The ``num_steps + 1`` times a flow sampler visits, from ``1`` down to ``0``, as float64 Python floats.

    The grid is ``t_k = 1 − k/num_steps`` mapped through ``shift_time``.

    Example:
        >>> flow_time_grid(4)
        [1.0, 0.75, 0.5, 0.25, 0.0]
        >>> [round(t, 4) for t in flow_time_grid(2, shift=3.0)]
        [1.0, 0.75, 0.0]
    """
    check_positive_int(num_steps, "num_steps")
    return [shift_time(1 - k / num_steps, shift) for k in range(num_steps + 1)]


def flow_interpolate(x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """The point ``x_t = (1 − t)·x0 + t·noise`` of the straight path, in the dtype of ``x0``.

    Args:
        x0: clean data ``[N, ...]``.
        t: float times ``[N]`` in ``[0, 1]`` (0: data, 1: noise).
        noise: ``ε`` of the shape of ``x0``.

    Example:
        >>> import torch
        >>> flow_interpolate(torch.zeros(2, 1), torch.tensor([0.25, 1.0]), torch.ones(2, 1))
        tensor([[0.2500],
                [1.0000]])
    """
    _check_same_shape(noise, x0, "noise", "x0")
    check_tensor(t, "t")
    if not t.is_floating_point():
        raise TypeError(f"Expected `t` to be a floating point tensor of times in [0, 1], got dtype {t.dtype}.")
    if t.ndim != 1 or t.shape[0] != x0.shape[0]:
        raise ValueError(f"Expected `t` to have shape [{x0.shape[0]}], got shape {tuple(t.shape)}.")
    t = t.to(torch.promote_types(t.dtype, x0.dtype)).reshape(-1, *([1] * (x0.ndim - 1)))
    return ((1 - t) * x0 + t * noise).to(x0.dtype)


def flow_matching_loss(
    model: Callable[..., Tensor],
    x0: Tensor,
    *,
    labels: Tensor | None = None,
    p_uncond: float = 0.0,
    null_label: int | None = None,
    time_distribution: TimeDistribution = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The flow-matching training loss ``E‖(ε − x0) − model(x_t, t[, c])‖²`` (mean over all elements).

    Draws, in this order from ``generator`` (or the global stream): ``t`` per row, the noise ``ε ~ N(0, I)``, and,
    when ``p_uncond > 0``, the label-dropout mask (see ``drop_labels``). ``t`` is uniform on ``[0, 1)``, or, with
    ``time_distribution="logit_normal"``, ``sigmoid(logit_mean + logit_std·n)`` with ``n ~ N(0, 1)`` (SD3's
    weighting, which favours intermediate times). ``t`` reaches the model as a float tensor ``[N]`` in float32
    (float64 when ``x0`` is float64), at full resolution even for a half-precision model.

    Args:
        model: ``model(x_t, t)`` or, with ``labels``, ``model(x_t, t, labels)``, predicting the velocity ``ε − x0``.
        x0: clean training data ``[N, ...]`` (usually scaled to ``[-1, 1]``).
        labels: integer class labels ``[N]`` for a conditional model.
        p_uncond: label-dropout probability for classifier-free guidance.
        null_label: the "no class" label, required when ``p_uncond > 0``.
        time_distribution: ``"uniform"`` or ``"logit_normal"``.
        logit_mean: the mean of the logit-normal's normal (SD3: 0).
        logit_std: its standard deviation, ``> 0`` (SD3: 1).
        generator: the random stream, on the device of ``x0``.

    Returns:
        A scalar loss that carries the model's gradient.

    Raises:
        TypeError: a bad argument type.
        ValueError: a bad value, ``p_uncond > 0`` without labels and ``null_label``, or a model output of another
            shape than ``x0``.

    Example:
        >>> import torch
        >>> model = lambda x, t: torch.zeros_like(x)
        >>> loss = flow_matching_loss(model, torch.zeros(5000, 1), generator=torch.Generator().manual_seed(0))
        >>> abs(loss.item() - 1.0) < 0.1
        True
    """
    check_tensor(x0, "x0")
    if not x0.is_floating_point() or x0.ndim == 0:
        raise ValueError(f"Expected `x0` to be a floating point tensor [N, ...], got {x0.dtype} {tuple(x0.shape)}.")
    if time_distribution not in ("uniform", "logit_normal"):
        raise ValueError(f"Expected `time_distribution` to be 'uniform' or 'logit_normal', got {time_distribution!r}.")
    logit_mean = _check_real(logit_mean, "logit_mean")
    logit_std = _check_real(logit_std, "logit_std")
    if not logit_std > 0:
        raise ValueError(f"Expected `logit_std` > 0, got {logit_std}.")
    p_uncond = _check_probability(p_uncond, "p_uncond")
    labels = check_labels(labels, x0.shape[0], None)
    if p_uncond > 0 and (labels is None or null_label is None):
        raise ValueError(f"`p_uncond` = {p_uncond} needs `labels` and `null_label` (got null_label={null_label!r}).")
    n, time_dtype = x0.shape[0], torch.promote_types(x0.dtype, torch.float32)
    if time_distribution == "uniform":
        t = torch.rand(n, generator=generator, device=x0.device, dtype=time_dtype)
    else:
        normal = torch.randn(n, generator=generator, device=x0.device, dtype=time_dtype)
        t = torch.sigmoid(normal * logit_std + logit_mean)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = flow_interpolate(x0, t, noise)
    target = noise - x0
    if labels is None:
        out = model(x_t, t)
    else:
        if p_uncond > 0:
            labels = drop_labels(labels, p_uncond, cast(int, null_label), generator=generator)
        out = model(x_t, t, labels)
    _check_same_shape(out, x0, "model output", "x0")
    return torch.mean((out - target) ** 2)


class FlowMatchingSampler:
    """Sampling of a flow-matching (velocity) model by the probability-flow ODE, with optional classifier-free guidance.

    The model is called ``model(x_t, t)`` (unconditional) or ``model(x_t, t, labels)`` (conditional), with ``t`` a
    float tensor ``[N]`` of times in ``[0, 1]`` (1: noise, 0: data), and returns the velocity ``v ≈ ε − x`` of the
    path ``x_t = (1 − t)·x + t·ε``. Under guidance the conditional and unconditional passes are one call on ``2N``
    rows: ``x_t`` twice, the labels then ``N`` copies of ``null_label``, combined as ``(1 + w)·v(c) − w·v(∅)``.
    Sampling runs under ``torch.no_grad()`` with the model in eval mode when it is an ``nn.Module`` or a bound method
    of one (each submodule's train flag is restored afterwards) and draws only from the given generator(s).

    Starting from ``x_1 = ε``, each of the ``num_steps`` steps goes from ``t`` to the next time ``t_next`` of
    ``flow_time_grid(num_steps, shift)`` (``dt = t_next − t < 0``):

    - Euler: ``x ← x + dt·v(x, t)``; one model evaluation per step.
    - Heun: ``x̃ = x + dt·v(x, t)``, then ``x ← x + dt·(v(x, t) + v(x̃, t_next))/2``; two per step, the second at
      ``t_next = 0`` on the last step too (a flow model is trained on all of ``[0, 1]``), so second order throughout.

    With one generator per sample, a sample's generator yields its initial noise, then its label (only when
    ``num_classes`` is set and no labels are given: uniform over the classes); the ODE draws nothing more.

    Precision: the noise is drawn in float32 (the same bits for every model dtype), then cast to the model's dtype
    (``dtype``, else that of the model's parameters, see ``model_dtype``), in which ``x`` and each step's update are
    computed; the time grid and step sizes are float64 Python floats, and ``t`` reaches the model in float32
    (float64 for a float64 model). The result is float32, checked once for NaN/Inf (``NonFiniteSamplesError``).

    Args:
        model: the velocity network (or any callable) returning a tensor of the shape of ``x_t``.
        sample_shape: ``(C, H, W)``.
        num_steps: the number of ODE steps.
        solver: ``"euler"`` or ``"heun"``.
        shift: the time-grid shift ``s > 0`` of ``shift_time`` (SD3 uses 3.0 at 1024²; 1.0 is the uniform grid).
        guidance: the guidance strength ``w`` (``w >= -1``; 0 is plain conditional sampling).
        guidance_scale: diffusers' ``s = 1 + w``, instead of ``guidance`` (giving both is an error).
        null_label: the "no class" label of the unconditional pass; required when guidance is on.
        num_classes: when set, labels must lie in ``[0, num_classes)``, and missing labels are drawn uniformly.
        clamp_output: clamp the final samples to the output range ``(-1, 1)``, so the metrics can read them.
        dtype: the floating point dtype the model takes; ``None`` reads it from the model's parameters, which a
            model wrapped in a lambda hides (it then gets float32).

    Raises:
        TypeError: a bad argument type.
        ValueError: a bad value: unknown solver, ``shift <= 0``, both ``guidance`` and ``guidance_scale``, guidance
            without ``null_label``.

    Example:
        >>> import torch
        >>> model = lambda x, t: x / t.reshape(-1, 1, 1, 1)  # the optimal velocity for data x = 0 (x_t = t·ε)
        >>> sampler = FlowMatchingSampler(model, (1, 2, 2), num_steps=8)
        >>> images = sampler(3, generator=torch.Generator().manual_seed(0), device="cpu")
        >>> images.shape, images.abs().max().item() < 1e-6
        (torch.Size([3, 1, 2, 2]), True)
    """

    output_range: InputRange = (-1.0, 1.0)

    def __init__(
        self,
        model: Callable[..., Tensor],
        sample_shape: tuple[int, int, int],
        num_steps: int = 50,
        solver: FlowSolver = "euler",
        shift: float = 1.0,
        guidance: float = 0.0,
        guidance_scale: float | None = None,
        null_label: int | None = None,
        *,
        num_classes: int | None = None,
        clamp_output: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"Expected `model` to be callable, got {type(model).__name__}.")
        self.model = model
        self.sample_shape = check_shape(sample_shape, "sample_shape", length=3)
        if solver not in ("euler", "heun"):
            raise ValueError(f"Expected `solver` to be 'euler' or 'heun', got {solver!r}.")
        self.solver = solver
        self.times = flow_time_grid(num_steps, shift)
        self.num_steps = num_steps
        self.shift = float(shift)
        self.guidance = _resolve_guidance(guidance, guidance_scale)
        if null_label is not None and (isinstance(null_label, bool) or not isinstance(null_label, int)):
            raise TypeError(f"Expected `null_label` to be an int or None, got {null_label!r}.")
        if self.guidance != 0 and null_label is None:
            raise ValueError(f"Guidance (w = {self.guidance}) needs `null_label`, the label of the unconditional pass.")
        self.null_label = null_label
        self.num_classes = None if num_classes is None else check_positive_int(num_classes, "num_classes")
        self.clamp_output = check_bool(clamp_output, "clamp_output")
        self.dtype = check_dtype(dtype)

    def __repr__(self) -> str:
        return (
            f"FlowMatchingSampler(sample_shape={self.sample_shape}, num_steps={self.num_steps}, "
            f"solver={self.solver!r}, shift={self.shift}, guidance={self.guidance})"
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
        with eval_mode(self.model):
            for t, t_next in zip(self.times[:-1], self.times[1:], strict=True):
                dt = t_next - t
                v = self._velocity(x, t, labels)
                if self.solver == "euler":
                    x = x.add_(v.mul_(dt))
                else:
                    v_next = self._velocity(_combine(x, 1.0, v, dt), t_next, labels)
                    x = x.add_(v.add_(v_next).mul_(dt / 2))
        clamp_range = self.output_range if self.clamp_output else None
        return check_images(x, num_samples, "sampler", f"{self!r}, computed in {dtype}", clamp_range)

    def _velocity(self, x: Tensor, t: float, labels: Tensor | None) -> Tensor:
        # The (guided) velocity at time t as a new tensor in the dtype of ``x``, free to update in place.
        n = x.shape[0]
        # float32 at least: a bfloat16 t would round 0.996 to 1.0 and merge the model's last noise levels.
        times = torch.full((n,), t, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
        out = guided_model_output(self, x, times, labels)
        # An unguided output is copied even in x's dtype: the caller updates it in place, and a model may return
        # its input or a buffer (a guided one is already a new tensor).
        return out.to(x.dtype, copy=labels is None or self.guidance == 0)
