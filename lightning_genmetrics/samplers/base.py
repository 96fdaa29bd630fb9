"""The sampler protocol, per-sample seeding, and the shard-exact ``sample_range``.

A sampler is any callable ``sampler(num_samples, *, generator, device, labels=None)`` returning
``[N, C, H, W]`` images, with an ``output_range`` attribute of ``(0, 1)`` or ``(-1, 1)`` so the
metrics know how to read them. ``generator`` is either one ``torch.Generator`` for the whole batch
or a sequence of ``num_samples`` generators, one per sample (the convention of diffusers'
pipelines). With one generator per sample, every random number a sample uses (its initial noise or
latent, its label when drawn, the noise of every stochastic step) comes from its own generator, in
a fixed order, so the sample does not depend on which other samples share its batch.

``sample_range`` seeds sample ``i`` of the global stream with ``sample_seed(seed, i)`` and so returns
the same images whichever process computes them, in whatever batches: ``sample_range(s, 0, 64, ...)``
equals ``sample_range(s, 0, 40, ...)`` followed by ``sample_range(s, 40, 64, ...)`` (exactly for the
noise, and up to the float rounding of the model's batched arithmetic for the images).

Cost: one small random draw per sample per noise tensor, instead of one draw per batch, and one
host-to-device copy of the batch's noise when the generators are on the CPU. DDIM with ``eta=0``, GANs
and VAEs draw once per sample; DDPM and DDIM with ``eta > 0`` draw once per sample per step, which for
a large model is still small next to the model's forward pass.

Precision: noise and latents are always drawn in float32 (so sample ``i``'s noise is the same bits whatever
the model's dtype), then cast to the model's dtype (``model_dtype``: bfloat16 or float16 under Lightning's
``"bf16-true"``/``"16-true"``); the built-in samplers return float32 images. Their final images are checked
once for NaN/Inf, which raises ``NonFiniteSamplesError`` naming how many samples are affected.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_bool, check_positive_int, check_tensor
from lightning_genmetrics.features.preprocess import InputRange, check_input_range

Generators = torch.Generator | Sequence[torch.Generator]

_MASK64 = 2**64 - 1
_MASK32 = 2**32 - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15
# Global indices are limited so that the per-sample seeds' low 32 bits (all that torch's CPU
# Mersenne Twister uses) are distinct for every index of one stream.
MAX_SAMPLES = 2**32


class NonFiniteSamplesError(ValueError):
    """A sampler produced samples holding NaN or Inf: ``count`` of its ``num_samples`` samples (rows).

    A ``ValueError``, so code that catches those still catches it; the callback catches this class to log NaN
    for the evaluation instead of ending the training run.

    Args:
        count: the number of samples (rows of dim 0) holding at least one non-finite value, ``>= 1``.
        num_samples: the number of samples of the batch that was checked.
        sampler: what produced them, as shown in the message (e.g. the sampler's ``repr``).
        first: the index of the first non-finite sample in the batch, or ``None``.

    Example:
        >>> error = NonFiniteSamplesError(2, 16, "GANSampler(...)", first=3)
        >>> error.count, error.num_samples, isinstance(error, ValueError)
        (2, 16, True)
        >>> str(error)
        'Expected finite samples, got NaN/Inf in 2 of 16 samples (the first is sample 3) from GANSampler(...).'
    """

    def __init__(self, count: int, num_samples: int, sampler: str, first: int | None = None) -> None:
        where = "" if first is None else f" (the first is sample {first})"
        super().__init__(
            f"Expected finite samples, got NaN/Inf in {count} of {num_samples} samples{where} from {sampler}."
        )
        self.count = count
        self.num_samples = num_samples
        self.sampler = sampler
        self.first = first

    def __reduce__(self) -> tuple[type, tuple[int, int, str, int | None]]:
        # Rebuilt from the attributes: the default would call __init__ with the message alone.
        return type(self), (self.count, self.num_samples, self.sampler, self.first)


@runtime_checkable
class Sampler(Protocol):
    """What the callback and ``sample_range`` call: images with a declared value range."""

    output_range: InputRange

    def __call__(
        self, num_samples: int, *, generator: Generators, device: torch.device | str, labels: Tensor | None = None
    ) -> Tensor: ...


def _mix64(z: int) -> int:
    # SplitMix64's output function (Steele, Lea & Flood 2014): a bijection of 64-bit integers.
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _mix32(z: int) -> int:
    # "lowbias32" (C. Wellons): xor-shifts and odd multiplications, so a bijection of 32-bit integers.
    z = ((z ^ (z >> 16)) * 0x7FEB352D) & _MASK32
    z = ((z ^ (z >> 15)) * 0x846CA68B) & _MASK32
    return z ^ (z >> 16)


def splitmix64(seed: int) -> int:
    """The first output of the SplitMix64 generator seeded with ``seed`` (taken modulo 2**64).

    Example:
        >>> splitmix64(1234567)
        6457827717110365317
    """
    return _mix64((seed + _GOLDEN_GAMMA) & _MASK64)


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of the stream ``seed``: a fixed rule, stable across versions.

    With ``base = splitmix64(seed)``, the result is ``(base >> 32) << 32 | mix32((base + index) mod 2**32)``,
    where ``mix32`` is the bijective "lowbias32" integer hash. torch's CPU generator seeds its Mersenne
    Twister with the low 32 bits only; those bits are a bijection of ``index``, so the ``2**32``
    samples of one stream never share a noise stream.

    Args:
        seed: the base seed, an int in ``[0, 2**64)``.
        index: the sample's global index, in ``[0, 2**32)``.

    Returns:
        An int in ``[0, 2**64)`` for ``torch.Generator.manual_seed``.

    Raises:
        TypeError: ``seed`` or ``index`` not an int.
        ValueError: either out of range.

    Example:
        >>> sample_seed(0, 0), sample_seed(0, 1)
        (16294208416944391909, 16294208418136551787)
    """
    _check_seed(seed)
    check_positive_int(index, "index", minimum=0)
    if index >= MAX_SAMPLES:
        raise ValueError(f"Expected `index` to be below 2**32, got {index}.")
    base = splitmix64(seed)
    return (base >> 32) << 32 | _mix32((base + index) & _MASK32)


def sample_generators(
    seed: int, start: int, stop: int, *, generator_device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One generator per global sample index in ``[start, stop)``, seeded by ``sample_seed``.

    Example:
        >>> import torch
        >>> a = sample_generators(7, 0, 3)
        >>> b = sample_generators(7, 2, 3)
        >>> torch.equal(torch.randn(4, generator=a[2]), torch.randn(4, generator=b[0]))
        True
    """
    _check_seed(seed)
    _check_range(start, stop)
    return [torch.Generator(device=generator_device).manual_seed(sample_seed(seed, i)) for i in range(start, stop)]


def sample_range(
    sampler: Callable[..., Tensor],
    start: int,
    stop: int,
    *,
    seed: int,
    batch_size: int,
    device: torch.device | str,
    labels: Tensor | None = None,
    generator_device: torch.device | str = "cpu",
) -> Tensor:
    """The samples with global indices ``[start, stop)`` of the stream ``seed``, computed in batches.

    Sample ``i`` is drawn with its own generator seeded with ``sample_seed(seed, i)``, so the result does
    not depend on ``batch_size`` or on which process computes it: rank ``r`` of ``W`` can take its shard
    of ``range(total)`` and the union of the shards equals the one-process samples. The generators live
    on ``generator_device``; keep it the same on all ranks (the CPU default also makes the noise the same
    on CPU and GPU runs).

    Args:
        sampler: a sampler that accepts a sequence of per-sample generators (all samplers here do; wrap
            anything else in ``CallableSampler``).
        start: the first global index.
        stop: one past the last global index; ``start <= stop <= 2**32``.
        seed: the stream's base seed, in ``[0, 2**64)``.
        batch_size: the most samples per call to ``sampler``.
        device: where the samples are computed and returned.
        labels: the conditioning of the samples ``[start, stop)``: class labels ``[stop - start]`` or any
            per-sample tensor ``[stop - start, ...]`` (e.g. segmentation masks), or ``None``.
        generator_device: where the per-sample generators draw.

    Returns:
        ``[stop - start, C, H, W]`` samples on ``device``.

    Raises:
        TypeError: a bad argument type, or ``sampler`` returning something other than a tensor.
        ValueError: a bad range, seed, batch size or label count, or ``sampler`` returning the wrong number
            of samples.
        NonFiniteSamplesError: raised by ``sampler`` for a batch holding NaN/Inf, passed on unchanged (its
            ``count`` and ``num_samples`` are those of that batch).

    Example:
        >>> import torch
        >>> def fn(num_samples, *, generator, device, labels=None):
        ...     return torch.rand(num_samples, 1, 2, 2, generator=generator)
        >>> sampler = CallableSampler(fn, output_range=(0, 1))
        >>> whole = sample_range(sampler, 0, 6, seed=3, batch_size=4, device="cpu")
        >>> parts = [sample_range(sampler, 0, 4, seed=3, batch_size=3, device="cpu"),
        ...          sample_range(sampler, 4, 6, seed=3, batch_size=3, device="cpu")]
        >>> torch.equal(whole, torch.cat(parts))
        True
    """
    if not callable(sampler):
        raise TypeError(f"Expected `sampler` to be callable, got {type(sampler).__name__}.")
    _check_seed(seed)
    _check_range(start, stop)
    check_positive_int(batch_size, "batch_size")
    if labels is not None:
        check_tensor(labels, "labels")
        if labels.ndim == 0 or labels.shape[0] != stop - start:
            raise ValueError(
                f"Expected `labels` to have shape [stop - start, ...] = [{stop - start}, ...], got shape "
                f"{tuple(labels.shape)}."
            )
    chunks = []
    for begin in range(start, stop, batch_size) if stop > start else [start]:
        end = min(begin + batch_size, stop)
        generators = sample_generators(seed, begin, end, generator_device=generator_device)
        chunk_labels = None if labels is None else labels[begin - start : end - start]
        out = sampler(end - begin, generator=generators, device=device, labels=chunk_labels)
        check_tensor(out, "sampler output")
        if out.ndim == 0 or out.shape[0] != end - begin:
            raise ValueError(
                f"Expected the sampler to return {end - begin} samples for indices [{begin}, {end}), "
                f"got shape {tuple(out.shape)}."
            )
        chunks.append(out)
    return torch.cat(chunks)


def sampler_output_range(sampler: Any) -> InputRange:
    """The declared ``output_range`` of ``sampler``, checked to be ``(0, 1)`` or ``(-1, 1)``.

    Raises:
        TypeError: ``sampler`` declares no ``output_range``.
        ValueError: the declared range is not one the metrics can read.

    Example:
        >>> sampler_output_range(CallableSampler(lambda n, **kwargs: None, output_range=(-1, 1)))
        (-1.0, 1.0)
    """
    value = getattr(sampler, "output_range", None)
    if value is None:
        raise TypeError(
            f"Expected the sampler ({type(sampler).__name__}) to declare `output_range` (0, 1) or (-1, 1); "
            "wrap a plain function in CallableSampler(fn, output_range=...)."
        )
    return check_output_range(value)


class CallableSampler:
    """Any callable ``fn(num_samples, *, generator, device, labels)`` with a declared output range.

    Use it for autoregressive models, flows, or a diffusers pipeline. When ``fn`` accepts a sequence of
    per-sample generators (diffusers' pipelines do), pass ``accepts_generator_list=True`` and it gets
    the whole batch at once. Otherwise a per-sample sequence is handled by calling ``fn`` once per sample
    with that sample's generator: exact for ``sample_range``, but unbatched. ``fn`` may compute in any
    precision; its output is returned as float32 and checked for NaN/Inf.

    Args:
        fn: the sampling function; it must return ``[N, C, H, W]`` values in ``output_range``.
        output_range: ``(0, 1)`` or ``(-1, 1)``.
        accepts_generator_list: whether ``fn`` takes a list of ``num_samples`` generators.
        clamp_output: clamp the output into ``output_range`` (as saving it as an image would).

    Raises:
        TypeError: ``fn`` not callable, or a flag not a bool.
        ValueError: ``output_range`` not one the metrics can read.
        NonFiniteSamplesError: (when called) ``fn``'s output holds NaN/Inf.

    Example:
        >>> import torch
        >>> def fn(num_samples, *, generator, device, labels=None):
        ...     return torch.rand(num_samples, 3, 4, 4, generator=generator).to(device)
        >>> sampler = CallableSampler(fn, output_range=(0, 1))
        >>> sampler(2, generator=torch.Generator().manual_seed(0), device="cpu").shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(
        self,
        fn: Callable[..., Tensor],
        output_range: InputRange,
        *,
        accepts_generator_list: bool = False,
        clamp_output: bool = True,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"Expected `fn` to be callable, got {type(fn).__name__}.")
        self.fn = fn
        self.output_range = check_output_range(output_range)
        self.accepts_generator_list = check_bool(accepts_generator_list, "accepts_generator_list")
        self.clamp_output = check_bool(clamp_output, "clamp_output")

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"CallableSampler(fn={name}, output_range={self.output_range})"

    def __call__(
        self, num_samples: int, *, generator: Generators, device: torch.device | str, labels: Tensor | None = None
    ) -> Tensor:
        check_positive_int(num_samples, "num_samples", minimum=0)
        generator = check_generators(generator, num_samples)
        labels = check_labels(labels, num_samples, None)
        if isinstance(generator, torch.Generator) or self.accepts_generator_list:
            out = self.fn(num_samples, generator=generator, device=device, labels=labels)
        else:
            outs = [
                self.fn(1, generator=g, device=device, labels=None if labels is None else labels[i : i + 1])
                for i, g in enumerate(generator)
            ]
            # With no samples there is nothing to draw: fn gets a throwaway generator of the type it expects.
            out = torch.cat(outs) if outs else self.fn(0, generator=torch.Generator(), device=device, labels=labels)
        return check_images(out, num_samples, "fn", repr(self), self.output_range if self.clamp_output else None)


def check_generators(generator: Any, num_samples: int) -> Generators:
    """Return ``generator`` if it is one ``torch.Generator`` or a sequence of ``num_samples`` of them."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, Sequence) and all(isinstance(g, torch.Generator) for g in generator):
        if len(generator) != num_samples:
            raise ValueError(
                f"Expected `generator` to be one torch.Generator or {num_samples} of them (one per sample), "
                f"got a sequence of {len(generator)}."
            )
        return generator
    raise TypeError(
        f"Expected `generator` to be a torch.Generator or a sequence of them, got {type(generator).__name__}."
    )


def check_labels(labels: Any, num_samples: int, num_classes: int | None) -> Tensor | None:
    """Return integer ``labels``: class indices ``[num_samples]`` in ``[0, num_classes)`` when ``num_classes`` is
    given, else any integer conditioning ``[num_samples, ...]`` (class indices, or label maps such as masks)."""
    if labels is None:
        return None
    check_tensor(labels, "labels")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"Expected `labels` to be an integer tensor of class indices, got dtype {labels.dtype}.")
    if num_classes is not None and (labels.ndim != 1 or labels.shape[0] != num_samples):
        raise ValueError(
            f"Expected `labels` to have shape [num_samples] = [{num_samples}], got shape {tuple(labels.shape)}."
        )
    if labels.ndim == 0 or labels.shape[0] != num_samples:
        raise ValueError(
            f"Expected `labels` to have shape [num_samples, ...] = [{num_samples}, ...], got shape "
            f"{tuple(labels.shape)}."
        )
    if num_classes is not None and labels.numel() > 0:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"Expected `labels` in [0, {num_classes}) (num_classes), got values in [{low}, {high}].")
    return labels


def check_image_batch(out: Any, num_samples: int, name: str) -> Tensor:
    """Return ``out`` if it is a floating point ``[num_samples, C, H, W]`` tensor, else raise naming ``name``."""
    if not isinstance(out, Tensor):
        raise TypeError(f"Expected `{name}` to return a torch.Tensor, got {type(out).__name__}.")
    if out.ndim != 4 or out.shape[0] != num_samples:
        raise ValueError(
            f"Expected `{name}` to return shape [num_samples, C, H, W] with num_samples = {num_samples}, "
            f"got shape {tuple(out.shape)}."
        )
    if not out.is_floating_point():
        raise TypeError(f"Expected `{name}` to return floating point values, got dtype {out.dtype}.")
    return out


def nonfinite_rows(images: Tensor) -> list[int]:
    """The indices of the samples (rows of dim 0) of ``images`` holding NaN/Inf, in one host synchronisation.

    Example:
        >>> import torch
        >>> nonfinite_rows(torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [0.0, float("inf")]]))
        [1, 2]
    """
    if images.numel() == 0:
        return []
    return (~torch.isfinite(images).reshape(images.shape[0], -1).all(dim=1)).nonzero().flatten().tolist()


def check_finite_samples(images: Tensor, sampler: str) -> None:
    """Raise ``NonFiniteSamplesError`` if any sample (row of dim 0) of ``images`` holds NaN/Inf.

    One reduction and one host synchronisation for the whole batch; ``sampler`` names the producer in the message.

    Example:
        >>> import torch
        >>> images = torch.zeros(4, 1, 2, 2)
        >>> images[2, 0, 1, 1] = float("nan")
        >>> try:
        ...     check_finite_samples(images, "my sampler")
        ... except NonFiniteSamplesError as error:
        ...     print(error.count, error.num_samples)
        1 4
    """
    rows = nonfinite_rows(images)  # whether any sample is bad, how many, and which comes first
    if rows:
        raise NonFiniteSamplesError(len(rows), images.shape[0], sampler, first=rows[0])


def check_images(out: Any, num_samples: int, name: str, sampler: str, clamp_range: InputRange | None) -> Tensor:
    """``name``'s ``[num_samples, C, H, W]`` output as finite float32 images, clamped into ``clamp_range``.

    The finiteness check comes before the clamp, which would turn an Inf into a bound.
    """
    images = check_image_batch(out, num_samples, name).float()
    check_finite_samples(images, sampler)
    return images if clamp_range is None else images.clamp(*clamp_range)


def model_dtype(model: Any, default: torch.dtype | None = torch.float32) -> torch.dtype | None:
    """The floating point dtype of ``model``'s inputs: that of its first floating parameter, else buffer.

    ``model`` may be an ``nn.Module``, a bound method of one (such as ``vae.decode``) or a ``functools.partial``
    of either. Anything else (a plain function, a lambda), or a module without floating parameters or buffers,
    gets ``default``. A module in bfloat16 (Lightning's ``precision="bf16-true"``) gets bfloat16.

    Example:
        >>> import torch
        >>> model_dtype(torch.nn.Linear(2, 2).to(torch.bfloat16)), model_dtype(lambda x: x)
        (torch.bfloat16, torch.float32)
    """
    while isinstance(model, functools.partial):
        model = model.func
    module = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
    if isinstance(module, nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return default


def check_dtype(value: Any) -> torch.dtype | None:
    """Return ``value`` if it is ``None`` or a floating point ``torch.dtype``, else raise."""
    if value is not None and not (isinstance(value, torch.dtype) and value.is_floating_point):
        raise TypeError(f"Expected `dtype` to be a floating point torch.dtype or None, got {value!r}.")
    return value


def randn_per_sample(
    shape: Sequence[int], generator: Generators, num_samples: int, device: torch.device | str
) -> Tensor:
    """``[num_samples, *shape]`` standard normal float32 noise: one draw per sample for a generator sequence.

    Each generator draws on its own device; the result is moved to ``device``, in one copy when the generators
    share a device. The values are those of ``torch.randn(shape, generator=g)`` for each sample's ``g``.

    Example:
        >>> import torch
        >>> gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
        >>> expected = torch.randn(3, generator=torch.Generator().manual_seed(2))
        >>> torch.equal(randn_per_sample((3,), gens, 2, "cpu")[1], expected)
        True
    """
    shape = tuple(shape)
    # float32 named explicitly: Lightning's "bf16-true"/"16-true" change torch's default dtype around hooks.
    if isinstance(generator, torch.Generator):
        noise = torch.randn((num_samples, *shape), generator=generator, device=generator.device, dtype=torch.float32)
        return noise.to(device)
    if num_samples == 0:
        return torch.empty((0, *shape), device=device, dtype=torch.float32)
    source = generator[0].device
    if any(g.device != source for g in generator):
        return torch.stack(
            [torch.randn(shape, generator=g, device=g.device, dtype=torch.float32).to(device) for g in generator]
        )
    # Each row is drawn in place: the same values as a fresh draw, without a stack copy per batch.
    noise = torch.empty((num_samples, *shape), device=source, dtype=torch.float32)
    for row, g in zip(noise, generator, strict=True):
        torch.randn(shape, generator=g, out=row)
    return noise.to(device)


def randint_per_sample(high: int, generator: Generators, num_samples: int, device: torch.device | str) -> Tensor:
    """``[num_samples]`` int64 uniform in ``[0, high)``: one draw per sample for a generator sequence."""
    if isinstance(generator, torch.Generator):
        return torch.randint(high, (num_samples,), generator=generator, device=generator.device).to(device)
    if num_samples == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    return torch.cat([torch.randint(high, (1,), generator=g, device=g.device).to(device) for g in generator])


def start_guided_sampling(
    sampler: Any, num_samples: int, generator: Any, device: torch.device | str, labels: Any
) -> tuple[Generators, Tensor | None, torch.dtype, Tensor]:
    """What every guided sampler (diffusion, log-SNR, flow matching) does first, in the order that fixes each
    sample's random stream: check the arguments, read the model's dtype, draw each sample's initial noise
    (float32) from its own generator, then its label when none is given and the sampler has ``num_classes``.

    ``sampler`` has ``model``, ``dtype``, ``sample_shape``, ``num_classes`` and ``guidance``.

    Returns:
        ``(generators, labels on device or None, the model's dtype, initial noise [N, *sample_shape])``.

    Raises:
        TypeError, ValueError: bad ``num_samples``, generators or labels; guidance without labels.
    """
    check_positive_int(num_samples, "num_samples", minimum=0)
    generators = check_generators(generator, num_samples)
    labels = check_labels(labels, num_samples, sampler.num_classes)
    # Read at every call: Lightning casts the module (e.g. to bfloat16) after the sampler may have been built.
    dtype = model_dtype(sampler.model) if sampler.dtype is None else sampler.dtype
    noise = randn_per_sample(sampler.sample_shape, generators, num_samples, device)
    if labels is None and sampler.num_classes is not None:
        labels = randint_per_sample(sampler.num_classes, generators, num_samples, device)
    if labels is None and sampler.guidance != 0:
        raise ValueError(f"Guidance (w = {sampler.guidance}) needs `labels` (or `num_classes` to draw them).")
    return generators, None if labels is None else labels.to(device), cast(torch.dtype, dtype), noise


@contextlib.contextmanager
def eval_mode(*callables: Any) -> Iterator[None]:
    """Put each ``nn.Module`` among ``callables`` (or owning one, as a bound method such as ``vae.encode``) in eval
    mode, then restore every submodule's own flag. Other callables (lambdas, functions) are left alone.
    """
    modules = [c if isinstance(c, nn.Module) else getattr(c, "__self__", None) for c in callables]
    modules = [m for m in modules if isinstance(m, nn.Module)]
    saved = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for m, training in saved:
            m.training = training


def check_shape(value: Any, name: str, *, length: int | None = None) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints (of ``length`` entries when given)."""
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if (
        shape is None
        or not shape
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
        or (length is not None and len(shape) != length)
    ):
        what = f"{length} positive ints" if length is not None else "a non-empty tuple of positive ints"
        raise ValueError(f"Expected `{name}` to be {what}, got {value!r}.")
    return shape


def check_output_range(value: Any) -> InputRange:
    try:
        checked = check_input_range(value)
    except ValueError:
        checked = None
    if checked is None:
        raise ValueError(f"Expected `output_range` to be (0, 1) or (-1, 1), got {value!r}.")
    return checked


def _check_seed(seed: Any) -> None:
    check_positive_int(seed, "seed", minimum=0)
    if seed > _MASK64:
        raise ValueError(f"Expected `seed` to be below 2**64, got {seed}.")


def _check_range(start: Any, stop: Any) -> None:
    check_positive_int(start, "start", minimum=0)
    check_positive_int(stop, "stop", minimum=0)
    if not start <= stop <= MAX_SAMPLES:
        raise ValueError(f"Expected 0 <= `start` <= `stop` <= 2**32, got start={start}, stop={stop}.")
