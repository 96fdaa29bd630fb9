"""Reference statistics of a Fréchet distance's real side, saved and loaded with their provenance.

A statistics file is a plain ``.npz`` (read with ``allow_pickle=False``) holding ``mu`` ``[D]`` and
``sigma`` ``[D, D]`` (float64, unbiased covariance, the names pytorch-fid and clean-fid use, so
either tool can read ours), ``num_samples``, a JSON ``provenance`` record, and a SHA-256
``checksum`` over all of them. The provenance names what produced the features — extractor,
a hash of its weights, layer, resize protocol, what the extractor received — so that statistics are
never compared with features of another network or protocol by accident. Files from pytorch-fid or clean-fid (only
``mu`` and ``sigma``) load with every provenance field ``"unknown"``.

The checksum detects accidental corruption (a damaged or partly written file). It is an unkeyed
hash stored in the same file, so it does not detect a deliberate edit: whoever changes the arrays
can recompute it. What is checked whatever the checksum says is that the contents are statistics
at all: real floating-point arrays of matching shapes with ``D >= 1``, finite, a symmetric positive
semi-definite covariance, and a well-formed provenance record.

Statistics files are one kind of *artifact*; every other array set that is cached or shipped (a KID real
reservoir, the k-NN radii of a real side ...) uses the same layout through :func:`save_artifact` and
:func:`load_artifact`: named arrays, ``num_samples``, the JSON ``provenance``, a ``kind`` naming what the
file holds, and a SHA-256 ``checksum`` over all of them. A statistics file may also hold ``sigma_root``,
the square root of its covariance, which spares a reader the eigendecomposition (``D³`` work, seconds at
``D = 2048`` on a CPU); it is covered by the checksum and checked by whoever uses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lightning_genmetrics._files import read_npz, write_npz

UNKNOWN = "unknown"
# The fields that must agree for two sets of statistics to be comparable.
COMPARED_FIELDS = ("extractor", "weights_sha256", "layer", "resize", "feature_input")
# Files written before `feature_input` existed do not record it, nor do extractors that do not report it: an unknown
# `feature_input` is not compared, and not warned about (the extractor's name is what tells whether it matters).
_WARNED_WHEN_UNKNOWN = ("extractor", "weights_sha256", "layer", "resize")
_TEXT_FIELDS = (*COMPARED_FIELDS, "dtype", "package_version")
# How the command line recorded what a `--feature` network received before `feature_input` existed: in the
# extractor's name, "SPEC (float input)" or "SPEC (uint8 input)".
_LEGACY_FEATURE_INPUT = re.compile(r"(?P<extractor>.+) \((?P<feature_input>float|uint8) input\)")
# What ``save_statistics`` writes beside ``mu`` and ``sigma``; files from other tools hold none of it.
_BOOKKEEPING = ("num_samples", "provenance", "checksum")
STATISTICS = "statistics"  # the artifact kind of a statistics file (a file without a `kind` array is one)
_OPTIONAL_STATISTICS = ("sigma_root",)
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
        feature_input: what the extractor received: ``"uint8"`` (RGB 0..255; every network that declares
            ``input_dtype = torch.uint8``, such as the FID InceptionV3, DINOv2 and CLIP), ``"float"`` (RGB in
            ``[0, 1]``) or ``"as_given"`` (the images as the caller passed them); ``"unknown"`` when not recorded
            (files written before the field existed), which is not compared. Files in which the command line
            recorded it in the extractor's name (``"nets.py:encoder (float input)"``) load with the two apart.

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
    feature_input: str = UNKNOWN

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
        """The compared fields this record does not know (an unknown ``feature_input`` aside: see the class)."""
        return [name for name in _WARNED_WHEN_UNKNOWN if getattr(self, name) == UNKNOWN]

    @classmethod
    def from_record(cls, fields: dict[str, Any]) -> Provenance:
        """The provenance a saved JSON record describes; fields this version does not know are ignored.

        A record without ``feature_input`` whose extractor's name ends in ``" (float input)"`` or
        ``" (uint8 input)"`` (how the command line recorded it before the field existed) gets the two apart.

        Raises:
            TypeError, ValueError: as the constructor.

        Example:
            >>> old = Provenance.from_record({"extractor": "nets.py:tiny (float input)", "layer": "output"})
            >>> old.extractor, old.feature_input
            ('nets.py:tiny', 'float')
        """
        known = {field.name for field in dataclasses.fields(cls)}
        values = {name: value for name, value in fields.items() if name in known}
        extractor = values.get("extractor")
        legacy = None
        if "feature_input" not in values and isinstance(extractor, str):
            legacy = _LEGACY_FEATURE_INPUT.fullmatch(extractor)
        if legacy is not None:
            values.update(legacy.groupdict())
        return cls(**values)


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

    Args:
        mu: the mean ``[D]``.
        sigma: the unbiased covariance ``[D, D]``.
        provenance: what produced them.
        sigma_root: optionally the symmetric square root of ``sigma`` (``FrechetDistance.real_sqrt()``), saved
            with the statistics so that a reader skips the eigendecomposition.
    """

    mu: Tensor
    sigma: Tensor
    provenance: Provenance = dataclasses.field(default_factory=Provenance)
    sigma_root: Tensor | None = None

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
        root = self.sigma_root
        if root is not None:
            # Shape and finiteness here; whether root @ root equals sigma is checked where it is used
            # (FrechetDistance.load_real_sqrt), which needs the matrix product anyway.
            if not isinstance(root, Tensor) or not root.is_floating_point():
                got = root.dtype if isinstance(root, Tensor) else type(root).__name__
                raise TypeError(f"Expected `sigma_root` to be None or a real floating-point tensor, got {got}.")
            if root.shape != sigma.shape:
                raise ValueError(f"Expected `sigma_root` of shape {tuple(sigma.shape)}, got {tuple(root.shape)}.")
            if not torch.isfinite(root).all():
                raise ValueError("Expected finite statistics, got NaN/Inf in `sigma_root`.")

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

    Identifies the weights an extractor computes with, whatever file they came from. A module that computes with
    another module's weights (an ``InceptionLayerView`` of a ``FIDInceptionV3``) names it as ``weights_module``; the
    fingerprint is that module's, so a view and a standalone network with the same weights have the same one.

    Example:
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> weights_fingerprint(nn.Linear(2, 2)) == weights_fingerprint(nn.Linear(2, 2))
        False
    """
    module = getattr(module, "weights_module", module)
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _checksum(kind: str, arrays: dict[str, np.ndarray], num_samples: np.ndarray, provenance: str) -> str:
    """SHA-256 over an artifact's arrays (names, dtypes, shapes, bytes), sample count, provenance and kind.

    A statistics file without optional arrays keeps the layout of the first format (the bytes of ``mu``,
    ``sigma``, ``num_samples``, then the provenance), so files written before artifacts existed still verify.
    """
    digest = hashlib.sha256()
    if kind == STATISTICS:
        for array in (arrays["mu"], arrays["sigma"], num_samples):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(provenance.encode())
        named = sorted(set(arrays) - {"mu", "sigma"})
    else:
        digest.update(f"kind:{kind};".encode())
        named = sorted(arrays)
    for name in named:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    if kind != STATISTICS:
        digest.update(np.ascontiguousarray(num_samples).tobytes())
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
    data = {"mu": mu, "sigma": sigma}
    if statistics.sigma_root is not None:
        data["sigma_root"] = statistics.sigma_root.detach().cpu().to(torch.float64).numpy()
    arrays = {
        **data,
        "num_samples": num_samples,
        "provenance": np.array(provenance),
        "checksum": np.array(_checksum(STATISTICS, data, num_samples, provenance)),
    }
    return write_npz(path, arrays)


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
    label = f"Statistics file '{path}'"
    kind = _kind(label, arrays)
    if kind != STATISTICS:
        raise ValueError(f"{label} holds a {kind!r} artifact, not statistics.")
    missing = [name for name in ("mu", "sigma") if name not in arrays]
    if missing:
        raise ValueError(f"{label} has no {missing} array(s); it holds {sorted(arrays)}.")
    for name in ("mu", "sigma", *_OPTIONAL_STATISTICS):
        if name in arrays and arrays[name].dtype.kind != "f":
            raise ValueError(f"{label}: expected `{name}` to be a real floating-point array, got {arrays[name].dtype}.")
    data = {name: arrays[name].astype(np.float64) for name in ("mu", "sigma", *_OPTIONAL_STATISTICS) if name in arrays}
    if set(arrays) & set(_BOOKKEEPING):
        # Any of our arrays makes the file ours: one missing is damage, not a foreign file's unknown provenance.
        provenance = _read_bookkeeping(label, arrays, STATISTICS, data)
    else:
        provenance = Provenance(dtype=str(arrays["sigma"].dtype))
    root = data.get("sigma_root")
    try:
        return ReferenceStatistics(
            torch.from_numpy(data["mu"]),
            torch.from_numpy(data["sigma"]),
            provenance,
            sigma_root=None if root is None else torch.from_numpy(root),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{label}: {error}") from error


@dataclass(frozen=True)
class Artifact:
    """The arrays of an artifact file with the provenance of what produced them (see :func:`load_artifact`)."""

    kind: str
    arrays: dict[str, Tensor]
    provenance: Provenance


def save_artifact(
    path: str | os.PathLike[str], arrays: dict[str, Tensor], *, kind: str, provenance: Provenance
) -> Path:
    """Write named tensors as an artifact of ``kind`` with their ``provenance``, atomically and durably.

    The layout is the statistics files' (``.npz``, no pickle, a SHA-256 ``checksum`` over everything), plus a
    ``kind`` naming the contents, so that a file is never read as something else. Written as
    :func:`save_statistics` writes (a reader sees the old file or the new one).

    Args:
        path: the file.
        arrays: the tensors (moved to the CPU); names must not be ``kind``, ``num_samples``, ``provenance``
            or ``checksum``.
        kind: what the file holds, e.g. ``"kid_reservoir"``; not ``"statistics"`` (use ``save_statistics``).
        provenance: what produced the arrays; its ``num_samples`` is the number of samples they summarise.

    Raises:
        ValueError: a reserved array name, an empty or reserved ``kind``.
        TypeError: an entry that is not a tensor.
        OSError: the file cannot be written.

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = save_artifact(f"{tmp}/r.npz", {"keys": torch.arange(3)}, kind="reservoir",
        ...                          provenance=Provenance(extractor="Net", num_samples=3))
        ...     loaded = load_artifact(path, kind="reservoir", names=("keys",))
        >>> loaded.arrays["keys"], loaded.provenance.extractor
        (tensor([0, 1, 2]), 'Net')
    """
    if not isinstance(kind, str) or not kind or kind == STATISTICS:
        raise ValueError(f"Expected `kind` to be a non-empty name other than {STATISTICS!r}, got {kind!r}.")
    reserved = sorted(set(arrays) & {"kind", *_BOOKKEEPING})
    if reserved:
        raise ValueError(f"Expected array names other than the bookkeeping names {reserved}.")
    for name, value in arrays.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"Expected `arrays[{name!r}]` to be a tensor, got {type(value).__name__}.")
    if not isinstance(provenance, Provenance):
        raise TypeError(f"Expected `provenance` to be a Provenance, got {type(provenance).__name__}.")
    data = {name: value.detach().cpu().numpy() for name, value in arrays.items()}
    count = provenance.num_samples
    num_samples = np.array(-1 if count is None else count, dtype=np.int64)
    text = json.dumps(dataclasses.asdict(provenance), sort_keys=True)
    content = {
        **data,
        "kind": np.array(kind),
        "num_samples": num_samples,
        "provenance": np.array(text),
        "checksum": np.array(_checksum(kind, data, num_samples, text)),
    }
    return write_npz(path, content)


def load_artifact(path: str | os.PathLike[str], *, kind: str, names: tuple[str, ...] | None = None) -> Artifact:
    """Read the arrays ``names`` of an artifact of ``kind`` written by :func:`save_artifact`, verified.

    Like the statistics files' checksum, the artifact's catches accidental corruption, not deliberate edits;
    what the arrays must satisfy beyond that is checked by whoever loads them (e.g.
    ``KernelInceptionDistance.load_real_reservoir``).

    Args:
        path: the file.
        kind: the kind it must hold (see :func:`save_artifact`).
        names: the arrays to return, each required; ``None`` (the default) returns every array the file holds
            beside its bookkeeping (for artifacts with optional arrays, e.g. a precision/recall reservoir's
            ``radii``). The checksum is verified over all of the file's arrays either way.

    Raises:
        FileNotFoundError: no such file.
        ValueError: anything wrong with a file that is there, naming the file: unreadable, another ``kind``,
            a missing array, a checksum that does not match, a malformed provenance, an array torch cannot hold.

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = save_artifact(f"{tmp}/r.npz", {"keys": torch.arange(3), "radii": torch.ones(3)},
        ...                          kind="reservoir", provenance=Provenance(num_samples=3))
        ...     sorted(load_artifact(path, kind="reservoir").arrays)
        ['keys', 'radii']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {kind} file at '{path}'.")
    arrays = read_npz(path, what=f"{kind} file")
    label = f"The {kind} file '{path}'"
    found = _kind(label, arrays)
    if found != kind:
        raise ValueError(f"{label} holds a {found!r} artifact, not {kind!r}.")
    missing = [name for name in (*(names or ()), *_BOOKKEEPING) if name not in arrays]
    if missing:
        raise ValueError(f"{label} has no {missing} array(s); it holds {sorted(arrays)}.")
    data = {name: value for name, value in arrays.items() if name not in {"kind", *_BOOKKEEPING}}
    provenance = _read_bookkeeping(label, arrays, kind, data)
    if names is None:
        names = tuple(sorted(data))
    try:
        tensors = {name: torch.from_numpy(data[name].copy()) for name in names}
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{label} holds an array torch cannot read: {error}") from error
    return Artifact(kind, tensors, provenance)


def _kind(label: str, arrays: dict[str, np.ndarray]) -> str:
    if "kind" not in arrays:
        return STATISTICS  # statistics files (ours before artifacts, pytorch-fid's, clean-fid's) have none
    return str(_scalar(label, arrays, "kind", "U", "a name"))


def _scalar(label: str, arrays: dict[str, np.ndarray], name: str, kinds: str, what: str) -> np.ndarray:
    array = arrays[name]
    if array.ndim != 0 or array.dtype.kind not in kinds:
        raise ValueError(
            f"{label}: expected `{name}` to be {what}, got an array of {array.dtype} with shape {array.shape}."
        )
    return array


def _read_bookkeeping(label: str, arrays: dict[str, np.ndarray], kind: str, data: dict[str, np.ndarray]) -> Provenance:
    """Verify the checksum over ``data`` and the bookkeeping arrays; return the provenance record."""
    absent = [name for name in _BOOKKEEPING if name not in arrays]
    if absent:
        raise ValueError(f"{label} has no {absent} array(s); it holds {sorted(arrays)}.")
    text = str(_scalar(label, arrays, "provenance", "U", "a JSON string"))
    num_samples = _scalar(label, arrays, "num_samples", "iu", "an integer").astype(np.int64)
    checksum = str(_scalar(label, arrays, "checksum", "U", "a SHA-256 hex string"))
    if checksum != _checksum(kind, data, num_samples, text):
        raise ValueError(f"{label} fails its checksum: it is corrupt.")
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{label}: `provenance` is not JSON ({error}).") from error
    if not isinstance(fields, dict):
        raise ValueError(f"{label}: expected `provenance` to be a JSON object, got {type(fields).__name__}.")
    try:
        provenance = Provenance.from_record(fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{label}: malformed `provenance`: {error}") from error
    expected = -1 if provenance.num_samples is None else provenance.num_samples
    if int(num_samples) != expected:
        raise ValueError(
            f"{label}: `num_samples` is {int(num_samples)} but the provenance says {provenance.num_samples}."
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
