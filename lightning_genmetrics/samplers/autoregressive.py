"""Autoregressive image models: one token at a time, with classifier-free guidance on the logits.

A class-conditional autoregressive model (LlamaGen, Sun et al. 2024; VAR, Tian et al. 2024; a pixel model) gives the
logits ``ℓ(c)`` of the next token given the tokens so far and the class ``c``. Classifier-free guidance acts on the
logits as on ε in diffusion: ``ℓ̃ = (1 + w)·ℓ(c) − w·ℓ(∅)``, the conditional and unconditional passes in one call of
``2N`` rows (LlamaGen's ``cfg_scale`` is ``s = 1 + w``; VAR's ``cfg`` is ``w``). The guided logits are then divided
by the temperature and filtered by top-k and top-p (nucleus) sampling, in that order, as LlamaGen and Hugging Face's
``generate`` do, and the next token is drawn from the softmax of what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_bool, check_positive_int, check_tensor
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.samplers.base import (
    Generators,
    NonFiniteSamplesError,
    check_dtype,
    check_generators,
    check_images,
    check_labels,
    check_output_range,
    eval_mode,
    randint_per_sample,
)
from lightning_genmetrics.samplers.diffusion import _check_real, _resolve_guidance

GuidanceSchedule = Literal["constant", "linear"]


def guidance_by_position(guidance: float, sequence_length: int, schedule: GuidanceSchedule = "constant") -> list[float]:
    """The guidance strength ``w_t`` of each generated position ``t = 0, …, L − 1``, as float64 Python floats.

    ``"constant"``: ``w_t = w`` everywhere. ``"linear"``: ``w_t = w·t/(L − 1)``, from 0 at the first token to ``w`` at
    the last (``w`` alone when ``L = 1``): VAR's ramp, which it takes over its scales, here over the token positions.

    Example:
        >>> guidance_by_position(2.0, 5, "linear")
        [0.0, 0.5, 1.0, 1.5, 2.0]
        >>> guidance_by_position(2.0, 3)
        [2.0, 2.0, 2.0]
    """
    w = _check_real(guidance, "guidance")
    check_positive_int(sequence_length, "sequence_length")
    if schedule == "constant" or sequence_length == 1:
        if schedule not in ("constant", "linear"):
            raise ValueError(f"Expected `guidance_schedule` to be 'constant' or 'linear', got {schedule!r}.")
        return [w] * sequence_length
    if schedule == "linear":
        return [w * t / (sequence_length - 1) for t in range(sequence_length)]
    raise ValueError(f"Expected `guidance_schedule` to be 'constant' or 'linear', got {schedule!r}.")


def filter_logits(
    logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Next-token logits ``[N, V]`` divided by ``temperature``, then top-k, then top-p filtered (a new tensor).

    Filtered-out tokens get ``−inf``; the softmax of the result is the distribution the next token is drawn from.

    - top-k keeps the tokens whose logit is at least the ``k``-th largest of the row (all tokens tied with the
      ``k``-th value are kept, as Hugging Face's ``TopKLogitsWarper`` does); ``k >= V`` keeps all.
    - top-p then keeps the smallest set of most probable tokens whose probability (the softmax of the logits left by
      top-k) adds up to at least ``p``: sorted by decreasing probability (ties in index order), a token is kept when
      the probability before it is below ``p``, so the most probable token always stays; ``p = 1`` keeps all.

    Args:
        logits: floating point logits ``[N, V]``.
        temperature: ``T > 0``; ``T < 1`` sharpens, ``T > 1`` flattens.
        top_k: the number of tokens to keep, ``>= 1``, or ``None`` for no top-k.
        top_p: the probability mass to keep, in ``(0, 1]``, or ``None`` for no top-p.

    Raises:
        TypeError: ``logits`` not a floating point tensor, or a bad argument type.
        ValueError: ``logits`` not ``[N, V]``, or a value out of range.

    Example:
        >>> import torch
        >>> logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
        >>> filter_logits(logits, top_p=0.75).softmax(-1)
        tensor([[0.6250, 0.3750, 0.0000, 0.0000]])
        >>> filter_logits(logits, temperature=0.5, top_k=3).softmax(-1)
        tensor([[0.6897, 0.2483, 0.0621, 0.0000]])
    """
    check_tensor(logits, "logits")
    if not logits.is_floating_point():
        raise TypeError(f"Expected `logits` to be a floating point tensor, got dtype {logits.dtype}.")
    if logits.ndim != 2:
        raise ValueError(f"Expected `logits` to have shape [N, V], got shape {tuple(logits.shape)}.")
    temperature, top_k, top_p = _check_filters(temperature, top_k, top_p)
    return _filter(logits, temperature, top_k, top_p)


def _check_filters(temperature: Any, top_k: Any, top_p: Any) -> tuple[float, int | None, float | None]:
    temperature = _check_real(temperature, "temperature")
    if not temperature > 0:
        raise ValueError(f"Expected `temperature` > 0, got {temperature}.")
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    if top_p is not None:
        top_p = _check_real(top_p, "top_p")
        if not 0 < top_p <= 1:
            raise ValueError(f"Expected `top_p` in (0, 1], got {top_p}.")
    return temperature, top_k, top_p


def _filter(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None) -> Tensor:
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        probs, order = torch.sort(logits.softmax(dim=-1), dim=-1, descending=True, stable=True)
        cumulative = probs.cumsum(dim=-1)
        # The mass before each token (0 before the first, and 0 < p: the most probable token is never dropped).
        before = torch.cat([torch.zeros_like(cumulative[:, :1]), cumulative[:, :-1]], dim=-1)
        drop = torch.empty_like(before, dtype=torch.bool).scatter_(-1, order, before >= top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _uniforms(generator: Generators, num_samples: int, length: int, device: torch.device | str) -> Tensor:
    # [num_samples, length] float64 uniforms in [0, 1): with a generator sequence, row i from generator i alone.
    if isinstance(generator, torch.Generator):
        out = torch.rand((num_samples, length), generator=generator, device=generator.device, dtype=torch.float64)
        return out.to(device)
    if num_samples == 0:
        return torch.empty((0, length), dtype=torch.float64, device=device)
    rows = [torch.rand(length, generator=g, device=g.device, dtype=torch.float64) for g in generator]
    if any(row.device != rows[0].device for row in rows):
        return torch.stack([row.to(device) for row in rows])
    return torch.stack(rows).to(device)  # one copy to `device` for the batch


def _draw(logits: Tensor, uniforms: Tensor) -> tuple[Tensor, Tensor]:
    """The next tokens ``[N]`` by inverse-CDF sampling of ``softmax(logits)`` with one uniform per row, and which
    rows had no valid distribution (a NaN or +Inf logit, or every token ruled out)."""
    logits = logits.double()
    weights = (logits - logits.amax(dim=-1, keepdim=True)).exp_()
    cdf = weights.cumsum_(dim=-1)
    total = cdf[:, -1:]
    # Token k is drawn when cdf[k − 1] <= u·total < cdf[k]: a token of weight 0 (filtered out) has an empty interval,
    # and u < 1 keeps u·total below total (float rounding is monotone), so the index stays below V: no rounding of
    # the sums can select a filtered token.
    tokens = (cdf <= uniforms[:, None] * total).sum(dim=-1)
    return tokens, ~(total[:, 0] > 0)


class AutoregressiveSampler:
    """Sampling of an autoregressive token model, with classifier-free guidance on the logits, decoded to images.

    The model is called ``model(tokens)`` (unconditional) or ``model(tokens, labels)`` (conditional) with ``tokens``
    an int64 tensor ``[N, t]`` of the tokens so far (``t = 0`` at the first step, or the ``start_token`` alone when
    one is set) and ``labels`` int64 ``[N]``; it returns the next token's logits ``[N, V]``, or logits ``[N, s, V]``
    for every position (``s >= 1``, e.g. a class token followed by the ``t`` tokens), of which the last row is the
    next token's: a causal language model's output works as it is.

    Each of the ``sequence_length`` steps computes the next-token logits ``ℓ`` and then, all in ``dtype``:

    1. guidance, when ``guidance != 0``: ``ℓ̃ = (1 + w_t)·ℓ(c) − w_t·ℓ(∅)``, the conditional and unconditional passes
       one call of ``2N`` rows (the tokens twice, the labels then ``N`` copies of ``null_label``); a token ruled out
       (``−inf``) by both passes stays ruled out. ``w_t`` is ``guidance`` at every position (``"constant"``) or
       ``guidance·t/(L − 1)`` at position ``t = 0, …, L − 1`` (``"linear"``, VAR's ramp; see ``guidance_by_position``);
    2. the temperature: ``ℓ̃/T``;
    3. top-k, then top-p (see ``filter_logits``);
    4. the token, drawn from the softmax by inverse-CDF sampling (float64) with the sample's own uniform for that
       position: token ``k`` for ``F(k − 1) <= u < F(k)``, so filtered-out tokens are never drawn.

    With one generator per sample, a sample's generator yields ``sequence_length`` float64 uniforms (one per
    position, drawn up front), then its label (only when ``num_classes`` is set and no labels are given: uniform over
    the classes), so ``sample_range`` gives the same sequences on any rank or batch split (the logits of one row must
    not depend on the other rows, up to float rounding that could move a token across a boundary of the CDF).

    KV cache (``kv_cache=True``): the model is called with a keyword ``cache`` and returns ``(logits, cache)``. The
    first call gets ``cache=None`` and the prefix (``[N, 0]``, or the start token ``[N, 1]``); every later call gets
    the cache the previous one returned and the ``[N, 1]`` token just drawn (the same ``2N`` rows in the same order
    under guidance). The sampler never looks inside the cache. A model that gives the same logits both ways gives the
    same sequences both ways.

    The ``L`` tokens (without the start token) go to ``decode(tokens [N, L]) -> images [N, C, H, W]`` in
    ``output_range`` (a VQ decoder, or a reshape of pixel tokens to intensities). Sampling runs under
    ``torch.no_grad()`` with the model and ``decode`` in eval mode when they are ``nn.Module``s or bound methods of
    one (each submodule's train flag is restored afterwards). The images are returned as float32, checked once for
    NaN/Inf; a sample whose logits had no valid distribution at some step (NaN, +Inf, or all ``−inf``) is reported
    the same way, by ``NonFiniteSamplesError``.

    Args:
        model: the token model (or any callable), see above.
        sequence_length: the number of tokens ``L`` to generate per sample.
        decode: maps the tokens ``[N, L]`` (int64) to images ``[N, C, H, W]`` in ``output_range``.
        output_range: the range of ``decode``'s images, ``(0, 1)`` or ``(-1, 1)``.
        num_classes: when set, labels must lie in ``[0, num_classes)``, and missing labels are drawn uniformly.
        null_label: the "no class" label of the unconditional pass; required when guidance is on.
        guidance: the guidance strength ``w`` (``w >= -1``; 0 is plain conditional sampling, −1 unconditional).
        guidance_scale: LlamaGen's ``cfg_scale``, ``s = 1 + w``, instead of ``guidance`` (giving both is an error).
        guidance_schedule: ``"constant"`` or ``"linear"`` (see above).
        temperature: ``T > 0``.
        top_k: keep the ``k`` most probable tokens, or ``None``.
        top_p: keep the smallest most probable set of mass ``>= p``, ``p`` in ``(0, 1]``, or ``None``.
        start_token: a token placed before every sequence (given to the model, not to ``decode``), or ``None``.
        kv_cache: call the model incrementally through its cache (see above).
        clamp_output: clamp the decoded images into ``output_range``.
        dtype: the floating point dtype of the guidance, temperature and filtering; ``None``: float32, or float64 for
            float64 logits. The sampling's CDF is float64 in any case.

    Raises:
        TypeError: a bad argument type.
        ValueError: a bad value: unknown schedule, ``temperature <= 0``, ``top_p`` outside ``(0, 1]``, both
            ``guidance`` and ``guidance_scale``, guidance without ``null_label``.

    Example:
        >>> import torch
        >>> def model(tokens, labels):  # the next token is always the class
        ...     return torch.nn.functional.one_hot(labels, 5).float() * 50
        >>> decode = lambda tokens: tokens.float().reshape(-1, 1, 2, 3) / 4
        >>> sampler = AutoregressiveSampler(model, sequence_length=6, decode=decode, output_range=(0, 1),
        ...                                 num_classes=4, null_label=4)
        >>> images = sampler(2, generator=torch.Generator().manual_seed(0), device="cpu", labels=torch.tensor([1, 3]))
        >>> images[:, 0, 0].tolist()
        [[0.25, 0.25, 0.25], [0.75, 0.75, 0.75]]
    """

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        sequence_length: int,
        decode: Callable[[Tensor], Tensor],
        output_range: InputRange,
        num_classes: int | None = None,
        null_label: int | None = None,
        guidance: float = 0.0,
        guidance_scale: float | None = None,
        guidance_schedule: GuidanceSchedule = "constant",
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        start_token: int | None = None,
        kv_cache: bool = False,
        clamp_output: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"Expected `model` to be callable, got {type(model).__name__}.")
        if not callable(decode):
            raise TypeError(f"Expected `decode` to be callable, got {type(decode).__name__}.")
        self.model = model
        self.decode = decode
        self.sequence_length = check_positive_int(sequence_length, "sequence_length")
        self.output_range = check_output_range(output_range)
        self.num_classes = None if num_classes is None else check_positive_int(num_classes, "num_classes")
        self.guidance = _resolve_guidance(guidance, guidance_scale)
        if null_label is not None and (isinstance(null_label, bool) or not isinstance(null_label, int)):
            raise TypeError(f"Expected `null_label` to be an int or None, got {null_label!r}.")
        if self.guidance != 0 and null_label is None:
            raise ValueError(f"Guidance (w = {self.guidance}) needs `null_label`, the label of the unconditional pass.")
        self.null_label = null_label
        guidance_by_position(self.guidance, self.sequence_length, guidance_schedule)  # checks the schedule's name
        self.guidance_schedule = guidance_schedule
        self.temperature, self.top_k, self.top_p = _check_filters(temperature, top_k, top_p)
        if start_token is not None:
            check_positive_int(start_token, "start_token", minimum=0)
        self.start_token = start_token
        self.kv_cache = check_bool(kv_cache, "kv_cache")
        self.clamp_output = check_bool(clamp_output, "clamp_output")
        self.dtype = check_dtype(dtype)

    def __repr__(self) -> str:
        return (
            f"AutoregressiveSampler(sequence_length={self.sequence_length}, guidance={self.guidance}, "
            f"guidance_schedule={self.guidance_schedule!r}, temperature={self.temperature}, top_k={self.top_k}, "
            f"top_p={self.top_p}, kv_cache={self.kv_cache})"
        )

    @torch.no_grad()
    def __call__(
        self, num_samples: int, *, generator: Generators, device: torch.device | str, labels: Tensor | None = None
    ) -> Tensor:
        """Draw ``num_samples`` float32 images ``[N, C, H, W]`` in ``output_range`` (see the class docstring).

        Raises:
            TypeError: bad generator or labels type, or the model or ``decode`` returning something unexpected.
            ValueError: wrong label count or range, guidance without labels, or logits of the wrong shape.
            NonFiniteSamplesError: a sample's logits had no valid distribution, or its image holds NaN/Inf.
        """
        check_positive_int(num_samples, "num_samples", minimum=0)
        generator = check_generators(generator, num_samples)
        labels = check_labels(labels, num_samples, self.num_classes)
        length = self.sequence_length
        uniforms = _uniforms(generator, num_samples, length, device)
        if labels is None and self.num_classes is not None:
            labels = randint_per_sample(self.num_classes, generator, num_samples, device)
        # Read at call time: the callback's sweep sets `guidance` on a built sampler.
        guided = self.guidance != 0
        if guided and labels is None:
            raise ValueError(f"Guidance (w = {self.guidance}) needs `labels` (or `num_classes` to draw them).")
        weights = guidance_by_position(self.guidance, length, self.guidance_schedule)
        with eval_mode(self.model, self.decode):
            tokens = torch.empty((num_samples, length), dtype=torch.int64, device=device)
            if num_samples > 0:
                tokens = self._generate(num_samples, labels, uniforms, weights if guided else None, device)
            images = self.decode(tokens)
        return check_images(images, num_samples, "decode", repr(self), self.output_range if self.clamp_output else None)

    def _generate(
        self, n: int, labels: Tensor | None, uniforms: Tensor, weights: list[float] | None, device: torch.device | str
    ) -> Tensor:
        # The [n, L] tokens; the model sees 2n rows (conditional, then null labels) when `weights` is given.
        rows = n if weights is None else 2 * n
        model_labels = None if labels is None else labels.to(device)
        if weights is not None and model_labels is not None:
            model_labels = torch.cat([model_labels, torch.full_like(model_labels, int(self.null_label))])
        prefix = torch.empty((rows, 0), dtype=torch.int64, device=device)
        if self.start_token is not None:
            prefix = torch.full((rows, 1), self.start_token, dtype=torch.int64, device=device)
        drawn: list[Tensor] = []
        bad = torch.zeros(n, dtype=torch.bool, device=device)
        seen = prefix
        cache: Any = None
        vocabulary: int | None = None
        for t in range(self.sequence_length):
            if self.kv_cache:
                new = prefix if t == 0 else drawn[-1].repeat(rows // n)[:, None]
                logits, cache = self._call_cached(new, model_labels, cache, rows)
            else:
                logits = self._next_logits(self._call(seen, model_labels), rows)
            vocabulary = _check_vocabulary(logits, vocabulary)
            dtype = torch.promote_types(logits.dtype, torch.float32) if self.dtype is None else self.dtype
            logits = logits.to(dtype)
            if weights is not None and weights[t] == 0:
                logits = logits[:n]  # (1 + 0)·ℓ(c) exactly, even where ℓ(∅) is −inf (0·inf would be NaN)
            elif weights is not None:
                cond, null = logits[:n], logits[n:]
                guided = (cond * (1 + weights[t])).sub_(null * weights[t])
                # −inf in both passes would give −inf + inf = NaN: the token stays ruled out instead.
                logits = torch.where(cond == null, cond, guided)
            logits = _filter(logits, self.temperature, self.top_k, self.top_p)
            token, invalid = _draw(logits, uniforms[:, t])
            bad |= invalid
            drawn.append(token)
            if not self.kv_cache:
                seen = torch.cat([seen, token.repeat(rows // n)[:, None]], dim=1)
        rows_bad = bad.nonzero().flatten().tolist()  # the one host synchronisation of the loop
        if rows_bad:
            raise NonFiniteSamplesError(
                len(rows_bad), n, f"{self!r}, whose logits held NaN/+Inf or ruled out every token", first=rows_bad[0]
            )
        return torch.stack(drawn, dim=1)

    def _call(self, tokens: Tensor, labels: Tensor | None, **kwargs: Any) -> Any:
        return self.model(tokens, **kwargs) if labels is None else self.model(tokens, labels, **kwargs)

    def _call_cached(self, tokens: Tensor, labels: Tensor | None, cache: Any, rows: int) -> tuple[Tensor, Any]:
        out = self._call(tokens, labels, cache=cache)
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(
                f"Expected `model` to return (logits, cache) with kv_cache=True, got {type(out).__name__}"
                f"{f' of length {len(out)}' if isinstance(out, tuple) else ''}."
            )
        return self._next_logits(out[0], rows), out[1]

    @staticmethod
    def _next_logits(out: Any, rows: int) -> Tensor:
        if not isinstance(out, Tensor):
            raise TypeError(f"Expected `model` to return a torch.Tensor of logits, got {type(out).__name__}.")
        if not out.is_floating_point():
            raise TypeError(f"Expected `model` to return floating point logits, got dtype {out.dtype}.")
        if out.ndim not in (2, 3) or out.shape[0] != rows or (out.ndim == 3 and out.shape[1] == 0):
            raise ValueError(
                f"Expected `model` to return logits [{rows}, V] or [{rows}, s, V] with s >= 1, got shape "
                f"{tuple(out.shape)}."
            )
        return out if out.ndim == 2 else out[:, -1]


def _check_vocabulary(logits: Tensor, vocabulary: int | None) -> int:
    if vocabulary is not None and logits.shape[-1] != vocabulary:
        raise ValueError(
            f"Expected `model` to return logits over the same V = {vocabulary} tokens at every step, got "
            f"{logits.shape[-1]}."
        )
    return logits.shape[-1]
