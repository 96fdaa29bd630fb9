"""The callback's real side: one pass over the real images, sharded by batch, fingerprinted, cached on disk.

Rank ``r`` of ``W`` reads and extracts features only from batches ``r, r + W, r + 2W, ...`` of the real
dataloader's fixed order (see :mod:`~lightning_genmetrics.callbacks.sharding`): every batch is seen by
exactly one rank, with none of ``DistributedSampler``'s duplicate padding. Each batch's uint8 pixels are
hashed; the per-batch digests are summed over the ranks into one table (each row is non-zero on one rank
only), so the data fingerprint does not depend on the number of ranks.

What is cached uses the one artifact format of :mod:`lightning_genmetrics.stats`: statistics files (with the
covariance's square root once computed) and real reservoirs as artifacts of kind ``real_reservoir/<class>``, each
with the provenance of its extractor and a checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics.callbacks.sharding import RankShare
from lightning_genmetrics.features.preprocess import InputRange, batch_to_images, images_to_uint8
from lightning_genmetrics.stats import Provenance, load_artifact

# Bumped when anything that changes the statistics or the key (hashing, conversion) changes.
CACHE_PROTOCOL = "genmetrics-callback-real-v1"
_DIGEST_BYTES = 32
# What decides a reservoir's rows and what is cached with them, for the metrics that have these attributes.
_RESERVOIR_SETTINGS = ("max_samples", "seed", "k")


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


def reservoir_cache_key(statistics_key: str, metric: Any) -> str:
    """The name of a metric's cached real reservoir: the statistics key (data, extractor, range) plus the metric's
    class and what decides which rows the reservoir keeps (``max_samples``, ``seed``) and what is cached with them
    (``k``, the neighbour of the k-NN radii), for the attributes the metric has.

    Example:
        >>> from types import SimpleNamespace
        >>> key = reservoir_cache_key("ab" * 32, SimpleNamespace(max_samples=8, seed=0))
        >>> key == reservoir_cache_key("ab" * 32, SimpleNamespace(max_samples=9, seed=0))
        False
    """
    record = {
        "protocol": CACHE_PROTOCOL,
        "key": statistics_key,
        "metric": f"{type(metric).__module__}.{type(metric).__qualname__}",
        **{name: getattr(metric, name, None) for name in _RESERVOIR_SETTINGS},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def reservoir_kind(metric: Any) -> str:
    """The artifact kind of a metric's real reservoir: a file is never loaded into a metric of another class."""
    return f"real_reservoir/{type(metric).__qualname__}"


def reservoir_provenance(metric: Any, fields: dict[str, str], reservoir: dict[str, Tensor]) -> Provenance:
    """The provenance of a real reservoir: the extractor's ``fields`` and the number of real images it was drawn
    from (``None`` below 2, which a provenance record cannot hold)."""
    from lightning_genmetrics import __version__

    n = int(reservoir["n"])
    features = reservoir["features"]
    dtype = str(features.dtype).removeprefix("torch.") if features.is_floating_point() else "float32"
    return Provenance(**fields, dtype=dtype, num_samples=n if n >= 2 else None, package_version=__version__)


def load_reservoir(path: Path, *, kind: str, expected: Provenance) -> dict[str, Tensor]:
    """Read every array of a real-reservoir artifact of ``kind`` (a PRDC reservoir holds ``radii`` when it had
    ``k + 1`` rows), refusing one whose provenance differs from ``expected``'s compared fields.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: anything wrong with the file (see :func:`~lightning_genmetrics.stats.load_artifact`), or another
            provenance.
    """
    artifact = load_artifact(path, kind=kind, names=None)
    differences = expected.differences(artifact.provenance)
    if differences:
        raise ValueError(f"The cache file '{path}' was made by another extractor ({'; '.join(differences)}).")
    return artifact.arrays


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


def real_cache_path(cache_dir: str | os.PathLike[str], key: str, what: str = "statistics") -> Path:
    """Where the cached real side named ``key`` lives in ``cache_dir``: ``real-statistics-<key>.npz`` for statistics,
    ``real-<what>-<key>.npz`` for the reservoir of the metric named ``what`` (as a file name: other characters than
    letters, digits and ``_`` become ``_``).

    Example:
        >>> real_cache_path("cache", "ab", "precision/recall").name
        'real-precision_recall-ab.npz'
    """
    return Path(cache_dir) / f"real-{re.sub(r'[^A-Za-z0-9_]', '_', what)}-{key}.npz"
