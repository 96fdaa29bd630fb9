"""Durable atomic writes and fault-tolerant ``.npz`` reads for the files the package keeps on disk.

A write goes to a temporary file beside the target, is flushed and ``fsync``-ed, and only then
``os.replace``-d onto the target, so a crash, a full disk or a second writer never leaves a partial
file under the target's name. A read turns every way a present file can be bad into a ``ValueError``
naming it, so a caller that falls back on recomputation needs to catch one exception type.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import struct
import threading
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local header (30 bytes), lengths last
_DATA_DESCRIPTOR = 0x08  # a member whose sizes follow its data (a stream writer's zip; not np.savez's)
_DESCRIPTOR_SIZES = (12, 16, 20, 24)  # with or without its signature, 32- or 64-bit sizes
# What a temporary file's name keeps of the target's name and the host name: under NAME_MAX (255) in all.
_NAME_CHARS = 150
_HOST_CHARS = 32


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Create or replace the file ``path`` with what ``write`` writes into an open binary file, all or nothing.

    The temporary file's name is unique per host, process and thread (plus a random token), so
    concurrent writers of one target never share a temporary file: the last ``os.replace`` wins and
    the target always holds one writer's complete output.

    Raises:
        OSError: the file cannot be written (read-only file system, no permission, full disk, the
            target's directory missing or a regular file ...). The temporary file is removed and an
            existing target is left as it was.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.bin"
        >>> write_atomically(target, lambda file: file.write(b"abc")).read_bytes()
        b'abc'
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name[:_NAME_CHARS]}.{_writer_id()}.tmp")
    try:
        with open(temporary, "xb") as file:
            try:
                write(file)
            except OSError:
                raise
            except Exception as error:
                # zipfile/numpy may report a failed write as their own error; the cause is the I/O fault.
                cause = _os_error_in_chain(error)
                if cause is None:
                    raise
                raise OSError(cause.errno, cause.strerror or str(cause), str(temporary)) from error
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> Path:
    """Create or replace the ``.npz`` archive ``path`` holding ``arrays`` (no pickle), all or nothing.

    The layout is ``np.savez``'s (one ``NAME.npy`` member per array), written as :func:`write_atomically`
    writes. The archive is written here rather than by ``np.savez``: before numpy 2, ``np.savez`` leaves
    its ``ZipFile`` open when a write fails part-way, and that object's finaliser later writes to the
    closed file and raises at an arbitrary point of the program. Here the archive and its member are
    closed on every path, before the file is.

    Raises:
        OSError: the file cannot be written, as for :func:`write_atomically`.
        ValueError: an object array (it would need pickle).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.npz"
        >>> read_npz(write_npz(target, {"x": np.arange(3), "name": np.array("net")}))
        {'x': array([0, 1, 2]), 'name': array('net', dtype='<U3')}
    """

    def write(file: BinaryIO) -> None:
        with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                # force_zip64 as np.savez does: the member's size is not known when its header is written.
                with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    return write_atomically(path, write)


def read_npz(
    path: str | os.PathLike[str], names: tuple[str, ...] | None = None, *, what: str = "file"
) -> dict[str, np.ndarray]:
    """The arrays ``names`` (default: all) of the ``.npz`` file ``path``, read without pickle.

    Args:
        path: the file.
        names: the arrays to read; all of them when ``None``.
        what: what the file is, for the error message (``"statistics file"``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: any other failure, naming ``path``: an empty, truncated or corrupt file, a ``.npy``
            or pickle instead of an archive, a missing array, a file that cannot be opened.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.npz"
        >>> _ = write_npz(target, {"x": np.arange(3)})
        >>> read_npz(target)["x"]
        array([0, 1, 2])
    """
    try:
        # An open file of our own: np.load leaves its own handle open when the file is not an archive.
        with open(path, "rb") as file:
            data = np.load(file, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError(f"it holds a single {type(data).__name__}, not an .npz archive")
            with data:
                _check_layout(data.zip, file)
                missing = [name for name in names or () if name not in data.files]
                if missing:
                    raise ValueError(f"it has no array(s) {missing}; it holds {sorted(data.files)}")
                return {name: data[name] for name in (data.files if names is None else names)}
    except FileNotFoundError:
        raise
    # Everything numpy, zipfile and zlib raise for bad bytes (EOFError, BadZipFile, zlib.error, KeyError,
    # pickle refusal, a header claiming an impossible allocation ...) and I/O errors all mean "unusable".
    except Exception as error:
        reason = str(error) if type(error) is ValueError else f"{type(error).__name__}: {error}"
        raise ValueError(f"Cannot read {what} '{path}': {reason}") from error


def _check_layout(archive: zipfile.ZipFile, file: BinaryIO) -> None:
    """Refuse an archive whose directory does not account for every byte before it, as ``np.savez`` writes it.

    zipfile reads only what the central directory lists; damage to one entry there (say its comment
    length) can hide the entries after it without an error, and a file of ours would lose its checksum.
    """
    position, slack = 0, (0,)
    for info in sorted(archive.infolist(), key=lambda entry: entry.header_offset):
        if info.header_offset - position not in slack:
            raise ValueError(f"the archive's directory does not account for bytes {position}..{info.header_offset}")
        file.seek(info.header_offset)
        header = file.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise ValueError(f"no member header where the directory puts '{info.filename}'")
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
        position = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length + info.compress_size
        slack = _DESCRIPTOR_SIZES if info.flag_bits & _DATA_DESCRIPTOR else (0,)
    if archive.start_dir - position not in slack:
        raise ValueError(f"the archive's directory does not account for bytes {position}..{archive.start_dir}")


def _writer_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:_HOST_CHARS]
    return f"{host}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}"


def _os_error_in_chain(error: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the OS can ``fsync`` a directory (not on Windows, nor on some file systems).

    The target is already complete under its name, so a refusal here is not an error of the write.
    """
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
