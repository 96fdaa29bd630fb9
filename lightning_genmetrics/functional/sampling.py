"""Content keys for samples: the same sample gets the same key in any batch, on any rank.

The streaming metrics need per-sample randomness that does not depend on how the data was
batched or sharded: InceptionScore assigns each sample to a split by its key, and
KernelInceptionDistance keeps the ``max_samples`` samples with the smallest keys (a bottom-k
sample, which merges exactly across ranks). A key is a seeded universal hash of the sample's
bytes (for images: the uint8 pixels after range conversion, so it is exact), or of a caller-given
integer id. Samples that are bit-identical share a key; pass ids where exact duplicates are
expected to matter.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

# Two independent hashes modulo the Mersenne prime 2**31 - 1 give a key below 2**62.
_PRIME = 2**31 - 1
# Bytes hashed at once: 255 · (2**31 - 1) · 2**16 < 2**63, so a chunk's int64 sum cannot overflow.
_CHUNK = 2**16


@functools.lru_cache(maxsize=32)
def _multipliers(seed: int, length: int) -> Tensor:
    # numpy's legacy RandomState stream is frozen across versions, so keys are reproducible.
    values = np.random.RandomState(seed % 2**32).randint(1, _PRIME, size=(2, length), dtype=np.int64)
    return torch.from_numpy(values)


def sample_keys(samples: Tensor, seed: int = 0) -> Tensor:
    """A 62-bit int64 key per sample (row), determined by the sample's bytes and ``seed``.

    Args:
        samples: ``[N, ...]`` of any dtype; ``[N]`` integer ids are hashed as ids.
        seed: selects the hash function.

    Returns:
        int64 ``[N]`` keys in ``[0, 2**62)``.

    Example:
        >>> import torch
        >>> x = torch.arange(12, dtype=torch.uint8).reshape(3, 4)
        >>> bool((sample_keys(x)[1:] == sample_keys(x[1:])).all())
        True
    """
    n = samples.shape[0]
    data = samples.detach().reshape(n, math.prod(samples.shape[1:])).contiguous()
    if data.dtype == torch.bool:
        data = data.to(torch.uint8)
    raw = data.view(torch.uint8)
    length = raw.shape[1]
    multipliers = _multipliers(seed, length).to(raw.device)
    hashes = torch.zeros(2, n, dtype=torch.int64, device=raw.device)
    for start in range(0, length, _CHUNK):
        chunk = raw[:, start : start + _CHUNK].to(torch.int64)
        block = multipliers[:, start : start + _CHUNK]
        hashes += torch.stack([(chunk * block[0]).sum(1), (chunk * block[1]).sum(1)]) % _PRIME
        hashes %= _PRIME
    return hashes[0] * _PRIME + hashes[1]


def bottom_k(keys: Tensor, k: int | None) -> Tensor:
    """Indices of the ``k`` smallest keys in ascending key order (all of them when ``k`` is None).

    The result depends only on the multiset of keys, not on their order (ties keep input order).

    Example:
        >>> import torch
        >>> bottom_k(torch.tensor([5, 1, 4, 2]), 2)
        tensor([1, 3])
    """
    order = torch.sort(keys, stable=True).indices
    return order if k is None else order[:k]
