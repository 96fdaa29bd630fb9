"""Autoregressive sampling against exactly known next-token distributions, guidance ramps, shards and the KV cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule
from scipy.special import softmax
from scipy.stats import chi2
from torch import nn

from lightning_genmetrics.samplers import (
    AutoregressiveSampler,
    NonFiniteSamplesError,
    filter_logits,
    guidance_by_position,
    sample_range,
)
from tests.callbacks.support import check_fid_guidance_sweep

V = 5  # the vocabulary of the Markov model
NUM_CLASSES = 3
NULL = NUM_CLASSES  # the null label: the last row of the logit table
START = V  # the "previous token" of the first position (and the start token's id when one is used)
# The level of every chi-square test here: a correct sampler fails one with probability 1e-4 (fresh seeds each run).
LEVEL = 1e-4

# ---------------------------------------------------------------------------------------------------------------
# The Markov oracle: the next token's logits are table[label, previous token] (START before the first token), so
# the distribution of every transition is known exactly and the guided, tempered, filtered one follows by hand.
# ---------------------------------------------------------------------------------------------------------------


class MarkovModel(nn.Module):
    """Logits ``table[label, previous token]`` from a float64 table ``[labels + 1, V + 1, V]``.

    ``output="next"`` returns ``[N, V]``; ``"all"`` returns ``[N, s, V]`` for every position: START then the tokens
    (a class-token style prefix), or the tokens alone when they begin with the start token. Called with a ``cache``
    keyword it follows the KV-cache protocol, its cache holding the previous token.
    """

    def __init__(self, table: np.ndarray, output: str = "next") -> None:
        super().__init__()
        self.register_buffer("table", torch.tensor(table, dtype=torch.float64))
        self.output = output
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None, bool]] = []

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: object):
        labels = torch.zeros(tokens.shape[0], dtype=torch.int64) if labels is None else labels
        self.calls.append((tokens.clone(), labels.clone(), "cache" in kwargs))
        if "cache" in kwargs:
            previous = kwargs["cache"]
            if tokens.shape[1] > 0:
                previous = tokens[:, -1]
            elif previous is None:
                previous = torch.full((tokens.shape[0],), START)
            return self.table[labels, previous], previous
        states = tokens
        if tokens.shape[1] == 0 or tokens[0, 0] != START:
            states = torch.cat([torch.full((tokens.shape[0], 1), START), tokens], dim=1)
        if self.output == "next":
            return self.table[labels, states[:, -1]]
        return self.table[labels[:, None], states]


def reference_probabilities(table, label, previous, w, temperature, top_k, top_p) -> np.ndarray:
    """The exact next-token distribution after guidance, temperature, top-k and top-p (float64, by definition)."""
    logits = ((1 + w) * table[label, previous] - w * table[NULL, previous]) / temperature
    if top_k is not None:
        logits = np.where(logits < np.sort(logits)[::-1][top_k - 1], -np.inf, logits)
    if top_p is not None:
        probs = softmax(logits)
        order = np.argsort(-probs, kind="stable")
        before = np.concatenate([[0.0], np.cumsum(probs[order])[:-1]])
        logits[order[before >= top_p]] = -np.inf
    return softmax(logits)


def top_p_margin(table, w, temperature, top_k, top_p) -> float:
    """How far the mass before any token is from ``top_p``: the kept set is unambiguous when this is not tiny."""
    if top_p is None:
        return np.inf
    margins = []
    for label in range(NUM_CLASSES):
        for previous in range(V + 1):
            logits = ((1 + w) * table[label, previous] - w * table[NULL, previous]) / temperature
            if top_k is not None:
                logits = np.where(logits < np.sort(logits)[::-1][top_k - 1], -np.inf, logits)
            probs = np.sort(softmax(logits))[::-1]
            margins.append(np.abs(np.cumsum(probs) - top_p).min())
    return float(min(margins))


def chi_square(counts: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic and degrees of freedom of one multinomial row, bins of expected count < 5 pooled (and a
    pool still below 5 merged into the smallest bin), so the chi-square approximation holds."""
    large = expected >= 5
    observed, wanted = list(counts[large]), list(expected[large])
    if (~large).any():
        pool_observed, pool_expected = counts[~large].sum(), expected[~large].sum()
        if pool_expected < 5 and wanted:
            smallest = int(np.argmin(wanted))
            observed[smallest] += pool_observed
            wanted[smallest] += pool_expected
        else:
            observed.append(pool_observed)
            wanted.append(pool_expected)
    observed, wanted = np.array(observed, dtype=float), np.array(wanted)
    return float(((observed - wanted) ** 2 / wanted).sum()), len(wanted) - 1


def pixel_decode(tokens: torch.Tensor) -> torch.Tensor:
    # Tokens as intensities in [0, 1], one row of pixels: the tokens come back as round(image·(V − 1)).
    return tokens.to(torch.float32)[:, None, None] / (V - 1)


def decoded_tokens(images: torch.Tensor) -> np.ndarray:
    return torch.round(images.flatten(1) * (V - 1)).long().numpy()


CONFIGURATIONS = [
    ({"guidance": 0.0}, "next", False, False),
    ({"guidance": 1.5, "temperature": 0.8, "top_k": 3}, "all", False, False),
    ({"guidance_scale": 3.0, "temperature": 1.3, "top_p": 0.9}, "next", True, False),
    ({"guidance": 1.0, "temperature": 0.9, "top_k": 4, "top_p": 0.8}, "all", False, True),
]


@pytest.mark.parametrize(("options", "output", "start_token", "kv_cache"), CONFIGURATIONS)
def test_transitions_follow_the_guided_filtered_distribution(rng, options, output, start_token, kv_cache):
    w = options.get("guidance", options.get("guidance_scale", 1.0) - 1)
    temperature, top_k, top_p = options.get("temperature", 1.0), options.get("top_k"), options.get("top_p")
    table = rng.normal(0.0, 0.5, (NUM_CLASSES + 1, V + 1, V))
    while top_p_margin(table, w, temperature, top_k, top_p) < 1e-4:  # rare: redraw a table with a borderline set
        table = rng.normal(0.0, 0.5, (NUM_CLASSES + 1, V + 1, V))
    n, length = 3_000, 12
    sampler = AutoregressiveSampler(
        MarkovModel(table, output), sequence_length=length, decode=pixel_decode, output_range=(0, 1),
        num_classes=NUM_CLASSES, null_label=NULL, start_token=START if start_token else None, kv_cache=kv_cache,
        **options,
    )  # fmt: skip
    labels = torch.tensor(rng.integers(0, NUM_CLASSES, n))
    seed = int(rng.integers(2**63))
    tokens = decoded_tokens(sampler(n, generator=torch.Generator().manual_seed(seed), device="cpu", labels=labels))

    previous = np.concatenate([np.full((n, 1), START), tokens[:, :-1]], axis=1)
    counts = np.zeros((NUM_CLASSES, V + 1, V), dtype=np.int64)
    np.add.at(counts, (np.repeat(labels.numpy(), length), previous.ravel(), tokens.ravel()), 1)
    for label in range(NUM_CLASSES):
        for state in range(V + 1):
            p = reference_probabilities(table, label, state, w, temperature, top_k, top_p)
            # Exact truncation: a token outside the kept set is never drawn.
            assert (counts[label, state][p == 0] == 0).all(), (label, state, p, counts[label, state])
            if top_k is not None:
                assert (p > 0).sum() <= top_k
    statistic, dof = transition_statistic(counts, table, w, temperature, top_k, top_p)
    assert dof >= 10  # enough cells carry the test
    assert chi2.sf(statistic, dof) > LEVEL, (statistic, dof)
    # The test's power, on the same draws: a reference 1.5× too hot is rejected.
    wrong, wrong_dof = transition_statistic(counts, table, w, 1.5 * temperature, top_k, top_p)
    assert chi2.sf(wrong, wrong_dof) < LEVEL, (wrong, wrong_dof)


def transition_statistic(counts, table, w, temperature, top_k, top_p) -> tuple[float, int]:
    """Pearson's statistic and degrees of freedom of the transition counts against the reference, summed over the
    (class, previous token) rows; a count where the reference has probability 0 makes it infinite."""
    statistic, dof = 0.0, 0
    for label in range(NUM_CLASSES):
        for state in range(V + 1):
            row = counts[label, state]
            p = reference_probabilities(table, label, state, w, temperature, top_k, top_p)
            if (row[p == 0] > 0).any():
                return np.inf, 1
            if row.sum() > 0:
                s, d = chi_square(row[p > 0], row.sum() * p[p > 0])
                statistic, dof = statistic + s, dof + d
    return statistic, dof


def test_filtered_tokens_never_appear_when_unlikely_tokens_dominate_the_tail(rng):
    # Top-k and top-p keep sets computed from the probabilities; with many samples the excluded tokens (here with
    # sizeable probability before filtering) would surely show up if the truncation leaked.
    table = rng.normal(0.0, 0.3, (NUM_CLASSES + 1, V + 1, V))
    for options in ({"top_k": 2}, {"top_p": 0.5}, {"top_k": 1}):
        sampler = AutoregressiveSampler(MarkovModel(table), sequence_length=6, decode=pixel_decode, output_range=(0, 1),
                                        num_classes=NUM_CLASSES, **options)  # fmt: skip
        labels = torch.tensor(rng.integers(0, NUM_CLASSES, 2_000))
        tokens = decoded_tokens(sampler(2_000, generator=torch.Generator().manual_seed(3), device="cpu", labels=labels))
        previous = np.concatenate([np.full((2_000, 1), START), tokens[:, :-1]], axis=1)
        for label in range(NUM_CLASSES):
            for state in range(V + 1):
                p = reference_probabilities(table, label, state, 0.0, 1.0, options.get("top_k"), options.get("top_p"))
                mask = (labels.numpy()[:, None] == label) & (previous == state)
                drawn = set(tokens[mask].tolist())
                assert drawn <= set(np.flatnonzero(p > 0).tolist()), (options, label, state, drawn, p)
        if options.get("top_k") == 1:  # greedy: the sequences are the argmax chains
            for i in range(5):
                state = START
                for token in tokens[i]:
                    assert token == int(np.argmax(table[int(labels[i]), state]))
                    state = token


def test_filter_logits_matches_the_definition(rng):
    logits = rng.normal(0, 2, (64, 9))
    logits[:8, :4] = logits.max() + 1  # ties at the k-th value: all tied tokens are kept
    for temperature, top_k, top_p in ((1.0, 3, None), (0.7, None, 0.6), (1.8, 5, 0.9), (0.5, 1, None), (1.0, 20, 1.0)):
        got = filter_logits(torch.tensor(logits), temperature=temperature, top_k=top_k, top_p=top_p)
        for row, out in zip(logits, got.numpy(), strict=True):
            scaled = row / temperature
            kept = np.ones(9, dtype=bool)
            if top_k is not None and top_k < 9:
                kept &= scaled >= np.sort(scaled)[::-1][top_k - 1]
            if top_p is not None and top_p < 1:
                probs = np.where(kept, softmax(np.where(kept, scaled, -np.inf)), 0.0)
                order = np.argsort(-probs, kind="stable")
                before = np.concatenate([[0.0], np.cumsum(probs[order])[:-1]])
                kept[order[before >= top_p]] = False
            assert (np.isfinite(out) == kept).all(), (temperature, top_k, top_p, row, out)
            np.testing.assert_allclose(out[kept], scaled[kept], rtol=1e-12)
    assert (np.isfinite(filter_logits(torch.tensor(logits[:8]), top_k=2).numpy()).sum(1) == 4).all()


# ---------------------------------------------------------------------------------------------------------------
# Guidance: the ramp over positions, the 2N call, the scale convention
# ---------------------------------------------------------------------------------------------------------------


class ThresholdModel(nn.Module):
    """Two tokens; at position t, label 0 gives logits [0, a_t] and the null label 1 gives [0, a_t + 1], so the guided
    logit difference is a_t − w_t: with top_k=1 the token at t is 1 exactly when w_t < a_t."""

    def __init__(self, thresholds: list[float]) -> None:
        super().__init__()
        self.thresholds = torch.tensor(thresholds, dtype=torch.float64)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a = self.thresholds[tokens.shape[1]] + labels.double()
        return torch.stack([torch.zeros_like(a), a], dim=1)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_each_position_gets_its_guidance_strength(rng, schedule):
    length, w = 17, float(rng.uniform(1.0, 4.0))
    expected = [w] * length if schedule == "constant" else [w * t / (length - 1) for t in range(length)]
    assert guidance_by_position(w, length, schedule) == pytest.approx(expected, abs=1e-12)
    signs = rng.choice([-1.0, 1.0], length)
    thresholds = [wt + 0.02 * s for wt, s in zip(expected, signs, strict=True)]
    sampler = AutoregressiveSampler(ThresholdModel(thresholds), sequence_length=length, output_range=(0, 1),
                                    decode=lambda x: x.float()[:, None, None], guidance=w, guidance_schedule=schedule,
                                    null_label=1, top_k=1)  # fmt: skip
    images = sampler(3, generator=torch.Generator().manual_seed(0), device="cpu", labels=torch.zeros(3).long())
    assert images.flatten(1).tolist() == [[1.0 if s > 0 else 0.0 for s in signs]] * 3


def test_guidance_is_one_call_of_2n_rows_with_the_null_label(rng):
    model = MarkovModel(rng.normal(size=(NUM_CLASSES + 1, V + 1, V)))
    sampler = AutoregressiveSampler(model, sequence_length=4, decode=pixel_decode, output_range=(0, 1), guidance=2.0,
                                    null_label=NULL, num_classes=NUM_CLASSES)  # fmt: skip
    labels = torch.tensor([0, 2, 1, 2, 0])
    images = sampler(5, generator=torch.Generator().manual_seed(1), device="cpu", labels=labels)
    tokens = torch.tensor(decoded_tokens(images))
    assert len(model.calls) == 4
    for t, (seen, called, cached) in enumerate(model.calls):
        assert seen.shape == (10, t)
        assert torch.equal(seen[:5], tokens[:, :t])
        assert torch.equal(seen[5:], tokens[:, :t])  # the unconditional rows continue the same sequences
        assert torch.equal(called, torch.cat([labels, torch.full((5,), NULL)]))
        assert not cached


def test_guidance_scale_is_one_plus_w(rng):
    table = rng.normal(size=(NUM_CLASSES + 1, V + 1, V))
    w = float(rng.uniform(0.1, 4.0))
    common = {"sequence_length": 8, "decode": pixel_decode, "output_range": (0, 1), "null_label": NULL}
    by_w = AutoregressiveSampler(MarkovModel(table), guidance=w, **common)
    by_scale = AutoregressiveSampler(MarkovModel(table), guidance_scale=1 + w, **common)
    assert by_scale.guidance == pytest.approx(w, abs=1e-12)
    labels = torch.tensor(rng.integers(0, NUM_CLASSES, 50))
    a = by_w(50, generator=torch.Generator().manual_seed(5), device="cpu", labels=labels)
    b = by_scale(50, generator=torch.Generator().manual_seed(5), device="cpu", labels=labels)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="pass one"):
        AutoregressiveSampler(MarkovModel(table), guidance=1.0, guidance_scale=2.0, **common)


def test_tokens_ruled_out_in_both_passes_stay_ruled_out():
    table = np.zeros((2, V + 1, V))
    table[:, :, 0] = -np.inf  # token 0 impossible for the class and for the null label
    sampler = AutoregressiveSampler(MarkovModel(table), sequence_length=20, decode=pixel_decode, output_range=(0, 1),
                                    guidance=3.0, null_label=1)  # fmt: skip
    tokens = decoded_tokens(sampler(50, generator=torch.Generator().manual_seed(0), device="cpu",
                                    labels=torch.zeros(50).long()))  # fmt: skip
    assert tokens.min() >= 1
    assert set(np.unique(tokens).tolist()) == {1, 2, 3, 4}


# ---------------------------------------------------------------------------------------------------------------
# Per-sample generators, shards, the KV cache
# ---------------------------------------------------------------------------------------------------------------


def test_each_sample_draws_its_uniforms_then_its_label():
    # Uniform logits over V tokens: the inverse-CDF draw is floor(u·V) for the sample's uniform u at that position.
    model = MarkovModel(np.zeros((NUM_CLASSES + 1, V + 1, V)))
    sampler = AutoregressiveSampler(model, sequence_length=7, decode=pixel_decode, output_range=(0, 1),
                                    num_classes=NUM_CLASSES)  # fmt: skip
    seeds = (11, 12, 13)
    tokens = decoded_tokens(sampler(3, generator=[torch.Generator().manual_seed(s) for s in seeds], device="cpu"))
    for row, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(seed)
        uniforms = torch.rand(7, generator=g, dtype=torch.float64).numpy()
        label = torch.randint(NUM_CLASSES, (1,), generator=g)
        assert tokens[row].tolist() == np.floor(uniforms * V).astype(int).tolist()
        assert model.calls[0][1][row] == label


class HistoryModel(nn.Module):
    """Logits that depend on the class, the position and the sum of all tokens so far (not Markov), computed from
    the whole sequence, or incrementally through the KV-cache protocol (the cache holds (position, sum))."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("base", torch.randn(NUM_CLASSES + 1, V, generator=generator, dtype=torch.float64))
        self.register_buffer("slope", torch.randn(2, V, generator=generator, dtype=torch.float64))
        self.calls: list[tuple[tuple[int, ...], object]] = []

    def logits(self, labels: torch.Tensor, position: int, total: torch.Tensor) -> torch.Tensor:
        return self.base[labels] + 0.1 * position * self.slope[0] + torch.cos(total.double())[:, None] * self.slope[1]

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, **kwargs: object):
        if "cache" not in kwargs:
            return self.logits(labels, tokens.shape[1], tokens.sum(dim=1))
        cache = kwargs["cache"]
        self.calls.append((tuple(tokens.shape), cache))
        position, total = (0, torch.zeros(tokens.shape[0], dtype=torch.int64)) if cache is None else cache
        position, total = position + tokens.shape[1], total + tokens.sum(dim=1)
        return self.logits(labels, position, total)[:, None], (position, total)


def test_kv_cache_gives_the_same_sequences_as_recomputing(rng):
    seed = int(rng.integers(2**31))
    common = {"sequence_length": 10, "decode": pixel_decode, "output_range": (0, 1), "num_classes": NUM_CLASSES,
              "null_label": NULL, "guidance": 1.5, "guidance_schedule": "linear", "top_p": 0.9}  # fmt: skip
    full = AutoregressiveSampler(HistoryModel(seed), **common)
    cached_model = HistoryModel(seed)
    cached = AutoregressiveSampler(cached_model, kv_cache=True, **common)
    stream = int(rng.integers(2**63))
    a = sample_range(full, 0, 40, seed=stream, batch_size=16, device="cpu")
    b = sample_range(cached, 0, 40, seed=stream, batch_size=16, device="cpu")
    assert torch.equal(a, b)
    assert len(np.unique(decoded_tokens(a), axis=0)) > 20  # the sequences are random, not one constant sequence
    # The protocol: the prefix with no cache first, then the token just drawn, on 2N rows.
    shapes = [shape for shape, _ in cached_model.calls[:10]]
    assert shapes == [(32, 0)] + [(32, 1)] * 9
    assert cached_model.calls[0][1] is None
    assert cached_model.calls[1][1][0] == 0  # the cache the first call returned


@pytest.mark.parametrize("kv_cache", [False, True])
def test_shards_equal_one_process(rng, kv_cache):
    model = MarkovModel(rng.normal(size=(NUM_CLASSES + 1, V + 1, V)), output="all")
    sampler = AutoregressiveSampler(model, sequence_length=9, decode=pixel_decode, output_range=(0, 1),
                                    num_classes=NUM_CLASSES, null_label=NULL, guidance=1.2, guidance_schedule="linear",
                                    temperature=1.1, top_k=4, top_p=0.95, kv_cache=kv_cache)  # fmt: skip
    seed = int(rng.integers(2**63))
    whole = sample_range(sampler, 0, 30, seed=seed, batch_size=30, device="cpu")
    # Two "ranks" with uneven contiguous shards and their own batch sizes; labels drawn per sample.
    shards = [
        sample_range(sampler, 0, 11, seed=seed, batch_size=4, device="cpu"),
        sample_range(sampler, 11, 30, seed=seed, batch_size=7, device="cpu"),
    ]
    assert torch.equal(torch.cat(shards), whole)
    assert not torch.equal(sample_range(sampler, 0, 30, seed=seed ^ 1, batch_size=30, device="cpu"), whole)


# ---------------------------------------------------------------------------------------------------------------
# Modes, precision, failures, arguments
# ---------------------------------------------------------------------------------------------------------------


def test_model_and_decode_run_in_eval_mode_without_gradients():
    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(V, dtype=torch.bfloat16))
            self.seen: list[tuple[bool, bool]] = []

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            self.seen.append((self.training, torch.is_grad_enabled()))
            return self.weight.expand(tokens.shape[0], V)

    class Decoder(nn.Module):
        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            assert not self.training
            return pixel_decode(tokens)

    model, decoder = Recorder(), Decoder()
    out = AutoregressiveSampler(model, sequence_length=3, decode=decoder, output_range=(0, 1))(
        2, generator=torch.Generator().manual_seed(0), device="cpu"
    )
    assert out.dtype == torch.float32
    assert model.seen == [(False, False)] * 3
    assert model.training
    assert decoder.training


def test_non_finite_logits_raise_for_the_samples_affected():
    def model(tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(tokens.shape[0], V)
        logits[1, 2] = float("nan")  # sample 1: NaN logits
        if tokens.shape[1] == 2:
            logits[3] = float("-inf")  # sample 3: every token ruled out at position 2
        return logits

    sampler = AutoregressiveSampler(model, sequence_length=4, decode=pixel_decode, output_range=(0, 1))
    with pytest.raises(NonFiniteSamplesError, match="2 of 5 samples \\(the first is sample 1\\)"):
        sampler(5, generator=torch.Generator().manual_seed(0), device="cpu")
    decode_nan = AutoregressiveSampler(lambda x: torch.zeros(x.shape[0], V), sequence_length=2, output_range=(0, 1),
                                       decode=lambda x: pixel_decode(x) / 0)  # fmt: skip
    with pytest.raises(NonFiniteSamplesError, match="3 of 3 samples"):
        decode_nan(3, generator=torch.Generator().manual_seed(0), device="cpu")


def test_zero_samples_and_repr():
    sampler = AutoregressiveSampler(lambda x: torch.zeros(x.shape[0], V), sequence_length=6, decode=pixel_decode,
                                    output_range=(0, 1), top_k=3)  # fmt: skip
    assert sampler(0, generator=[], device="cpu").shape == (0, 1, 1, 6)
    assert repr(sampler) == (
        "AutoregressiveSampler(sequence_length=6, guidance=0.0, guidance_schedule='constant', temperature=1.0, "
        "top_k=3, top_p=None, kv_cache=False)"
    )


def zeros(tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    return torch.zeros(tokens.shape[0], V)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sequence_length": 0}, ValueError, "`sequence_length` to be an int >= 1"),
        ({"decode": None}, TypeError, "`decode` to be callable"),
        ({"output_range": (0, 255)}, ValueError, "`output_range`"),
        ({"guidance": 1.0}, ValueError, "needs `null_label`"),
        ({"guidance": -2.0, "null_label": 3}, ValueError, "`guidance` >= -1"),
        ({"guidance": 1.0, "guidance_scale": 2.0, "null_label": 3}, ValueError, "pass one"),
        ({"guidance_schedule": "cosine"}, ValueError, "'constant' or 'linear', got 'cosine'"),
        ({"temperature": 0.0}, ValueError, "`temperature` > 0, got 0.0"),
        ({"top_k": 0}, ValueError, "`top_k` to be an int >= 1"),
        ({"top_k": 2.0}, TypeError, "`top_k` to be an int"),
        ({"top_p": 0.0}, ValueError, r"`top_p` in \(0, 1\], got 0.0"),
        ({"top_p": 1.5}, ValueError, r"`top_p` in \(0, 1\], got 1.5"),
        ({"start_token": -1}, ValueError, "`start_token` to be an int >= 0"),
        ({"null_label": 1.0}, TypeError, "`null_label` to be an int or None"),
        ({"kv_cache": 1}, TypeError, "`kv_cache` to be a bool"),
        ({"dtype": torch.int32}, TypeError, "`dtype`"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    options = {"sequence_length": 4, "decode": pixel_decode, "output_range": (0, 1), **kwargs}
    with pytest.raises(error, match=match):
        AutoregressiveSampler(zeros, **options)


def test_bad_calls():
    def build(model, **kwargs):
        return AutoregressiveSampler(model, sequence_length=3, decode=pixel_decode, output_range=(0, 1), **kwargs)

    g = torch.Generator()
    with pytest.raises(ValueError, match="needs `labels`"):
        build(zeros, guidance=1.0, null_label=3)(2, generator=g, device="cpu")
    with pytest.raises(ValueError, match=r"logits \[2, V\] or \[2, s, V\] with s >= 1, got shape \(2,\)"):
        build(lambda x: torch.zeros(x.shape[0]))(2, generator=g, device="cpu")
    with pytest.raises(ValueError, match=r"got shape \(2, 0, 5\)"):
        build(lambda x: torch.zeros(x.shape[0], x.shape[1], V))(2, generator=g, device="cpu")
    with pytest.raises(TypeError, match=r"floating point logits, got dtype torch\.int64"):
        build(lambda x: torch.zeros(x.shape[0], V, dtype=torch.int64))(2, generator=g, device="cpu")
    with pytest.raises(TypeError, match=r"a torch\.Tensor of logits, got tuple"):
        build(lambda x: (zeros(x), None))(2, generator=g, device="cpu")
    with pytest.raises(TypeError, match=r"\(logits, cache\) with kv_cache=True, got Tensor"):
        build(lambda x, cache: zeros(x), kv_cache=True)(2, generator=g, device="cpu")
    with pytest.raises(ValueError, match="same V = 5 tokens at every step, got 6"):
        build(lambda x: torch.zeros(x.shape[0], V + x.shape[1]))(2, generator=g, device="cpu")
    with pytest.raises(ValueError, match=r"`decode` to return shape \[num_samples, C, H, W\]"):
        AutoregressiveSampler(zeros, sequence_length=3, decode=lambda x: x.float(), output_range=(0, 1))(
            2, generator=g, device="cpu"
        )
    with pytest.raises(ValueError, match=r"`labels` in \[0, 3\)"):
        build(zeros, num_classes=3)(2, generator=g, device="cpu", labels=torch.tensor([0, 3]))


def test_filter_logits_refuses_bad_input():
    with pytest.raises(TypeError, match=r"floating point tensor, got dtype torch\.int64"):
        filter_logits(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"shape \[N, V\], got shape \(3,\)"):
        filter_logits(torch.zeros(3))
    with pytest.raises(ValueError, match="`temperature` > 0"):
        filter_logits(torch.zeros(2, 3), temperature=-1.0)


# ---------------------------------------------------------------------------------------------------------------
# The callback sweeps guidance over an autoregressive sampler
# ---------------------------------------------------------------------------------------------------------------


class TinyTokenModule(LightningModule):
    """A trainable Markov table over 4 intensity levels for 8×8 images, two classes and the null label 2."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(3 * 5, 4)  # (label, previous token or start) -> logits
        with torch.no_grad():
            self.table.weight.copy_(torch.randn(15, 4, generator=torch.Generator().manual_seed(0)) * 2)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        previous = tokens[:, -1] if tokens.shape[1] else torch.full_like(labels, 4)
        return self.table(labels * 5 + previous)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.table.weight.pow(2).mean() * 1e-3

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def decode_levels(tokens: torch.Tensor) -> torch.Tensor:
    return (tokens.float() / 3 * 2 - 1).reshape(-1, 1, 8, 8).expand(-1, 3, -1, -1)


def token_sampler(pl_module: TinyTokenModule) -> AutoregressiveSampler:
    return AutoregressiveSampler(pl_module, sequence_length=64, decode=decode_levels, output_range=(-1, 1),
                                 num_classes=2, null_label=2)  # fmt: skip


def test_callback_sweeps_guidance_over_an_autoregressive_sampler(tmp_path: Path) -> None:
    check_fid_guidance_sweep(tmp_path, token_sampler, TinyTokenModule())
