"""Pinned weight files: find, download atomically, verify by SHA-256, load without executing pickled code.

Every pretrained file the library uses is described by a :class:`WeightsFile` and obtained through
:func:`fetch_weights`, which looks, in order, at an explicit path, an environment variable, the cache
directory, and finally the file's mirror URLs. Whatever the origin, the bytes are checked against the
pinned SHA-256 before the path is returned, and :func:`load_state_dict_file` reads them with
``torch.load(..., weights_only=True)``. Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import pickle
import re
import sys
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "INCEPTION_FID_WEIGHTS",
    "INCEPTION_WEIGHTS_ENV_VAR",
    "WeightsFile",
    "fetch_weights",
    "file_sha256",
    "inception_weights_path",
    "load_state_dict_file",
    "verify_sha256",
]

_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_CHUNK_BYTES = 1 << 20
_USER_AGENT = "lightning-genmetrics"
_DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WeightsFile:
    """A pinned weights file: its name, full SHA-256, where to download it, and where it comes from.

    Args:
        filename: Name of the file in the cache directory (a bare name, no directories).
        sha256: Full SHA-256 of the file's bytes, 64 lowercase hex digits.
        urls: Mirror URLs, tried in order; every one must serve exactly these bytes.
        source: Who produced the file and from what, for error messages and provenance.
        license: The license the file is distributed under.

    Raises:
        TypeError: If ``urls`` is not a tuple of strings.
        ValueError: If ``filename`` is not a bare file name, ``sha256`` is not 64 lowercase hex
            digits, or ``urls`` is empty.

    Example:
        >>> from lightning_genmetrics.features.weights import INCEPTION_FID_WEIGHTS
        >>> INCEPTION_FID_WEIGHTS.filename
        'weights-inception-2015-12-05-6726825d.pth'
        >>> INCEPTION_FID_WEIGHTS.sha256.startswith("6726825d"), len(INCEPTION_FID_WEIGHTS.sha256)
        (True, 64)
        >>> INCEPTION_FID_WEIGHTS.license
        'Apache-2.0'
    """

    filename: str
    sha256: str
    urls: tuple[str, ...]
    source: str
    license: str

    def __post_init__(self) -> None:
        if (
            not isinstance(self.filename, str)
            or self.filename in ("", ".", "..")
            or os.path.basename(self.filename) != self.filename
            or "/" in self.filename
        ):
            raise ValueError(f"Expected `filename` to be a bare file name, got {self.filename!r}.")
        if not isinstance(self.sha256, str) or not _SHA256_PATTERN.fullmatch(self.sha256):
            raise ValueError(f"Expected `sha256` to be 64 lowercase hex digits, got {self.sha256!r}.")
        if not isinstance(self.urls, tuple) or not all(isinstance(url, str) and url for url in self.urls):
            raise TypeError(f"Expected `urls` to be a tuple of non-empty strings, got {self.urls!r}.")
        if not self.urls:
            raise ValueError(f"Expected `urls` to hold at least one URL for {self.filename!r}, got ().")


# The FID InceptionV3 weights converted from TF's inception-2015-12-05 graph. torch-fidelity and
# pytorch-fid publish the same bytes under two names; the names carry only the 8-hex-digit prefix that
# torch.hub's `check_hash` verifies. The full SHA-256 is the value pinned for these bytes by projects
# that verify them in full: genforce/genforce `metrics/inception.py` (`_MODEL_URL_SHA256`, entry
# "tf_inception_v3", for the pytorch-fid URL) and several independent evaluation scripts that pin the
# torch-fidelity file `weights-inception-2015-12-05-6726825d.pth` to the same digest.
INCEPTION_FID_WEIGHTS = WeightsFile(
    filename="weights-inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    # pytorch-fid's release first, torch-fidelity's identical copy as the fallback mirror.
    urls=(
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    ),
    source=(
        "TensorFlow inception-2015-12-05 (the FID reference network), converted to PyTorch by "
        "pytorch-fid and republished by torch-fidelity v0.2.0"
    ),
    license="Apache-2.0",
)

INCEPTION_WEIGHTS_ENV_VAR = "LIGHTNING_GENMETRICS_INCEPTION_WEIGHTS"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 of a file's bytes as 64 lowercase hex digits, reading it in chunks.

    Args:
        path: The file to hash.

    Example:
        >>> import pathlib, tempfile
        >>> from lightning_genmetrics.features.weights import file_sha256
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     file = pathlib.Path(tmp) / "abc.bin"
        ...     _ = file.write_bytes(b"abc")
        ...     file_sha256(file)
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], sha256: str) -> None:
    """Check that a file's SHA-256 is ``sha256``.

    Args:
        path: The file to check.
        sha256: The expected SHA-256, 64 lowercase hex digits.

    Raises:
        ValueError: If the hashes differ; the message names the file, the expected and the actual hash.

    Example:
        >>> import pathlib, tempfile
        >>> from lightning_genmetrics.features.weights import verify_sha256
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     file = pathlib.Path(tmp) / "abc.bin"
        ...     _ = file.write_bytes(b"abc")
        ...     verify_sha256(file, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        ...     verify_sha256(file, "0" * 64)
        Traceback (most recent call last):
            ...
        ValueError: SHA-256 mismatch for '.../abc.bin': expected 0000...0000, got ba7816bf...15ad.
    """
    actual = file_sha256(path)
    if actual != sha256:
        raise ValueError(f"SHA-256 mismatch for '{path}': expected {sha256}, got {actual}.")


def fetch_weights(
    spec: WeightsFile,
    *,
    path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    env_var: str | None = None,
    verify: bool = True,
    progress: bool = False,
    timeout: float = _DEFAULT_TIMEOUT_S,
    path_argument: str = "weights_path",
) -> pathlib.Path:
    """Return the local path of a verified copy of ``spec``, downloading it into the cache if needed.

    The file is looked for, in order: at ``path``; at the path in the environment variable ``env_var``;
    as ``spec.filename`` in ``cache_dir``; and finally downloaded from each of ``spec.urls`` in turn.
    An explicit ``path`` or environment variable is final: if that file is missing or wrong, this raises
    rather than falling back. A download streams into a temporary file beside its destination, is
    verified, and only then renamed into place, so the cache never holds a partial or wrong file and
    concurrent processes (e.g. DDP ranks) never see one.

    Args:
        spec: The pinned file.
        path: A local copy given by the user; takes precedence over everything else.
        cache_dir: Directory to look in and download to. Default: ``torch.hub.get_dir()/checkpoints``,
            where torch-fidelity and torch.hub keep the same files.
        env_var: Name of an environment variable that may hold a local copy's path (ignored when
            unset or empty).
        verify: Check a user-given file (``path`` or ``env_var``) against ``spec.sha256``. Set it to
            ``False`` only for your own re-converted weights. Cached and downloaded files are always
            verified.
        progress: Report download progress on stderr.
        timeout: Seconds to wait on each network operation before giving up on a URL.
        path_argument: The caller's argument that takes a local copy, named in the offline error.

    Returns:
        The path of the verified file.

    Raises:
        FileNotFoundError: If ``path`` or the file named by ``env_var`` does not exist.
        ValueError: If a file's SHA-256 is not ``spec.sha256`` (a user-given or cached file, or the
            bytes served by a mirror when no mirror served the right ones); the message names the
            file, the expected and the actual hash.
        RuntimeError: If no URL could be downloaded (offline, HTTP error, truncated transfer) or the
            cache directory cannot be written; the message lists the file, its SHA-256, every URL
            with its error, the path to put the file at, and the alternatives.

    Example:
        >>> import pathlib, tempfile
        >>> from lightning_genmetrics.features.weights import WeightsFile, fetch_weights, file_sha256
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     local = pathlib.Path(tmp) / "my-weights.pth"
        ...     _ = local.write_bytes(b"not really weights")
        ...     spec = WeightsFile(
        ...         filename="my-weights.pth",
        ...         sha256=file_sha256(local),
        ...         urls=("https://example.invalid/my-weights.pth",),
        ...         source="an example",
        ...         license="CC0-1.0",
        ...     )
        ...     fetch_weights(spec, path=local) == local
        True
    """
    if path is not None:
        return _user_file(spec, pathlib.Path(path).expanduser(), "`path`", verify)
    env_value = os.environ.get(env_var, "") if env_var else ""
    if env_value:
        return _user_file(spec, pathlib.Path(env_value).expanduser(), f"environment variable {env_var}", verify)

    directory = pathlib.Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    destination = directory / spec.filename
    if destination.is_file():
        actual = file_sha256(destination)
        if actual != spec.sha256:
            raise ValueError(
                f"SHA-256 mismatch for cached weights '{destination}': expected {spec.sha256}, got {actual}. "
                "It is not the pinned file (corrupt, or a different file with the same name); delete it "
                "to download the right one."
            )
        return destination
    return _download(spec, destination, env_var, progress, timeout, path_argument)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Load a state dict of tensors from a file without executing any pickled code.

    The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``, which refuses
    any object other than tensors and plain containers. A checkpoint of the form
    ``{"state_dict": {...}, ...}`` is unwrapped.

    Args:
        path: A file written by ``torch.save``.

    Returns:
        A dict mapping parameter names to CPU tensors.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is corrupt or unreadable, holds objects the restricted loader refuses,
            or is not a non-empty mapping of ``str`` to ``Tensor``; the message names the file.

    Example:
        >>> import pathlib, tempfile
        >>> import torch
        >>> from lightning_genmetrics.features.weights import load_state_dict_file
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     file = pathlib.Path(tmp) / "tiny.pth"
        ...     torch.save({"state_dict": {"fc.weight": torch.ones(2, 3)}, "epoch": 7}, file)
        ...     state_dict = load_state_dict_file(file)
        >>> {name: tuple(tensor.shape) for name, tensor in state_dict.items()}
        {'fc.weight': (2, 3)}
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Weights file '{file}' does not exist.")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"Refusing to load weights file '{file}': the restricted loader (torch.load with "
            f"weights_only=True) rejected it ({_unpickler_reason(err)}). The file is corrupt, or holds "
            "Python objects besides tensors and plain containers, which are never unpickled here because "
            "doing so can run arbitrary code."
        ) from err
    except Exception as err:
        raise ValueError(
            f"Weights file '{file}' is corrupt or unreadable: {type(err).__name__}: {_first_line(err)}"
        ) from err

    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ValueError(
            f"Expected weights file '{file}' to hold a mapping of str to Tensor, got {type(loaded).__name__}."
        )
    if not loaded:
        raise ValueError(f"Weights file '{file}' holds an empty mapping, not a state dict.")
    for name, value in loaded.items():
        if not isinstance(name, str) or not isinstance(value, Tensor):
            raise ValueError(
                f"Expected weights file '{file}' to hold a mapping of str to Tensor, got entry {name!r} "
                f"of type {type(value).__name__}."
            )
    return dict(loaded)


def inception_weights_path(weights_path: str | os.PathLike[str] | None = None, *, verify: bool = True) -> pathlib.Path:
    """Return the path of the verified FID InceptionV3 weights, downloading them if needed.

    Looks at ``weights_path``, then the environment variable ``LIGHTNING_GENMETRICS_INCEPTION_WEIGHTS``,
    then ``torch.hub.get_dir()/checkpoints``, then downloads :data:`INCEPTION_FID_WEIGHTS`.

    Args:
        weights_path: A local copy of the weights; takes precedence over everything else.
        verify: Check a user-given file against the pinned SHA-256. Set it to ``False`` only for your
            own re-converted weights.

    Returns:
        The path of the verified file.

    Raises:
        FileNotFoundError: If the user-given file does not exist.
        ValueError: If a file's SHA-256 is not the pinned one.
        RuntimeError: If the weights are not available locally and cannot be downloaded; the message
            says which file is needed, its SHA-256, its URLs and where to put it.

    Example:
        >>> import pathlib, tempfile
        >>> from lightning_genmetrics.features.weights import inception_weights_path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     reconverted = pathlib.Path(tmp) / "my-inception.pth"
        ...     _ = reconverted.write_bytes(b"my own conversion")
        ...     inception_weights_path(reconverted, verify=False) == reconverted
        True
    """
    return fetch_weights(INCEPTION_FID_WEIGHTS, path=weights_path, env_var=INCEPTION_WEIGHTS_ENV_VAR, verify=verify)


def _default_cache_dir() -> pathlib.Path:
    return pathlib.Path(torch.hub.get_dir()) / "checkpoints"


def _user_file(spec: WeightsFile, file: pathlib.Path, given_by: str, verify: bool) -> pathlib.Path:
    if not file.is_file():
        raise FileNotFoundError(
            f"Weights file '{file}' given by {given_by} for {spec.filename} does not exist or is not a file."
        )
    if verify:
        actual = file_sha256(file)
        if actual != spec.sha256:
            raise ValueError(
                f"SHA-256 mismatch for weights file '{file}' given by {given_by} for {spec.filename}: "
                f"expected {spec.sha256}, got {actual}. If these are your own re-converted weights, "
                "pass verify=False."
            )
    return file


class _HashMismatchError(ValueError):
    pass


def _download(
    spec: WeightsFile,
    destination: pathlib.Path,
    env_var: str | None,
    progress: bool,
    timeout: float,
    path_argument: str,
) -> pathlib.Path:
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RuntimeError(
            _manual_instructions(spec, destination, env_var, path_argument, f"Cannot create cache directory: {err}")
        ) from err
    failures: list[str] = []
    last_error: BaseException | None = None
    mismatch = False
    for url in spec.urls:
        try:
            _download_url(url, spec, destination, progress, timeout)
        except (OSError, http.client.HTTPException, ValueError) as err:
            mismatch = mismatch or isinstance(err, _HashMismatchError)
            failures.append(f"  - {url}\n    {type(err).__name__}: {_first_line(err)}")
            last_error = err
        else:
            return destination
    message = _manual_instructions(spec, destination, env_var, path_argument, "Tried:\n" + "\n".join(failures))
    if mismatch:
        raise ValueError("A mirror served the wrong bytes. " + message) from last_error
    raise RuntimeError(message) from last_error


def _download_url(url: str, spec: WeightsFile, destination: pathlib.Path, progress: bool, timeout: float) -> None:
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".partial", dir=destination.parent)
    temp_file = pathlib.Path(temp_name)
    try:
        digest = hashlib.sha256()
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with os.fdopen(descriptor, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            header = response.headers.get("Content-Length")
            expected_bytes = int(header) if header and header.isdigit() else None
            received = 0
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress:
                    _report_progress(spec.filename, received, expected_bytes)
            if progress:
                sys.stderr.write("\n")
            # http.client returns a short body without error when the peer closes early.
            if expected_bytes is not None and received != expected_bytes:
                raise http.client.IncompleteRead(b"", expected_bytes - received)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise _HashMismatchError(
                f"SHA-256 mismatch for {spec.filename} downloaded from {url}: expected {spec.sha256}, got {actual}."
            )
        os.replace(temp_file, destination)
    except BaseException:
        temp_file.unlink(missing_ok=True)
        raise


def _report_progress(filename: str, received: int, expected_bytes: int | None) -> None:
    total = f" / {expected_bytes / 1e6:.1f}" if expected_bytes else ""
    sys.stderr.write(f"\rDownloading {filename}: {received / 1e6:.1f}{total} MB")
    sys.stderr.flush()


def _manual_instructions(
    spec: WeightsFile, destination: pathlib.Path, env_var: str | None, path_argument: str, details: str
) -> str:
    urls = "\n".join(f"  {url}" for url in spec.urls)
    env_line = f"  - set the environment variable {env_var}=/path/to/{spec.filename}, or\n" if env_var else ""
    return (
        f"Could not download weights file {spec.filename} (SHA-256 {spec.sha256}; {spec.source}; "
        f"license {spec.license}).\n{details}\n"
        f"Download it from one of:\n{urls}\n"
        f"check its SHA-256, and either\n"
        f"  - put it at {destination}, or\n"
        f"{env_line}"
        f"  - pass its path explicitly: {path_argument}='/path/to/{spec.filename}'."
    )


def _unpickler_reason(err: BaseException) -> str:
    # torch's own advice (allowlisting globals) does not apply here: this loader never widens the list.
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    return match.group(1).split(" Please ")[0].strip().rstrip(".") if match else _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else repr(err)
