"""The callback's real side: one pass over the real images, sharded by batch, fingerprinted, cached on disk.

Rank ``r`` of ``W`` reads and extracts features only from batches ``r, r + W, r + 2W, ...`` of the real
dataloader's fixed order (see :mod:`~lightning_genmetrics.callbacks.sharding`): every batch is seen by
exactly one rank, with none of ``DistributedSampler``'s duplicate padding. Each batch's uint8 pixels are
hashed; the per-batch digests are summed over the ranks into one table (each row is non-zero on one rank
only), so the data fingerprint does not depend on the number of ranks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_genmetrics._files import read_npz, write_atomically
from lightning_genmetrics.callbacks.sharding import RankShare
from lightning_genmetrics.features.preprocess import InputRange, batch_to_images, images_to_uint8

# Bumped when anything that changes the statistics or the key (hashing, conversion) changes.
CACHE_PROTOCOL = "genmetrics-callback-real-v1"
_DIGEST_BYTES = 32
RESERVOIR = ("n", "features", "keys")


def read_real_images(
    share: RankShare,
    *,
    input_range: InputRange | None,
    device: torch.device,
    consume: Callable[[Tensor], None] | None,
    reduce_sum: Callable[[Tensor], Tensor],
) -> tuple[str, int]:
    """Feed this rank's share of the real batches (as uint8) to ``consume``; return the data fingerprint and count.

    Every rank must call this (``reduce_sum`` is a collective). With ``consume=None`` it only fingerprints the
    data (reading and hashing, no feature extraction): enough to look the statistics up in a cache.

    Returns:
        The SHA-256 hex digest over all batches' pixels in iteration order, and the number of real images,
        both the same on every rank and for any number of ranks.
    """
    rows: dict[int, Tensor] = {}
    for item in share:
        uint8 = images_to_uint8(batch_to_images(item.batch, "real batch"), input_range, name="real images")
        digest = hashlib.sha256(str(tuple(uint8.shape)).encode())
        digest.update(uint8.cpu().contiguous().numpy().tobytes())
        rows[item.index] = torch.tensor([*digest.digest(), uint8.shape[0]], dtype=torch.int64)
        if consume is not None:
            consume(uint8.to(device))
    table = torch.zeros(share.num_batches or 0, _DIGEST_BYTES + 1, dtype=torch.int64, device=device)
    for index, row in rows.items():
        table[index] = row.to(device)
    table = reduce_sum(table).cpu()
    return hashlib.sha256(table.numpy().tobytes()).hexdigest(), int(table[:, _DIGEST_BYTES].sum())


def kid_cache_key(fid_style_key: str, max_samples: int | None, seed: int) -> str:
    """The name of a KID real reservoir: the statistics key plus what decides which rows the reservoir keeps."""
    record = {"protocol": CACHE_PROTOCOL, "key": fid_style_key, "max_samples": max_samples, "seed": seed}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def save_tensors(path: str | os.PathLike[str], tensors: dict[str, Tensor]) -> None:
    """Write CPU tensors to an ``.npz`` with a SHA-256 of their names, dtypes, shapes and bytes, atomically.

    The file is written under a temporary name, flushed to disk and then moved into place (see
    ``write_atomically``): a reader never sees a partial file, and a failed write leaves nothing behind.

    Raises:
        OSError: the file cannot be written (read-only or full disk, ``path``'s folder is not a folder ...).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "t.npz"
        >>> save_tensors(path, {"n": torch.tensor(3), "x": torch.ones(2)})
        >>> load_tensors(path, ("n", "x"))["x"]
        tensor([1., 1.])
    """
    arrays = {name: tensor.detach().cpu().numpy() for name, tensor in tensors.items()}
    arrays["sha256"] = np.frombuffer(_digest(arrays, tuple(tensors)), dtype=np.uint8)
    write_atomically(path, lambda file: np.savez(file, **arrays))


def load_tensors(path: str | os.PathLike[str], names: tuple[str, ...]) -> dict[str, Tensor]:
    """Read the tensors ``names`` of a ``save_tensors`` file.

    The SHA-256 detects accidental corruption (a truncated or damaged file), not deliberate edits:
    it is stored unkeyed in the same file, so anyone who changes the tensors can recompute it.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: anything else wrong with the file, naming it: unreadable (empty, truncated, not an
            ``.npz``), a missing tensor, bytes that do not match the stored SHA-256, or an array torch
            cannot hold.
    """
    arrays = read_npz(path, (*names, "sha256"), what="cache file")
    if arrays.pop("sha256").tobytes() != _digest(arrays, names):
        raise ValueError(f"Cache file '{path}' does not match its checksum (a corrupt file)")
    try:
        return {name: torch.from_numpy(array.copy()) for name, array in arrays.items()}
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"Cache file '{path}' holds an array torch cannot read: {error}") from error


def _digest(arrays: dict[str, np.ndarray], names: tuple[str, ...]) -> bytes:
    digest = hashlib.sha256()
    for name in names:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.digest()


def real_cache_key(data_fingerprint: str, num_samples: int, provenance: dict[str, str], input_range: Any) -> str:
    """The name of a set of real statistics: a hash of everything that determines them.

    Example:
        >>> key = real_cache_key("ab" * 32, 10, {"extractor": "Net", "weights_sha256": "0" * 64}, (0.0, 1.0))
        >>> len(key)
        64
    """
    record = {
        "protocol": CACHE_PROTOCOL,
        "data": data_fingerprint,
        "num_samples": num_samples,
        "provenance": provenance,
        "input_range": None if input_range is None else [float(v) for v in input_range],
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def real_cache_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the statistics named ``key`` live in ``cache_dir``."""
    return Path(cache_dir) / f"real-statistics-{key}.npz"


def kid_cache_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the KID real reservoir named ``key`` lives in ``cache_dir``."""
    return Path(cache_dir) / f"real-kid-{key}.npz"


def root_cache_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the square root of the real covariance of the statistics named ``key`` lives in ``cache_dir``."""
    return Path(cache_dir) / f"real-root-{key}.npz"
