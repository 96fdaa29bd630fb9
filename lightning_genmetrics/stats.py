"""Reference statistics of a Fréchet distance's real side, saved and loaded with their provenance.

A statistics file is a plain ``.npz`` (read with ``allow_pickle=False``) holding ``mu`` ``[D]`` and
``sigma`` ``[D, D]`` (float64, unbiased covariance, the names pytorch-fid and clean-fid use, so
either tool can read ours), ``num_samples``, a JSON ``provenance`` record, and a SHA-256
``checksum`` over all of them. The provenance names what produced the features — extractor,
a hash of its weights, layer, resize protocol — so that statistics are never compared with
features of another network or protocol by accident. Files from pytorch-fid or clean-fid (only
``mu`` and ``sigma``) load with every provenance field ``"unknown"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

UNKNOWN = "unknown"
# The fields that must agree for two sets of statistics to be comparable.
COMPARED_FIELDS = ("extractor", "weights_sha256", "layer", "resize")


@dataclass(frozen=True)
class Provenance:
    """What produced a set of statistics.

    Args:
        extractor: the feature extractor's name (``"FIDInceptionV3"`` or a module's class name).
        weights_sha256: SHA-256 of the extractor's parameters and buffers (see ``weights_fingerprint``).
        layer: the layer the features come from.
        resize: the resize protocol in front of the extractor (``"none"`` if it has none).
        dtype: the statistics' dtype.
        num_samples: how many samples they summarise (``None`` when unknown).
        package_version: the ``lightning_genmetrics`` version that wrote them.
    """

    extractor: str = UNKNOWN
    weights_sha256: str = UNKNOWN
    layer: str = UNKNOWN
    resize: str = UNKNOWN
    dtype: str = "float64"
    num_samples: int | None = None
    package_version: str = UNKNOWN

    def differences(self, other: Provenance) -> list[str]:
        """The compared fields whose values are known on both sides and differ, as ``"field: a != b"``."""
        out = []
        for name in COMPARED_FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if UNKNOWN not in (mine, theirs) and mine != theirs:
                out.append(f"{name}: {mine!r} != {theirs!r}")
        return out

    def unknown_fields(self) -> list[str]:
        """The compared fields this record does not know."""
        return [name for name in COMPARED_FIELDS if getattr(self, name) == UNKNOWN]


@dataclass(frozen=True)
class ReferenceStatistics:
    """Mean and covariance of a set of feature vectors, with their provenance.

    Example:
        >>> import torch
        >>> stats = ReferenceStatistics(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
        >>> stats.num_features, stats.provenance.extractor
        (2, 'unknown')
    """

    mu: Tensor
    sigma: Tensor
    provenance: Provenance = dataclasses.field(default_factory=Provenance)

    def __post_init__(self) -> None:
        mu, sigma = self.mu, self.sigma
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(
                f"Expected statistics `mu` [D] and `sigma` [D, D], got shapes {tuple(mu.shape)} and "
                f"{tuple(sigma.shape)}."
            )
        if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
            raise ValueError("Expected finite statistics, got NaN/Inf in `mu` or `sigma`.")
        if not torch.allclose(sigma, sigma.T, rtol=1e-10, atol=1e-12 * float(sigma.abs().max())):
            raise ValueError("Expected a symmetric covariance `sigma`, got an asymmetric matrix.")

    @property
    def num_features(self) -> int:
        """The dimension ``D``."""
        return self.mu.shape[0]


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over a module's state-dict tensors (names, dtypes, shapes and bytes, in order).

    Identifies the weights an extractor computes with, whatever file they came from.

    Example:
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> weights_fingerprint(nn.Linear(2, 2)) == weights_fingerprint(nn.Linear(2, 2))
        False
    """
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _checksum(mu: np.ndarray, sigma: np.ndarray, num_samples: np.ndarray, provenance: str) -> str:
    digest = hashlib.sha256()
    for array in (mu, sigma, num_samples):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(provenance.encode())
    return digest.hexdigest()


def save_statistics(path: str | os.PathLike[str], statistics: ReferenceStatistics) -> Path:
    """Write ``statistics`` to an ``.npz`` file (written to a temporary name, then moved into place).

    Example:
        >>> import tempfile, torch
        >>> stats = ReferenceStatistics(torch.ones(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     loaded = load_statistics(save_statistics(f"{tmp}/ref.npz", stats))
        >>> torch.equal(loaded.mu, stats.mu), loaded.provenance == stats.provenance
        (True, True)
    """
    path = Path(path)
    mu = statistics.mu.detach().cpu().to(torch.float64).numpy()
    sigma = statistics.sigma.detach().cpu().to(torch.float64).numpy()
    count = statistics.provenance.num_samples
    num_samples = np.array(-1 if count is None else count, dtype=np.int64)
    provenance = json.dumps(dataclasses.asdict(statistics.provenance), sort_keys=True)
    checksum = _checksum(mu, sigma, num_samples, provenance)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(
            temporary,
            mu=mu,
            sigma=sigma,
            num_samples=num_samples,
            provenance=np.array(provenance),
            checksum=np.array(checksum),
        )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_statistics(path: str | os.PathLike[str]) -> ReferenceStatistics:
    """Read statistics saved by :func:`save_statistics`, or pytorch-fid / clean-fid ``mu``/``sigma`` files.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable ``.npz``, missing ``mu``/``sigma``, bad shapes or values, or a
            checksum that does not match the contents (a corrupt or edited file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No statistics file at '{path}'.")
    try:
        # An open file of our own: np.load leaves its own handle open when the file is not an archive.
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as error:  # zipfile, OSError, pickle refusal: all mean "not a statistics file"
        raise ValueError(f"Cannot read statistics file '{path}': {error}") from error
    missing = [name for name in ("mu", "sigma") if name not in arrays]
    if missing:
        raise ValueError(f"Statistics file '{path}' has no {missing} array(s); it holds {sorted(arrays)}.")
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    if "provenance" in arrays:
        provenance = _read_provenance(path, arrays, mu, sigma)
    else:
        provenance = Provenance(dtype=str(arrays["sigma"].dtype))
    try:
        return ReferenceStatistics(torch.from_numpy(mu), torch.from_numpy(sigma), provenance)
    except ValueError as error:
        raise ValueError(f"Statistics file '{path}': {error}") from error


def _read_provenance(path: Path, arrays: dict[str, np.ndarray], mu: np.ndarray, sigma: np.ndarray) -> Provenance:
    text = str(arrays["provenance"])
    num_samples = arrays.get("num_samples", np.array(-1, dtype=np.int64)).astype(np.int64)
    if "checksum" not in arrays or _checksum(mu, sigma, num_samples, text) != str(arrays["checksum"]):
        raise ValueError(f"Statistics file '{path}' fails its checksum: it is corrupt or was edited.")
    fields = json.loads(text)
    known = {field.name for field in dataclasses.fields(Provenance)}
    return Provenance(**{name: value for name, value in fields.items() if name in known})


def check_compatible(expected: Provenance, given: Provenance, *, what: str, allow_mismatch: bool = False) -> None:
    """Refuse statistics whose provenance differs from what they will be compared with.

    Raises:
        ValueError: a compared field differs (unless ``allow_mismatch``), naming each field.

    Warns:
        UserWarning: fields that cannot be checked because one side does not know them.
    """
    differences = expected.differences(given)
    if differences and not allow_mismatch:
        raise ValueError(
            f"The {what} were produced differently from the features they would be compared with "
            f"({'; '.join(differences)}). Recompute them, or pass allow_provenance_mismatch=True to compare anyway."
        )
    unknown = sorted(set(expected.unknown_fields()) | set(given.unknown_fields()))
    if unknown:
        warnings.warn(
            f"Cannot check the {what}' provenance fields {unknown} (unknown, e.g. a pytorch-fid/clean-fid file); "
            "make sure they come from the same network and resize protocol.",
            UserWarning,
            stacklevel=3,
        )
