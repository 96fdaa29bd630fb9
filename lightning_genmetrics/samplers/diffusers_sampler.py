"""Sampling of diffusers' ``UNet2DModel`` with any of diffusers' schedulers, with classifier-free guidance.

diffusers is an optional dependency (``pip install lightning-genmetrics[diffusers]``): it is imported when a
``DiffusersSampler`` is built, never by ``import lightning_genmetrics``.

Guidance follows Ho & Salimans (2022) on the model's output, whatever it predicts (ε, v or the sample):
``out = (1 + w)·out(x, c) − w·out(x, ∅)``. diffusers' pipelines call ``s = 1 + w`` the ``guidance_scale``
(``out(∅) + s·(out(c) − out(∅))``); ``guidance = w`` and ``guidance_scale = s`` are both accepted.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_positive_int
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.samplers.base import (
    Generators,
    check_dtype,
    check_images,
    check_output_range,
    check_shape,
    eval_mode,
    start_guided_sampling,
)
from lightning_genmetrics.samplers.diffusion import _check_real, _resolve_guidance, guided_model_output

# Schedulers whose stochastic steps draw the noise of the whole batch from one Brownian tree seeded once (from
# torch's global generator unless a seed is configured): a sample's noise depends on its batch, so no per-sample
# generator can make them shard-exact.
_BATCH_NOISE_SCHEDULERS = ("DPMSolverSDEScheduler", "CosineDPMSolverMultistepScheduler")


def _import_diffusers() -> ModuleType:
    # At construction, not at import: diffusers is an optional extra.
    try:
        import diffusers
    except ImportError as error:
        raise ImportError(
            "DiffusersSampler needs diffusers, which is not installed: pip install lightning-genmetrics[diffusers]"
        ) from error
    return diffusers


class DiffusersSampler:
    """Sampling of a diffusers ``UNet2DModel`` (or any model with its call convention) with a diffusers scheduler.

    Each call runs the loop of diffusers' pipelines on a fresh deep copy of ``scheduler`` (multistep schedulers such
    as DPM-Solver keep the previous model outputs, Euler its step index): ``set_timesteps(num_inference_steps)``,
    the initial noise times ``init_noise_sigma``, then for each ``t`` of ``timesteps``: ``scale_model_input``, the
    model (with guidance, one call of 2N rows: ``x`` twice, the labels then ``N`` copies of ``null_label``), and
    ``step``. Schedulers without ``scale_model_input``/``init_noise_sigma`` (the flow-matching ones) take the sample
    unscaled, as their pipelines do. The model is called ``unet(x, t)``, or ``unet(x, t, class_labels=labels)`` for a
    class-conditional model (``UNet2DModel(num_class_embeds=num_classes + 1)`` makes room for a null label), with ``t``
    the scheduler's timestep repeated over the batch; it returns an object with a ``.sample`` tensor (as diffusers'
    models do) or a tensor, of the shape of ``x`` (a learned-variance output of ``2·C`` channels is not supported).
    Sampling runs under ``torch.no_grad()`` with the model in eval mode when it is an ``nn.Module`` (each submodule's
    train flag is restored afterwards).

    Random numbers: with one generator per sample (the convention of diffusers' pipelines, and what ``sample_range``
    passes), sample ``i``'s generator yields its initial noise, then its label (only when ``num_classes`` is set and no
    labels are given), then any noise a stochastic step draws. The list of generators goes to ``step(...,
    generator=...)``, where diffusers' ``randn_tensor`` draws row ``i`` from generator ``i``, so every draw of sample
    ``i`` comes from its own generator and the result does not depend on the batch (up to the model's own batched
    float rounding: on the CPU a ``UNet2DModel``'s convolutions round differently for another batch size, by about
    1e-6 in float32):

    - ``DDPMScheduler``: one draw per step except the last.
    - ``DDIMScheduler``: none with ``eta = 0`` (its default), one per step (the last included) with ``eta > 0``.
    - ``DPMSolverMultistepScheduler``: none, except one per step for ``algorithm_type="sde-dpmsolver"`` or
      ``"sde-dpmsolver++"``.
    - ``EulerDiscreteScheduler``: none (``s_churn = 0``, as its pipelines call it).
    - ``EulerAncestralDiscreteScheduler``: one per step, the last included.
    - ``FlowMatchEulerDiscreteScheduler``: none, except one per step with ``stochastic_sampling=True``.
    - Other schedulers whose ``step`` takes a ``generator`` get the list the same way; schedulers whose ``step`` takes
      none are deterministic. ``DPMSolverSDEScheduler`` and ``CosineDPMSolverMultistepScheduler`` are refused: they draw
      the whole batch's noise from one Brownian tree.

    Output: diffusers' pipelines return ``(x / 2 + 0.5).clamp(0, 1)`` of the final sample, an image in ``[-1, 1]``
    mapped to ``[0, 1]``. With ``output_range=(0, 1)`` the sampler returns exactly that; with ``(-1, 1)`` (the default,
    like the other samplers) it returns ``x.clamp(-1, 1)``; either way the metrics read the same images.

    Precision: the scheduler's state ``x`` is float32 and every random draw is float32 (the same bits whatever the
    model's dtype); the model gets ``x`` cast to its dtype (``dtype``, else that of its parameters) and its output is
    combined under guidance in its own dtype, then cast to float32 for ``step``. For a float32 model without guidance
    this is exactly the pipelines' arithmetic (guided pipelines write ``out(∅) + s·(out(c) − out(∅))``, equal up to
    float rounding). The result is float32, checked once for NaN/Inf (``NonFiniteSamplesError``).

    Args:
        unet: a ``diffusers.UNet2DModel``, or any callable ``unet(x, t[, class_labels=labels])`` as above.
        scheduler: a diffusers scheduler (``SchedulerMixin``); it is copied at every call, never modified.
        num_inference_steps: the ``num_inference_steps`` of ``scheduler.set_timesteps``.
        sample_shape: ``(C, H, W)``; ``None`` reads ``in_channels`` and ``sample_size`` from ``unet.config``.
        guidance: the guidance strength ``w`` (``w >= -1``; 0 is plain conditional sampling).
        guidance_scale: diffusers' ``s = 1 + w``, instead of ``guidance`` (giving both is an error).
        null_label: the "no class" label of the unconditional pass; required when guidance is on.
        num_classes: when set, labels must lie in ``[0, num_classes)``, and missing labels are drawn uniformly.
        eta: DDIM's ``eta`` in ``[0, 1]``, passed to ``step``; ``None`` keeps the scheduler's default (0 for DDIM).
        set_timesteps_kwargs: more keyword arguments of ``set_timesteps`` (e.g. ``{"mu": ...}`` for a flow-matching
            scheduler with ``use_dynamic_shifting``).
        output_range: ``(-1, 1)`` or ``(0, 1)`` (see Output above).
        dtype: the floating point dtype the model takes; ``None`` reads it from the model's parameters (a plain
            callable gets float32).

    Raises:
        ImportError: diffusers is not installed.
        TypeError: a bad argument type, or ``scheduler`` not a diffusers scheduler.
        ValueError: a bad value: both ``guidance`` and ``guidance_scale``, guidance without ``null_label``, a
            ``null_label`` or ``num_classes`` beyond the unet's class embeddings (or with an unconditional unet),
            ``eta`` for a scheduler whose ``step`` takes none, a scheduler that draws batch-wide noise, or
            ``num_inference_steps`` the scheduler refuses.

    Example:
        >>> import torch
        >>> from diffusers import DDIMScheduler, UNet2DModel
        >>> _ = torch.manual_seed(0)
        >>> blocks = {"down_block_types": ["DownBlock2D"] * 2, "up_block_types": ["UpBlock2D"] * 2}
        >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, layers_per_block=1,
        ...                    **blocks)
        >>> sampler = DiffusersSampler(unet, DDIMScheduler(), num_inference_steps=2)
        >>> images = sampler(2, generator=torch.Generator().manual_seed(0), device="cpu")
        >>> images.shape, sampler.output_range
        (torch.Size([2, 3, 8, 8]), (-1.0, 1.0))
    """

    def __init__(
        self,
        unet: Callable[..., Any],
        scheduler: Any,
        *,
        num_inference_steps: int,
        sample_shape: tuple[int, int, int] | None = None,
        guidance: float = 0.0,
        guidance_scale: float | None = None,
        null_label: int | None = None,
        num_classes: int | None = None,
        eta: float | None = None,
        set_timesteps_kwargs: Mapping[str, Any] | None = None,
        output_range: InputRange = (-1.0, 1.0),
        dtype: torch.dtype | None = None,
    ) -> None:
        diffusers = _import_diffusers()
        if not callable(unet):
            raise TypeError(f"Expected `unet` to be callable, got {type(unet).__name__}.")
        self.unet = unet
        if not isinstance(scheduler, diffusers.SchedulerMixin):
            raise TypeError(
                f"Expected `scheduler` to be a diffusers scheduler (SchedulerMixin), got {type(scheduler).__name__}."
            )
        # By name: both need torchsde, without which diffusers exports placeholders in their stead.
        if any(cls.__name__ in _BATCH_NOISE_SCHEDULERS for cls in type(scheduler).__mro__):
            raise ValueError(
                f"Expected a scheduler that draws noise per sample, got {type(scheduler).__name__}, which draws the "
                "whole batch's noise from one Brownian tree (a sample would depend on its batch); use "
                "DPMSolverMultistepScheduler(algorithm_type='sde-dpmsolver++') for a stochastic DPM-Solver."
            )
        self.scheduler = scheduler
        self.num_inference_steps = check_positive_int(num_inference_steps, "num_inference_steps")
        if set_timesteps_kwargs is not None and not isinstance(set_timesteps_kwargs, Mapping):
            raise TypeError(
                f"Expected `set_timesteps_kwargs` to be a mapping or None, got {type(set_timesteps_kwargs).__name__}."
            )
        self.set_timesteps_kwargs = dict(set_timesteps_kwargs or {})
        # Set once here, so a step count or keyword the scheduler refuses is an error at setup, not mid-training.
        copy.deepcopy(scheduler).set_timesteps(num_inference_steps, **self.set_timesteps_kwargs)
        step_parameters = inspect.signature(scheduler.step).parameters
        self._step_takes_generator = "generator" in step_parameters
        if eta is not None:
            eta = _check_real(eta, "eta")
            if not 0 <= eta <= 1:
                raise ValueError(f"Expected `eta` in [0, 1], got {eta}.")
            if "eta" not in step_parameters:
                raise ValueError(
                    f"`eta` applies to DDIM-type schedulers, got eta={eta} with {type(scheduler).__name__}."
                )
        self.eta = eta
        config = getattr(unet, "config", None)
        self.sample_shape = (
            _config_sample_shape(config)
            if sample_shape is None
            else check_shape(sample_shape, "sample_shape", length=3)
        )
        self.guidance = _resolve_guidance(guidance, guidance_scale)
        if null_label is not None and (isinstance(null_label, bool) or not isinstance(null_label, int)):
            raise TypeError(f"Expected `null_label` to be an int or None, got {null_label!r}.")
        if self.guidance != 0 and null_label is None:
            raise ValueError(f"Guidance (w = {self.guidance}) needs `null_label`, the label of the unconditional pass.")
        self.null_label = null_label
        self.num_classes = None if num_classes is None else check_positive_int(num_classes, "num_classes")
        _check_class_embeds(config, null_label, self.num_classes)
        self.output_range = check_output_range(output_range)
        self.dtype = check_dtype(dtype)

    @property
    def model(self) -> Callable[..., Any]:
        """The unet, under the name the shared sampling helpers read (for its dtype)."""
        return self.unet

    def __repr__(self) -> str:
        return (
            f"DiffusersSampler(unet={type(self.unet).__name__}, scheduler={type(self.scheduler).__name__}, "
            f"num_inference_steps={self.num_inference_steps}, sample_shape={self.sample_shape}, "
            f"guidance={self.guidance}, eta={self.eta}, output_range={self.output_range})"
        )

    @torch.no_grad()
    def __call__(
        self, num_samples: int, *, generator: Generators, device: torch.device | str, labels: Tensor | None = None
    ) -> Tensor:
        """Draw ``num_samples`` float32 samples ``[N, C, H, W]`` in ``output_range`` (see the class docstring).

        Raises:
            TypeError: bad generator or labels type, or the model returning neither a tensor nor a ``.sample``.
            ValueError: wrong label count or range, guidance without labels, or a model output of the wrong shape.
            NonFiniteSamplesError: the final samples hold NaN/Inf.
        """
        generator, labels, dtype, x = start_guided_sampling(self, num_samples, generator, device, labels)
        if num_samples == 0:
            return x
        scheduler = copy.deepcopy(self.scheduler)
        scheduler.set_timesteps(self.num_inference_steps, device=device, **self.set_timesteps_kwargs)
        x = x * getattr(scheduler, "init_noise_sigma", 1.0)
        step_kwargs: dict[str, Any] = {} if self.eta is None else {"eta": self.eta}
        if self._step_takes_generator:
            # A list, as randn_tensor requires to draw row i from generator i (a tuple would be used as one generator).
            step_kwargs["generator"] = generator if isinstance(generator, torch.Generator) else list(generator)
        # What guided_model_output reads: the unet called as model(x, t[, labels]), returning a tensor.
        guided = SimpleNamespace(
            model=functools.partial(_unet_output, self.unet),
            guidance=self.guidance,
            null_label=self.null_label,
            sample_shape=self.sample_shape,
        )
        scale_model_input = getattr(scheduler, "scale_model_input", None)
        with eval_mode(self.unet):
            for t in scheduler.timesteps:
                model_input = x if scale_model_input is None else scale_model_input(x, t)
                times = t.to(device).expand(num_samples)
                out = guided_model_output(guided, model_input.to(dtype), times, labels)
                x = scheduler.step(out.float(), t, x, **step_kwargs).prev_sample
        if self.output_range == (0.0, 1.0):
            x = x / 2 + 0.5
        return check_images(x, num_samples, "sampler", f"{self!r}, computed in {dtype}", self.output_range)


def _unet_output(unet: Callable[..., Any], x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
    out = unet(x, t) if labels is None else unet(x, t, class_labels=labels)
    # diffusers' models return an output object whose `.sample` is the prediction.
    out = getattr(out, "sample", out)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"Expected `unet` to return a torch.Tensor or an object with a `.sample` tensor, got {type(out).__name__}."
        )
    return out


def _config_sample_shape(config: Any) -> tuple[int, ...]:
    channels, size = getattr(config, "in_channels", None), getattr(config, "sample_size", None)
    if channels is None or size is None:
        raise ValueError(
            "Expected `sample_shape` (C, H, W) for a unet without `config.in_channels` and `config.sample_size`."
        )
    return check_shape((channels, *((size, size) if isinstance(size, int) else size)), "sample_shape", length=3)


def _check_class_embeds(config: Any, null_label: int | None, num_classes: int | None) -> None:
    # What a UNet2DModel's config says of its class conditioning, checked at setup rather than failing mid-sampling.
    if not isinstance(config, Mapping) or "num_class_embeds" not in config:
        return
    rows = config["num_class_embeds"]
    if rows is None and config.get("class_embed_type") is None:
        if null_label is not None or num_classes is not None:
            raise ValueError(
                "Expected a class-conditional unet (num_class_embeds or class_embed_type set) for `null_label` or "
                f"`num_classes`, got an unconditional one (null_label={null_label}, num_classes={num_classes})."
            )
        return
    if not isinstance(rows, int):
        return
    if null_label is not None and not 0 <= null_label < rows:
        raise ValueError(f"Expected `null_label` in [0, {rows}) (the unet's num_class_embeds), got {null_label}.")
    if num_classes is not None and num_classes > rows:
        raise ValueError(f"Expected `num_classes` <= {rows} (the unet's num_class_embeds), got {num_classes}.")
