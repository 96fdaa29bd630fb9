"""Samplers feed the metrics: diffusion (DDPM, DDIM, continuous-time log-SNR; classifier-free guidance), flow
matching, autoregressive token models, GAN, VAE, or any callable.

Every sampler is called ``sampler(num_samples, *, generator, device, labels=None)`` and declares its
``output_range``; ``sample_range`` computes any slice of a seeded global stream exactly, on any rank.
"""

from lightning_genmetrics.samplers.autoregressive import AutoregressiveSampler, filter_logits, guidance_by_position
from lightning_genmetrics.samplers.base import (
    CallableSampler,
    NonFiniteSamplesError,
    Sampler,
    sample_generators,
    sample_range,
    sample_seed,
    sampler_output_range,
    splitmix64,
)
from lightning_genmetrics.samplers.continuous import (
    LogSNRDiffusionSampler,
    logsnr_diffusion_loss,
    logsnr_schedule,
    logsnr_to_alpha_sigma,
)
from lightning_genmetrics.samplers.diffusers_sampler import DiffusersSampler
from lightning_genmetrics.samplers.diffusion import (
    DiffusionSampler,
    NoiseSchedule,
    diffusion_loss,
    drop_labels,
    make_schedule,
    prediction_to_x0_epsilon,
    q_sample,
    sampling_timesteps,
    velocity_target,
)
from lightning_genmetrics.samplers.flow import (
    FlowMatchingSampler,
    flow_interpolate,
    flow_matching_loss,
    flow_time_grid,
    shift_time,
)
from lightning_genmetrics.samplers.latent import GANSampler, VAESampler, reconstruct_images

__all__ = [
    "AutoregressiveSampler",
    "CallableSampler",
    "DiffusersSampler",
    "DiffusionSampler",
    "FlowMatchingSampler",
    "GANSampler",
    "LogSNRDiffusionSampler",
    "NoiseSchedule",
    "NonFiniteSamplesError",
    "Sampler",
    "VAESampler",
    "diffusion_loss",
    "drop_labels",
    "filter_logits",
    "flow_interpolate",
    "flow_matching_loss",
    "flow_time_grid",
    "guidance_by_position",
    "logsnr_diffusion_loss",
    "logsnr_schedule",
    "logsnr_to_alpha_sigma",
    "make_schedule",
    "prediction_to_x0_epsilon",
    "q_sample",
    "reconstruct_images",
    "sample_generators",
    "sample_range",
    "sample_seed",
    "sampler_output_range",
    "sampling_timesteps",
    "shift_time",
    "splitmix64",
    "velocity_target",
]
