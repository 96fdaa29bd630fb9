"""Reference statistics of a Fréchet distance's real side, saved and loaded with their provenance.

A statistics file is a plain ``.npz`` (read with ``allow_pickle=False``) holding ``mu`` ``[D]`` and
``sigma`` ``[D, D]`` (float64, unbiased covariance, the names pytorch-fid and clean-fid use, so
either tool can read ours), ``num_samples``, a JSON ``provenance`` record, and a SHA-256
``checksum`` over all of them. The provenance names what produced the features — extractor,
a hash of its weights, layer, resize protocol — so that statistics are never compared with
features of another network or protocol by accident. Files from pytorch-fid or clean-fid (only
``mu`` and ``sigma``) load with every provenance field ``"unknown"``.

The checksum detects accidental corruption (a damaged or partly written file). It is an unkeyed
hash stored in the same file, so it does not detect a deliberate edit: whoever changes the arrays
can recompute it. What is checked whatever the checksum says is that the contents are statistics
at all: real floating-point arrays of matching shapes with ``D >= 1``, finite, a symmetric positive
semi-definite covariance, and a well-formed provenance record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightning_genmetrics._files import read_npz, write_atomically

UNKNOWN = "unknown"
# The fields that must agree for two sets of statistics to be comparable.
COMPARED_FIELDS = ("extractor", "weights_sha256", "layer", "resize")
_TEXT_FIELDS = (*COMPARED_FIELDS, "dtype", "package_version")
# What ``save_statistics`` writes beside ``mu`` and ``sigma``; files from other tools hold none of it.
_BOOKKEEPING = ("num_samples", "provenance", "checksum")
# A covariance's eigenvalues may fall below zero by rounding, by at most about this fraction of the
# largest one for statistics computed in float64 (1e-15 is typical; see tests/test_stats.py). Statistics
# stored in a coarser dtype get the larger allowance sqrt(D)·ε·10 of that dtype's rounding.
_PSD_TOLERANCE = 1e-9
_SMALL_FOR_NUMPY = 256  # covariances up to this size are checked with numpy (see _check_positive_semidefinite)


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

    Raises:
        TypeError: a text field is not a string, or ``num_samples`` is neither ``None`` nor an integer.
        ValueError: ``num_samples`` below 2 (a covariance needs two samples), or a ``dtype`` that names
            no floating-point type.
    """

    extractor: str = UNKNOWN
    weights_sha256: str = UNKNOWN
    layer: str = UNKNOWN
    resize: str = UNKNOWN
    dtype: str = "float64"
    num_samples: int | None = None
    package_version: str = UNKNOWN

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"Expected provenance field `{name}` to be a string, got {value!r}.")
        count = self.num_samples
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, numbers.Integral):
                raise TypeError(f"Expected provenance field `num_samples` to be an integer or None, got {count!r}.")
            if count < 2:
                raise ValueError(f"Expected provenance field `num_samples` to be at least 2, got {count}.")
            object.__setattr__(self, "num_samples", int(count))  # numpy integers would not survive json.dumps
        try:
            floating = np.dtype(self.dtype).kind == "f"
        except (TypeError, ValueError):
            floating = False
        if not floating:
            raise ValueError(f"Expected provenance field `dtype` to name a floating-point dtype, got {self.dtype!r}.")

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

    Raises:
        TypeError: ``mu`` or ``sigma`` is not a real floating-point tensor, or ``provenance`` not a ``Provenance``.
        ValueError: shapes other than ``[D]`` and ``[D, D]`` with ``D >= 1``, NaN/Inf, or a ``sigma`` that
            is not symmetric positive semi-definite (an eigenvalue below ``-tolerance · λ_max``, where the
            tolerance covers rounding: ``1e-9``, or ``10·sqrt(D)·ε`` of ``provenance.dtype`` if larger).

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
        if not isinstance(self.provenance, Provenance):
            raise TypeError(f"Expected `provenance` to be a Provenance, got {type(self.provenance).__name__}.")
        for name, value in (("mu", mu), ("sigma", sigma)):
            if not isinstance(value, Tensor) or not value.is_floating_point():
                got = value.dtype if isinstance(value, Tensor) else type(value).__name__
                raise TypeError(f"Expected `{name}` to be a real floating-point tensor, got {got}.")
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(
                f"Expected statistics `mu` [D] and `sigma` [D, D], got shapes {tuple(mu.shape)} and "
                f"{tuple(sigma.shape)}."
            )
        if mu.shape[0] == 0:
            raise ValueError("Expected statistics of at least one feature, got D = 0 (`mu` and `sigma` are empty).")
        for name, value in (("mu", mu), ("sigma", sigma)):
            if not torch.isfinite(value).all():
                raise ValueError(f"Expected finite statistics, got NaN/Inf in `{name}`.")
        if not torch.allclose(sigma, sigma.T, rtol=1e-10, atol=1e-12 * float(sigma.abs().max())):
            raise ValueError("Expected a symmetric covariance `sigma`, got an asymmetric matrix.")
        eps = max(float(np.finfo(np.dtype(self.provenance.dtype)).eps), torch.finfo(sigma.dtype).eps)
        _check_positive_semidefinite(sigma, max(_PSD_TOLERANCE, 10 * math.sqrt(sigma.shape[0]) * eps))

    @property
    def num_features(self) -> int:
        """The dimension ``D``."""
        return self.mu.shape[0]


def _check_positive_semidefinite(sigma: Tensor, tolerance: float) -> None:
    """Refuse a symmetric ``sigma`` with an eigenvalue below ``-tolerance · λ_max``.

    A Cholesky factorisation of ``sigma + tolerance · max(diag) · I`` (max(diag) <= λ_max) succeeds for
    every accepted matrix that is not at the edge, at a tenth to a twentieth of an eigensolve's cost
    (0.1–0.6 s against 2–12 s at D = 2048 on a busy 2-core CPU); only when it fails do the eigenvalues
    decide, and name the culprit.
    """
    sigma = sigma.detach().to(torch.float64)
    shift = tolerance * max(float(sigma.diagonal().max()), 0.0)
    if sigma.device.type == "cpu" and sigma.shape[0] <= _SMALL_FOR_NUMPY:
        # torch's threaded LAPACK takes ~15 ms to wake on a busy CPU, numpy's 40 µs at this size.
        matrix = sigma.numpy()
        try:
            np.linalg.cholesky(matrix + shift * np.eye(matrix.shape[0]))
            return
        except np.linalg.LinAlgError:
            eigenvalues = np.linalg.eigvalsh(matrix)
    else:
        try:
            torch.linalg.cholesky(sigma + shift * torch.eye(sigma.shape[0], dtype=sigma.dtype, device=sigma.device))
            return
        except torch.linalg.LinAlgError:
            eigenvalues = torch.linalg.eigvalsh(sigma).cpu().numpy()
    lowest, highest = float(eigenvalues[0]), float(eigenvalues[-1])
    if lowest < -tolerance * max(highest, 0.0):
        raise ValueError(
            f"Expected a positive semi-definite covariance `sigma`, got the eigenvalue {lowest:.6g} (the largest "
            f"is {highest:.6g}; rounding explains at most -{tolerance:.1g} times the largest)."
        )


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
    """Write ``statistics`` to an ``.npz`` file, atomically and durably.

    The file is written under a temporary name unique to this host, process and thread, flushed to
    disk, then moved onto ``path``: a reader sees the old file or the new one, never a partial file,
    and a failed write leaves no temporary file behind and an existing ``path`` untouched.

    Raises:
        OSError: the file cannot be written (a read-only or full disk, no permission, ``path``'s folder
            missing or a regular file).

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
    arrays = {
        "mu": mu,
        "sigma": sigma,
        "num_samples": num_samples,
        "provenance": np.array(provenance),
        "checksum": np.array(_checksum(mu, sigma, num_samples, provenance)),
    }
    return write_atomically(path, lambda file: np.savez(file, **arrays))


def load_statistics(path: str | os.PathLike[str]) -> ReferenceStatistics:
    """Read statistics saved by :func:`save_statistics`, or pytorch-fid / clean-fid ``mu``/``sigma`` files.

    The checksum catches accidental corruption only (it is unkeyed: an edit can recompute it); the
    contents are validated either way, as :class:`ReferenceStatistics` and :class:`Provenance` require.

    Raises:
        FileNotFoundError: no such file.
        ValueError: anything wrong with a file that is there, naming the file and the field: not a
            readable ``.npz`` (empty, truncated, a ``.npy`` or pickle, corrupt), missing ``mu``/``sigma``,
            arrays that are not real floating point (complex, integer, text), bad shapes or ``D = 0``,
            NaN/Inf, a covariance that is not symmetric positive semi-definite, a checksum that does
            not match, one of our bookkeeping arrays (``num_samples``, ``provenance``, ``checksum``)
            missing while others are there, or a malformed provenance record or sample count.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No statistics file at '{path}'.")
    arrays = read_npz(path, what="statistics file")
    missing = [name for name in ("mu", "sigma") if name not in arrays]
    if missing:
        raise ValueError(f"Statistics file '{path}' has no {missing} array(s); it holds {sorted(arrays)}.")
    for name in ("mu", "sigma"):
        if arrays[name].dtype.kind != "f":
            raise ValueError(
                f"Statistics file '{path}': expected `{name}` to be a real floating-point array, got "
                f"{arrays[name].dtype}."
            )
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    if set(arrays) & set(_BOOKKEEPING):
        # Any of our arrays makes the file ours: one missing is damage, not a foreign file's unknown provenance.
        absent = [name for name in _BOOKKEEPING if name not in arrays]
        if absent:
            raise ValueError(f"Statistics file '{path}' has no {absent} array(s); it holds {sorted(arrays)}.")
        provenance = _read_provenance(path, arrays, mu, sigma)
    else:
        provenance = Provenance(dtype=str(arrays["sigma"].dtype))
    try:
        return ReferenceStatistics(torch.from_numpy(mu), torch.from_numpy(sigma), provenance)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Statistics file '{path}': {error}") from error


def _scalar(path: Path, arrays: dict[str, np.ndarray], name: str, kinds: str, what: str) -> np.ndarray:
    array = arrays[name]
    if array.ndim != 0 or array.dtype.kind not in kinds:
        raise ValueError(
            f"Statistics file '{path}': expected `{name}` to be {what}, got an array of {array.dtype} with shape "
            f"{array.shape}."
        )
    return array


def _read_provenance(path: Path, arrays: dict[str, np.ndarray], mu: np.ndarray, sigma: np.ndarray) -> Provenance:
    text = str(_scalar(path, arrays, "provenance", "U", "a JSON string"))
    num_samples = _scalar(path, arrays, "num_samples", "iu", "an integer").astype(np.int64)
    checksum = str(_scalar(path, arrays, "checksum", "U", "a SHA-256 hex string"))
    if checksum != _checksum(mu, sigma, num_samples, text):
        raise ValueError(f"Statistics file '{path}' fails its checksum: it is corrupt.")
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Statistics file '{path}': `provenance` is not JSON ({error}).") from error
    if not isinstance(fields, dict):
        raise ValueError(
            f"Statistics file '{path}': expected `provenance` to be a JSON object, got {type(fields).__name__}."
        )
    known = {field.name for field in dataclasses.fields(Provenance)}
    try:
        provenance = Provenance(**{name: value for name, value in fields.items() if name in known})
    except (TypeError, ValueError) as error:
        raise ValueError(f"Statistics file '{path}': malformed `provenance`: {error}") from error
    expected = -1 if provenance.num_samples is None else provenance.num_samples
    if int(num_samples) != expected:
        raise ValueError(
            f"Statistics file '{path}': `num_samples` is {int(num_samples)} but the provenance says "
            f"{provenance.num_samples}."
        )
    return provenance


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
