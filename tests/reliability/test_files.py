"""Cache and statistics files: writes that are atomic and durable, reads that fail only with ``ValueError``.

Faults are injected where the operating system would raise them (``open``, ``write``, ``fsync``,
``os.replace``) or produced for real (a folder that is a regular file, a file-size limit); the tests
run as root, where a read-only ``chmod`` blocks nothing.
"""

import errno
import gc
import io
import os
import re
import resource
import signal
import socket
import sys
import threading
import zipfile

import numpy as np
import pytest
import torch

from lightning_genmetrics import _files
from lightning_genmetrics._files import read_npz, write_atomically
from lightning_genmetrics.stats import (
    Provenance,
    ReferenceStatistics,
    load_artifact,
    load_statistics,
    save_artifact,
    save_statistics,
)


def _statistics(rng, d=4, n=30):
    x = rng.standard_normal((n, d))
    provenance = Provenance(extractor="Net", layer="2048", num_samples=n)
    return ReferenceStatistics(torch.from_numpy(x.mean(0)), torch.from_numpy(np.cov(x, rowvar=False)), provenance)


def _tensors(rng):
    return {"n": torch.tensor(int(rng.integers(2, 100))), "features": torch.from_numpy(rng.standard_normal((7, 3)))}


def _save_statistics(path, rng):
    save_statistics(path, _statistics(rng))


def _save_tensors(path, tensors):
    save_artifact(path, tensors, kind="reservoir", provenance=Provenance(extractor="Net"))


def _load_tensors(path, names):
    return load_artifact(path, kind="reservoir", names=names).arrays


def _save_artifact(path, rng):
    _save_tensors(path, _tensors(rng))


WRITERS = {"save_statistics": _save_statistics, "save_artifact": _save_artifact}


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


class _DiskFillsUp(io.FileIO):
    """A file on a disk with ``room`` bytes left: the write that crosses it stores what fits and raises ENOSPC."""

    def __init__(self, path, mode, room):
        super().__init__(path, mode.replace("b", ""))
        self.room = room

    def write(self, data):
        data = memoryview(data).cast("B")
        if len(data) > self.room:
            super().write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return super().write(data)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_write_replaces_the_target_whole_and_leaves_only_it(rng, tmp_path, writer):
    target = tmp_path / "target.npz"
    WRITERS[writer](target, rng)
    first = target.read_bytes()
    WRITERS[writer](target, rng)
    assert _listing(tmp_path) == ["target.npz"]
    assert target.read_bytes() != first  # new random contents replaced the old file


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.99])
def test_a_full_disk_part_way_leaves_the_old_target_and_no_temporary(rng, tmp_path, monkeypatch, writer, fraction):
    target = tmp_path / "target.npz"
    WRITERS[writer](target, rng)
    old = target.read_bytes()
    room = int(fraction * len(old))
    opened, unraisable = [], []

    def open_on_a_full_disk(path, mode):
        opened.append(_DiskFillsUp(path, mode, room))
        return opened[-1]

    monkeypatch.setattr(_files, "open", open_on_a_full_disk, raising=False)
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(OSError, match=os.strerror(errno.ENOSPC)) as raised:
        WRITERS[writer](target, rng)
    assert raised.value.errno == errno.ENOSPC
    # Nothing the write opened is left to its finaliser: an archive left open (np.savez before numpy 2) would
    # write to the closed file when collected and raise there, far from the write.
    del raised
    gc.collect()
    assert [hook.exc_value for hook in unraisable] == []
    assert len(opened) == 1
    assert opened[0].closed
    assert _listing(tmp_path) == ["target.npz"]
    assert target.read_bytes() == old


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ semantics are Linux's")
def test_a_real_file_size_limit_part_way_raises_oserror_and_cleans_up(rng, tmp_path):
    # The kernel itself refuses the write that crosses the limit (EFBIG): no injected fault.
    target = tmp_path / "target.npz"
    big = ReferenceStatistics(torch.zeros(300, dtype=torch.float64), torch.eye(300, dtype=torch.float64))
    save_statistics(target, big)
    old = target.read_bytes()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(old) // 2, limits[1]))
        with pytest.raises(OSError, match=os.strerror(errno.EFBIG)) as raised:
            save_statistics(target, _statistics(rng, d=300, n=400))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert raised.value.errno == errno.EFBIG
    assert _listing(tmp_path) == ["target.npz"]
    assert target.read_bytes() == old


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_folder_raises_oserror_and_changes_nothing(rng, tmp_path, monkeypatch, writer, code):
    target = tmp_path / "target.npz"
    WRITERS[writer](target, rng)
    old = target.read_bytes()

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(_files, "open", refuse, raising=False)  # creating the temporary file is refused
    with pytest.raises(OSError, match=os.strerror(code)) as raised:
        WRITERS[writer](target, rng)
    assert raised.value.errno == code
    monkeypatch.undo()
    monkeypatch.setattr(os, "replace", refuse)  # or only the rename onto the target
    with pytest.raises(OSError, match=os.strerror(code)) as raised:
        WRITERS[writer](target, rng)
    assert raised.value.errno == code
    assert _listing(tmp_path) == ["target.npz"]
    assert target.read_bytes() == old


@pytest.mark.parametrize("writer", WRITERS)
def test_a_folder_that_is_a_regular_file_raises_oserror(rng, tmp_path, writer):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_bytes(b"a file where the cache folder should be")
    with pytest.raises(NotADirectoryError):
        WRITERS[writer](not_a_folder / "target.npz", rng)
    assert not_a_folder.read_bytes() == b"a file where the cache folder should be"


@pytest.mark.parametrize("writer", WRITERS)
def test_a_target_that_is_a_folder_raises_oserror_and_cleans_up(rng, tmp_path, writer):
    (tmp_path / "target.npz").mkdir()
    with pytest.raises(IsADirectoryError):
        WRITERS[writer](tmp_path / "target.npz", rng)
    assert _listing(tmp_path) == ["target.npz"]


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append("fsync-folder" if os.path.isdir(f"/proc/self/fd/{descriptor}") else "fsync-file")
        real_fsync(descriptor)

    def replace(source, target):
        events.append("replace")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(tmp_path / "out.bin", lambda file: file.write(b"payload"))
    expected = ["fsync-file", "replace"] + (["fsync-folder"] if sys.platform == "linux" else [])
    assert events == expected


def test_a_failed_fsync_leaves_the_old_target(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(descriptor):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="Input/output error"):
        write_atomically(target, lambda file: file.write(b"new"))
    assert _listing(tmp_path) == ["out.bin"]
    assert target.read_bytes() == b"old"


def test_temporary_names_are_unique_per_host_process_thread_and_call(tmp_path, monkeypatch):
    sources = []
    real_replace = os.replace

    def replace(source, target):
        sources.append(os.path.basename(source))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    write_atomically(tmp_path / "out.bin", lambda file: file.write(b"a"))
    write_atomically(tmp_path / "out.bin", lambda file: file.write(b"b"))
    first, second = sources
    assert first != second  # a random token, even for the same thread
    for name in sources:
        assert name.startswith(".out.bin.")
        assert name.endswith(".tmp")
        assert f".{os.getpid()}.{threading.get_ident()}." in name
        host = "".join(c if c.isalnum() or c in "_-" else "_" for c in socket.gethostname())[:32]
        assert f".{host}." in name


def test_a_writer_error_wrapping_an_io_fault_surfaces_as_the_oserror(tmp_path):
    def write(file):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise ValueError("I/O operation on closed file") from None  # what a library may report instead

    with pytest.raises(OSError, match=os.strerror(errno.ENOSPC)) as raised:
        write_atomically(tmp_path / "out.bin", write)
    assert raised.value.errno == errno.ENOSPC
    assert isinstance(raised.value.__cause__, ValueError)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("error", [ValueError("not an I/O fault"), KeyboardInterrupt()])
def test_other_errors_propagate_unchanged_and_clean_up(tmp_path, error):
    def write(file):
        file.write(b"partial")
        raise error

    with pytest.raises(type(error)):
        write_atomically(tmp_path / "out.bin", write)
    assert _listing(tmp_path) == []


def test_concurrent_writers_of_one_target_all_succeed_and_readers_never_see_a_partial_file(rng, tmp_path):
    target = tmp_path / "shared.npz"
    versions = [_statistics(rng, d=64, n=100) for _ in range(4)]
    save_statistics(target, versions[0])
    start = threading.Barrier(len(versions) + 1)
    writing = threading.Event()
    errors, seen = [], []

    def write(statistics):
        start.wait()
        try:
            for _ in range(5):
                save_statistics(target, statistics)
        except BaseException as error:
            errors.append(error)

    def read():
        start.wait()
        try:
            while writing.is_set():
                loaded = load_statistics(target)  # raises on a partial or mixed file
                seen.append(next(i for i, v in enumerate(versions) if torch.equal(v.sigma, loaded.sigma)))
        except BaseException as error:
            errors.append(error)

    writing.set()
    threads = [threading.Thread(target=write, args=(v,)) for v in versions]
    reader = threading.Thread(target=read)
    for thread in (*threads, reader):
        thread.start()
    for thread in threads:
        thread.join()
    writing.clear()
    reader.join()
    assert errors == []
    loaded = load_statistics(target)
    assert any(torch.equal(v.mu, loaded.mu) and torch.equal(v.sigma, loaded.sigma) for v in versions)
    assert seen  # the reader ran while the writers did
    assert _listing(tmp_path) == ["shared.npz"]


# Reads --------------------------------------------------------------------------------------------------


def _assert_refused(call, path):
    with pytest.raises(ValueError, match=re.escape(str(path))):
        call()


def test_load_artifact_refuses_each_kind_of_bad_file_naming_it(rng, tmp_path):
    good = tmp_path / "good.npz"
    tensors = _tensors(rng)
    _save_tensors(good, tensors)
    names = ("n", "features")
    cases = {
        "empty.npz": b"",
        "npy.npz": None,
        "pickle.npz": None,
        "text.npz": b"not an archive",
        "half.npz": good.read_bytes()[: len(good.read_bytes()) // 2],
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    with open(tmp_path / "npy.npz", "wb") as file:
        np.save(file, np.arange(5))
    with open(tmp_path / "pickle.npz", "wb") as file:
        np.save(file, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "missing.npz", n=np.array(3))  # no `features`, no bookkeeping
    arrays = read_npz(good)
    np.savez(tmp_path / "edited.npz", **{**arrays, "features": arrays["features"] + 1.0})  # the old checksum
    for name in (*cases, "missing.npz", "edited.npz"):
        _assert_refused(lambda name=name: _load_tensors(tmp_path / name, names), tmp_path / name)
    with pytest.raises(FileNotFoundError):
        _load_tensors(tmp_path / "absent.npz", names)


def test_load_artifact_refuses_an_array_torch_cannot_hold(tmp_path):
    # A consistent checksum over text: everything numpy reads, but not a tensor.
    from lightning_genmetrics.stats import _checksum

    arrays = {"root": np.array(["a", "b"])}
    text = '{"extractor": "Net"}'
    bookkeeping = {"kind": np.array("reservoir"), "num_samples": np.array(-1), "provenance": np.array(text)}
    checksum = _checksum("reservoir", arrays, bookkeeping["num_samples"], text)
    np.savez(tmp_path / "text.npz", **arrays, **bookkeeping, checksum=np.array(checksum))
    _assert_refused(lambda: _load_tensors(tmp_path / "text.npz", ("root",)), tmp_path / "text.npz")


@pytest.mark.parametrize("compressed", [False, True])
def test_every_truncation_and_every_byte_flip_is_refused_or_harmless(rng, tmp_path, compressed):
    """No damaged copy of a real file may load as different values: each is refused or reads the same."""
    path = tmp_path / "t.npz"
    tensors = {"x": torch.from_numpy(rng.standard_normal(3))}
    _save_tensors(path, tensors)
    if compressed:  # deflated members, so damage also reaches zlib
        arrays = read_npz(path)
        np.savez_compressed(path, **arrays)
    intact = path.read_bytes()
    for length in sorted({*range(0, len(intact), 16), *range(len(intact) - 120, len(intact))}):
        path.write_bytes(intact[:length])  # cut at every 16th byte and everywhere in the directory at the end
        _assert_refused(lambda: _load_tensors(path, ("x",)), path)
    path.write_bytes(intact)
    refusals = []
    descriptor = os.open(path, os.O_WRONLY)
    try:
        for position in range(len(intact)):
            os.pwrite(descriptor, bytes([intact[position] ^ 0xFF]), position)
            try:
                loaded = _load_tensors(path, ("x",))
            except ValueError as error:
                refusals.append(str(error))
            else:  # a byte nobody reads (a timestamp, a version field): the same tensor
                assert torch.equal(loaded["x"], tensors["x"])
            os.pwrite(descriptor, intact[position : position + 1], position)
    finally:
        os.close(descriptor)
    assert len(refusals) > len(intact) // 2
    assert all(str(path) in message for message in refusals)


def test_an_archive_written_to_a_stream_still_reads(rng, tmp_path):
    """zipfile writes sizes after each member (data descriptors) when it cannot seek: the layout check allows them."""

    class Stream:
        def __init__(self):
            self.parts = []

        def write(self, data):
            self.parts.append(bytes(data))
            return len(data)

        def read(self, *args):
            raise io.UnsupportedOperation("write-only")

        def flush(self):
            pass

    stream = Stream()
    mu, sigma = rng.standard_normal(3), np.eye(3)
    np.savez(stream, mu=mu, sigma=sigma)
    (tmp_path / "streamed.npz").write_bytes(b"".join(stream.parts))
    assert all(info.flag_bits & 0x08 for info in zipfile.ZipFile(tmp_path / "streamed.npz").infolist())
    arrays = read_npz(tmp_path / "streamed.npz")
    np.testing.assert_array_equal(arrays["mu"], mu)
    assert load_statistics(tmp_path / "streamed.npz").num_features == 3


def test_a_target_name_near_the_file_system_limit_still_writes(tmp_path):
    target = tmp_path / ("n" * 250 + ".npz")  # 254 bytes: the temporary file's name must not grow past 255
    write_atomically(target, lambda file: file.write(b"x"))
    assert _listing(tmp_path) == [target.name]
