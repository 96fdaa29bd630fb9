"""Tests for pinned weight files: resolution order, verified atomic download, and safe loading."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
import socket
from pathlib import Path

import pytest
import torch

from lightning_genmetrics.features import weights
from lightning_genmetrics.features.weights import (
    INCEPTION_FID_WEIGHTS,
    INCEPTION_WEIGHTS_ENV_VAR,
    WeightsFile,
    fetch_weights,
    file_sha256,
    inception_weights_path,
    load_state_dict_file,
    verify_sha256,
)

SOCKET_TIMEOUT_S = 5.0
FILENAME = "tiny-weights-0123abcd.pth"
TEST_ENV_VAR = "LIGHTNING_GENMETRICS_TEST_WEIGHTS"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.delenv(TEST_ENV_VAR, raising=False)


@pytest.fixture
def tiny_state_dict() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(16, 3, 3, 3, generator=generator),
        "fc.bias": torch.randn(10, generator=generator),
    }


@pytest.fixture
def tiny_file(tmp_path, tiny_state_dict) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    file = source / FILENAME
    torch.save(tiny_state_dict, file)
    return file


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache" / "checkpoints"


def _spec(file: Path, *urls: str) -> WeightsFile:
    return WeightsFile(
        filename=FILENAME,
        sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
        urls=urls or ("http://127.0.0.1:9/never-contacted",),
        source="a test file",
        license="CC0-1.0",
    )


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{FILENAME}"


def _contents(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir()) if directory.exists() else []


def _fetch(spec: WeightsFile, cache_dir: Path, **kwargs) -> Path:
    return fetch_weights(spec, cache_dir=cache_dir, timeout=SOCKET_TIMEOUT_S, **kwargs)


# --- download into the cache ------------------------------------------------------------------------


def test_download_verifies_and_caches(server, tiny_file, tiny_state_dict, cache_dir, monkeypatch):
    monkeypatch.setattr(weights, "_CHUNK_BYTES", 1024)  # many chunks through the streaming hash
    spec = _spec(tiny_file, server.serve("/w.pth", tiny_file.read_bytes()))

    first = _fetch(spec, cache_dir)
    assert first == cache_dir / FILENAME
    assert file_sha256(first) == spec.sha256
    assert _contents(cache_dir) == [FILENAME]
    assert server.hits == ["/w.pth"]

    second = _fetch(spec, cache_dir)
    assert second == first
    assert server.hits == ["/w.pth"], "a cached, verified file must not be downloaded again"

    loaded = load_state_dict_file(first)
    assert loaded.keys() == tiny_state_dict.keys()
    for name, tensor in tiny_state_dict.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)


def test_download_reports_progress_on_stderr(server, tiny_file, cache_dir, capsys):
    spec = _spec(tiny_file, server.serve("/w.pth", tiny_file.read_bytes()))
    _fetch(spec, cache_dir, progress=True)
    assert f"Downloading {FILENAME}" in capsys.readouterr().err


def test_download_hash_mismatch_raises_and_leaves_nothing(server, tiny_file, cache_dir):
    spec = _spec(tiny_file, server.serve("/w.pth", b"tampered bytes of the same file name"))
    actual = hashlib.sha256(b"tampered bytes of the same file name").hexdigest()

    with pytest.raises(ValueError, match="SHA-256 mismatch") as info:
        _fetch(spec, cache_dir)
    message = str(info.value)
    assert spec.sha256 in message
    assert actual in message
    assert FILENAME in message
    assert _contents(cache_dir) == []


@pytest.mark.parametrize("failure", ["404", "refused", "truncated", "timeout"])
def test_download_failure_raises_runtime_error_and_leaves_nothing(server, tiny_file, cache_dir, failure):
    body = tiny_file.read_bytes()
    if failure == "404":
        url = server.url("/missing.pth")
    elif failure == "refused":
        url = _refused_url()
    elif failure == "truncated":
        url = server.serve("/w.pth", body[: len(body) // 2], declared=len(body))
    else:
        url = server.serve("/w.pth", body, delay=1.0)
    spec = _spec(tiny_file, url)

    with pytest.raises(RuntimeError) as info:
        fetch_weights(spec, cache_dir=cache_dir, env_var=TEST_ENV_VAR, timeout=0.25)
    message = str(info.value)
    for expected in (FILENAME, spec.sha256, url, str(cache_dir / FILENAME), TEST_ENV_VAR, "weights_path="):
        assert expected in message
    assert _contents(cache_dir) == []


def test_offline_message_without_env_var(tiny_file, cache_dir):
    spec = _spec(tiny_file, _refused_url())
    with pytest.raises(RuntimeError, match="Could not download") as info:
        _fetch(spec, cache_dir)
    assert "environment variable" not in str(info.value)
    assert "weights_path=" in str(info.value)


def test_every_failed_mirror_is_listed_and_a_working_mirror_is_used(server, tiny_file, cache_dir):
    missing = server.url("/missing.pth")
    refused = _refused_url()
    wrong = server.serve("/wrong.pth", b"wrong bytes")
    good = server.serve("/good.pth", tiny_file.read_bytes())

    spec = _spec(tiny_file, missing, refused, wrong, good)
    assert _fetch(spec, cache_dir) == cache_dir / FILENAME
    assert file_sha256(cache_dir / FILENAME) == spec.sha256
    assert server.hits == ["/missing.pth", "/wrong.pth", "/good.pth"]
    assert _contents(cache_dir) == [FILENAME]

    (cache_dir / FILENAME).unlink()
    with pytest.raises(RuntimeError) as info:
        _fetch(dataclasses.replace(spec, urls=(missing, refused)), cache_dir)
    assert missing in str(info.value)
    assert refused in str(info.value)


def test_interrupted_download_leaves_nothing(server, tiny_file, cache_dir, monkeypatch):
    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "_CHUNK_BYTES", 1024)
    monkeypatch.setattr(weights, "_report_progress", interrupt)
    spec = _spec(tiny_file, server.serve("/w.pth", tiny_file.read_bytes()))
    with pytest.raises(KeyboardInterrupt):
        _fetch(spec, cache_dir, progress=True)
    assert _contents(cache_dir) == []


def test_unwritable_cache_dir_raises_runtime_error(tiny_file, tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")
    with pytest.raises(RuntimeError, match="Cannot create cache directory"):
        _fetch(_spec(tiny_file), not_a_directory / "checkpoints")


def test_wrong_cached_file_raises_and_is_not_replaced(server, tiny_file, cache_dir):
    cache_dir.mkdir(parents=True)
    (cache_dir / FILENAME).write_bytes(b"stale")
    spec = _spec(tiny_file, server.serve("/w.pth", tiny_file.read_bytes()))
    with pytest.raises(ValueError, match="SHA-256 mismatch for cached weights") as info:
        _fetch(spec, cache_dir)
    assert spec.sha256 in str(info.value)
    assert hashlib.sha256(b"stale").hexdigest() in str(info.value)
    assert (cache_dir / FILENAME).read_bytes() == b"stale"
    assert server.hits == []


# --- explicit path and environment variable ---------------------------------------------------------


def test_explicit_path_is_verified_and_never_downloads(server, tiny_file, tmp_path, cache_dir):
    spec = _spec(tiny_file, server.serve("/w.pth", tiny_file.read_bytes()))
    assert _fetch(spec, cache_dir, path=tiny_file) == tiny_file
    assert _fetch(spec, cache_dir, path=str(tiny_file)) == tiny_file

    other = tmp_path / "reconverted.pth"
    torch.save({"w": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="SHA-256 mismatch") as info:
        _fetch(spec, cache_dir, path=other)
    for expected in (str(other), spec.sha256, file_sha256(other), "verify=False"):
        assert expected in str(info.value)
    assert _fetch(spec, cache_dir, path=other, verify=False) == other

    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        _fetch(spec, cache_dir, path=tmp_path / "does-not-exist.pth")
    assert server.hits == []
    assert _contents(cache_dir) == []


def test_env_var_is_verified_and_explicit_path_wins(server, tiny_file, tmp_path, cache_dir, monkeypatch):
    spec = _spec(tiny_file, server.serve("/w.pth", tiny_file.read_bytes()))
    other = tmp_path / "reconverted.pth"
    torch.save({"w": torch.zeros(1)}, other)

    monkeypatch.setenv(TEST_ENV_VAR, str(tiny_file))
    assert _fetch(spec, cache_dir, env_var=TEST_ENV_VAR) == tiny_file
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        _fetch(spec, cache_dir, env_var=TEST_ENV_VAR, path=other)

    monkeypatch.setenv(TEST_ENV_VAR, str(other))
    with pytest.raises(ValueError, match=TEST_ENV_VAR) as info:
        _fetch(spec, cache_dir, env_var=TEST_ENV_VAR)
    assert spec.sha256 in str(info.value)
    assert file_sha256(other) in str(info.value)
    assert _fetch(spec, cache_dir, env_var=TEST_ENV_VAR, verify=False) == other
    assert _fetch(spec, cache_dir, env_var=TEST_ENV_VAR, path=tiny_file) == tiny_file

    monkeypatch.setenv(TEST_ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match=TEST_ENV_VAR):
        _fetch(spec, cache_dir, env_var=TEST_ENV_VAR)
    assert server.hits == []

    monkeypatch.setenv(TEST_ENV_VAR, "")
    assert _fetch(spec, cache_dir, env_var=TEST_ENV_VAR) == cache_dir / FILENAME
    assert server.hits == ["/w.pth"]


def test_verify_sha256(tiny_file):
    verify_sha256(tiny_file, file_sha256(tiny_file))
    with pytest.raises(ValueError, match=re.escape(file_sha256(tiny_file))):
        verify_sha256(tiny_file, "0" * 64)


# --- the Inception pin ------------------------------------------------------------------------------


def test_inception_pin_is_consistent():
    spec = INCEPTION_FID_WEIGHTS
    # torch.hub's convention: the hex digits after the last "-" are the SHA-256's prefix.
    name_prefix = re.search(r"-([a-f0-9]+)\.", spec.filename).group(1)
    assert spec.sha256.startswith(name_prefix)
    assert any(url.endswith("/" + spec.filename) for url in spec.urls)
    assert all(url.startswith("https://") and url.endswith(f"-{name_prefix}.pth") for url in spec.urls)
    assert spec.license == "Apache-2.0"


def test_inception_weights_path_resolution(tiny_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    default_cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    offline = dataclasses.replace(INCEPTION_FID_WEIGHTS, urls=(_refused_url(),))
    monkeypatch.setattr(weights, "INCEPTION_FID_WEIGHTS", offline)

    with pytest.raises(RuntimeError) as info:
        inception_weights_path()
    message = str(info.value)
    for expected in (offline.filename, offline.sha256, offline.urls[0], str(default_cache / offline.filename)):
        assert expected in message
    assert INCEPTION_WEIGHTS_ENV_VAR in message
    assert _contents(default_cache) == []

    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV_VAR, str(tiny_file))
    with pytest.raises(ValueError, match=INCEPTION_WEIGHTS_ENV_VAR):
        inception_weights_path()
    assert inception_weights_path(verify=False) == tiny_file
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV_VAR)

    with pytest.raises(ValueError, match=re.escape(offline.sha256)):
        inception_weights_path(tiny_file)

    pinned_to_tiny = dataclasses.replace(offline, sha256=file_sha256(tiny_file))
    monkeypatch.setattr(weights, "INCEPTION_FID_WEIGHTS", pinned_to_tiny)
    default_cache.mkdir(parents=True, exist_ok=True)
    (default_cache / pinned_to_tiny.filename).write_bytes(tiny_file.read_bytes())
    assert inception_weights_path() == default_cache / pinned_to_tiny.filename


# --- WeightsFile validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"sha256": "6726825d"}, ValueError, "`sha256`"),
        ({"sha256": "A" * 64}, ValueError, "`sha256`"),
        ({"filename": "../evil.pth"}, ValueError, "`filename`"),
        ({"filename": ""}, ValueError, "`filename`"),
        ({"urls": "https://example.invalid/w.pth"}, TypeError, "`urls`"),
        ({"urls": ["https://example.invalid/w.pth"]}, TypeError, "`urls`"),
        ({"urls": ()}, ValueError, "`urls`"),
    ],
)
def test_weights_file_rejects_bad_fields(changes, error, match):
    with pytest.raises(error, match=match):
        dataclasses.replace(INCEPTION_FID_WEIGHTS, **changes)


def test_weights_file_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        INCEPTION_FID_WEIGHTS.sha256 = "0" * 64


# --- loading without executing pickled code ---------------------------------------------------------


class _MaliciousPayload:
    """Unpickling this object writes a marker file: the side effect a weights file must never get."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused_without_side_effects(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"evil": _MaliciousPayload(marker)}
    file = tmp_path / "malicious.pth"
    if writer == "torch.save":
        torch.save({"fc.weight": torch.zeros(2), **payload}, file)
    else:
        file.write_bytes(pickle.dumps(payload, protocol=2))

    with pytest.raises(ValueError, match="Refusing to load weights file") as info:
        load_state_dict_file(file)
    assert str(file) in str(info.value)
    assert "exec" in str(info.value), "the reason names the refused global"
    assert not marker.exists()


def test_malicious_payload_is_live(tmp_path):
    """The payload above really runs under a plain unpickler, so the refusal test is meaningful."""
    marker = tmp_path / "live"
    pickle.loads(pickle.dumps(_MaliciousPayload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("content", ["random", "truncated", "empty"])
def test_corrupt_file_raises_value_error(tmp_path, tiny_file, content):
    file = tmp_path / "corrupt.pth"
    if content == "random":
        file.write_bytes(os.urandom(4096))
    elif content == "truncated":
        file.write_bytes(tiny_file.read_bytes()[:300])
    else:
        file.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(str(file))):
        load_state_dict_file(file)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ([torch.zeros(2)], "got list"),
        (torch.zeros(2), "got Tensor"),
        ({"w": torch.zeros(2), "epoch": 3}, "'epoch' of type int"),
        ({1: torch.zeros(2)}, "entry 1 of type Tensor"),
        ({}, "empty mapping"),
        ({"state_dict": {}}, "empty mapping"),
    ],
)
def test_non_state_dict_raises_value_error(tmp_path, content, match):
    file = tmp_path / "not-a-state-dict.pth"
    torch.save(content, file)
    with pytest.raises(ValueError, match=match) as info:
        load_state_dict_file(file)
    assert str(file) in str(info.value)


def test_state_dict_wrapper_is_unwrapped(tmp_path, tiny_state_dict):
    file = tmp_path / "checkpoint.ckpt"
    torch.save({"state_dict": tiny_state_dict, "epoch": 3, "optimizer_states": [{"lr": 0.1}]}, file)
    loaded = load_state_dict_file(file)
    assert type(loaded) is dict
    assert loaded.keys() == tiny_state_dict.keys()
    assert all(tensor.device.type == "cpu" for tensor in loaded.values())


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        load_state_dict_file(tmp_path / "nothing.pth")
