"""Samplers that decode a Gaussian latent: GAN generators and VAE decoders, and VAE reconstructions.

Both draw ``z ~ N(0, I)`` of a declared latent shape, one draw per sample when given one generator
per sample (then, for a class-conditional network without given labels, one uniform label per sample),
and call the network once per batch under ``torch.no_grad()``, in eval mode when it is an ``nn.Module`` or a
bound method of one (such as ``vae.decode``); each submodule's train flag is restored afterwards.

``z`` is drawn in float32 (the same bits for every network dtype) and cast to the network's dtype (``dtype``,
else that of its parameters, see ``model_dtype``); the images are returned as float32, checked for NaN/Inf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_positive_int, check_tensor
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.samplers.base import (
    Generators,
    check_dtype,
    check_finite_samples,
    check_generators,
    check_image_batch,
    check_images,
    check_labels,
    check_output_range,
    check_shape,
    eval_mode,
    model_dtype,
    randint_per_sample,
    randn_per_sample,
)


class _LatentSampler:
    """``network(z)`` or ``network(z, labels)`` with ``z ~ N(0, I)`` of ``latent_shape`` per sample."""

    _network_name = "network"

    def __init__(
        self,
        network: Callable[..., Tensor],
        latent_shape: Sequence[int],
        num_classes: int | None,
        output_range: InputRange,
        clamp_output: bool,
        dtype: torch.dtype | None,
    ) -> None:
        if not callable(network):
            raise TypeError(f"Expected `{self._network_name}` to be callable, got {type(network).__name__}.")
        self.network = network
        self.latent_shape = check_shape(latent_shape, "latent_shape")
        self.num_classes = None if num_classes is None else check_positive_int(num_classes, "num_classes")
        self.output_range = check_output_range(output_range)
        self.clamp_output = check_bool(clamp_output, "clamp_output")
        self.dtype = check_dtype(dtype)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(latent_shape={self.latent_shape}, num_classes={self.num_classes}, "
            f"output_range={self.output_range})"
        )

    @torch.no_grad()
    def __call__(
        self, num_samples: int, *, generator: Generators, device: torch.device | str, labels: Tensor | None = None
    ) -> Tensor:
        """Draw ``num_samples`` float32 images ``[N, C, H, W]`` in ``output_range``.

        Raises:
            TypeError: bad generator or labels type, or the network returning a non-tensor.
            ValueError: labels for an unconditional network, wrong label count or range, or a network output
                that is not ``[N, C, H, W]``.
            NonFiniteSamplesError: the network's output holds NaN/Inf.
        """
        check_positive_int(num_samples, "num_samples", minimum=0)
        generator = check_generators(generator, num_samples)
        if labels is not None and self.num_classes is None:
            raise ValueError(
                f"Got `labels` for an unconditional {self._network_name} (num_classes=None); "
                "pass num_classes to the sampler for a class-conditional one."
            )
        labels = check_labels(labels, num_samples, self.num_classes)
        z = randn_per_sample(self.latent_shape, generator, num_samples, device)
        if self.num_classes is not None:
            if labels is None:
                labels = randint_per_sample(self.num_classes, generator, num_samples, device)
            labels = labels.to(device)
        # Read at every call: Lightning casts the module (e.g. to bfloat16) after the sampler may have been built.
        dtype = model_dtype(self.network) if self.dtype is None else self.dtype
        z = z.to(dtype)
        with eval_mode(self.network):
            out = self.network(z) if labels is None else self.network(z, labels)
        clamp_range = self.output_range if self.clamp_output else None
        return check_images(out, num_samples, self._network_name, f"{self!r}, computed in {dtype}", clamp_range)


class GANSampler(_LatentSampler):
    """Samples of a GAN generator: ``generator(z)``, or ``generator(z, labels)`` when ``num_classes`` is set.

    ``z ~ N(0, I)`` has shape ``[N, *latent_shape]``. A class-conditional generator without given labels gets
    labels drawn uniformly from ``[0, num_classes)`` (after ``z``, from the same generator(s)).

    Args:
        generator: the generator network; it must return ``[N, C, H, W]``.
        latent_shape: the shape of one latent, e.g. ``(128,)`` or ``(100, 1, 1)``.
        num_classes: the number of classes of a class-conditional generator, else ``None``.
        output_range: the declared value range, ``(-1, 1)`` (tanh output, the default) or ``(0, 1)``.
        clamp_output: clamp the output into ``output_range`` (as saving it as an image would).
        dtype: the floating point dtype the generator takes; ``None`` reads it from its parameters (float32 for a
            lambda or plain function).

    Raises:
        TypeError: ``generator`` not callable, or a bad argument type.
        ValueError: a bad ``latent_shape``, ``num_classes`` or ``output_range``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.Tanh(), torch.nn.Unflatten(1, (3, 2, 2)))
        >>> sampler = GANSampler(net, latent_shape=(8,))
        >>> sampler(5, generator=torch.Generator().manual_seed(0), device="cpu").shape
        torch.Size([5, 3, 2, 2])
    """

    _network_name = "generator"

    def __init__(
        self,
        generator: Callable[..., Tensor],
        latent_shape: Sequence[int],
        num_classes: int | None = None,
        *,
        output_range: InputRange = (-1.0, 1.0),
        clamp_output: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(generator, latent_shape, num_classes, output_range, clamp_output, dtype)


class VAESampler(_LatentSampler):
    """Samples of a VAE: prior ``z ~ N(0, I)`` through the decoder.

    Args:
        decoder: the decoder network; ``decoder(z)`` (or ``decoder(z, labels)`` with ``num_classes``) must return
            ``[N, C, H, W]``.
        latent_shape: the shape of one latent, e.g. ``(32,)`` or ``(4, 8, 8)``.
        num_classes: the number of classes of a conditional decoder, else ``None``.
        output_range: the declared value range, ``(0, 1)`` (sigmoid output, the default) or ``(-1, 1)``.
        clamp_output: clamp the output into ``output_range``.
        dtype: the floating point dtype the decoder takes; ``None`` reads it from its parameters (float32 for a
            lambda or plain function).

    Raises:
        TypeError: ``decoder`` not callable, or a bad argument type.
        ValueError: a bad ``latent_shape``, ``num_classes`` or ``output_range``.

    Example:
        >>> import torch
        >>> decoder = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 4, 4)))
        >>> sampler = VAESampler(decoder, latent_shape=(4,))
        >>> images = sampler(2, generator=torch.Generator().manual_seed(0), device="cpu")
        >>> images.shape, bool(images.min() >= 0)
        (torch.Size([2, 1, 4, 4]), True)
    """

    _network_name = "decoder"

    def __init__(
        self,
        decoder: Callable[..., Tensor],
        latent_shape: Sequence[int],
        num_classes: int | None = None,
        *,
        output_range: InputRange = (0.0, 1.0),
        clamp_output: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(decoder, latent_shape, num_classes, output_range, clamp_output, dtype)


def reconstruct_images(
    encoder: Callable[[Tensor], Any],
    decoder: Callable[[Tensor], Tensor],
    images: Tensor,
    *,
    output_range: InputRange = (0.0, 1.0),
    batch_size: int | None = None,
    clamp_output: bool = True,
) -> Tensor:
    """VAE reconstructions ``decoder(mean of encoder(images))``, for SSIM/PSNR/LPIPS against the inputs.

    The latent is the posterior mean, so reconstructions are deterministic: ``encoder`` may return the latent
    itself, a ``(mean, ...)`` tuple or list (e.g. ``(mean, logvar)``), or an object with a ``mean`` attribute
    (a ``torch.distributions.Distribution``). An encoder or decoder that is a module (or a bound method of one)
    gets its input in its own dtype (see ``model_dtype``: bfloat16 under ``precision="bf16-true"``); the
    reconstructions are returned in the dtype of ``images`` and checked for NaN/Inf once, after the last batch.

    Args:
        encoder: the encoder network.
        decoder: the decoder network; it must return the shape of ``images``.
        images: ``[N, C, H, W]`` floats, as the encoder takes them.
        output_range: the declared value range of the reconstructions, ``(0, 1)`` or ``(-1, 1)``.
        batch_size: the most images per call, or ``None`` for one call.
        clamp_output: clamp the reconstructions into ``output_range``.

    Returns:
        The reconstructions, of the shape of ``images``.

    Raises:
        TypeError: a bad argument type, or an encoder/decoder output of an unsupported type.
        ValueError: ``images`` not ``[N, C, H, W]``, or a decoder output of another shape.
        NonFiniteSamplesError: reconstructions holding NaN/Inf (``count`` of the ``N`` images).

    Example:
        >>> import torch
        >>> images = torch.rand(3, 1, 2, 2)
        >>> encoder = lambda x: (x.flatten(1), torch.zeros(len(x), 4))
        >>> decoder = lambda z: z.reshape(-1, 1, 2, 2)
        >>> torch.equal(reconstruct_images(encoder, decoder, images), images)
        True
    """
    for fn, name in ((encoder, "encoder"), (decoder, "decoder")):
        if not callable(fn):
            raise TypeError(f"Expected `{name}` to be callable, got {type(fn).__name__}.")
    check_tensor(images, "images")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"Expected `images` to be floating point [N, C, H, W], got dtype {images.dtype}, "
            f"shape {tuple(images.shape)}."
        )
    clamp_range = check_output_range(output_range) if check_bool(clamp_output, "clamp_output") else None
    n = images.shape[0]
    step = n if batch_size is None else check_positive_int(batch_size, "batch_size")
    # Inputs go to a module in its own dtype; a plain function gets them as they are.
    encoder_dtype, decoder_dtype = model_dtype(encoder, None), model_dtype(decoder, None)
    chunks = []
    with torch.no_grad(), eval_mode(encoder, decoder):
        for begin in range(0, n, max(step, 1)):
            batch = images[begin : begin + step]
            latent = _posterior_mean(encoder(batch if encoder_dtype is None else batch.to(encoder_dtype)))
            out = decoder(latent if decoder_dtype is None else latent.to(decoder_dtype))
            out = check_image_batch(out, batch.shape[0], "decoder")
            if out.shape != batch.shape:
                raise ValueError(
                    f"Expected `decoder` to return the shape of `images` {tuple(batch.shape)}, got {tuple(out.shape)}."
                )
            chunks.append(out.to(images.dtype))
    if not chunks:
        return images.clone()
    reconstructions = torch.cat(chunks)
    check_finite_samples(reconstructions, "the decoder of reconstruct_images")
    return reconstructions if clamp_range is None else reconstructions.clamp(*clamp_range)


def _posterior_mean(encoded: Any) -> Tensor:
    if isinstance(encoded, (tuple, list)) and encoded:
        encoded = encoded[0]
    elif not isinstance(encoded, Tensor) and isinstance(getattr(encoded, "mean", None), Tensor):
        encoded = encoded.mean
    if not isinstance(encoded, Tensor):
        raise TypeError(
            "Expected `encoder` to return a latent tensor, a (mean, ...) tuple or an object with a `mean` tensor, "
            f"got {type(encoded).__name__}."
        )
    return encoded
