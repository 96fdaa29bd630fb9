"""The `genmetrics` command on folders of PNGs written by the test, with seeded Inception weights."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_genmetrics import FIDInceptionV3, FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from lightning_genmetrics.cli import main
from lightning_genmetrics.stats import load_statistics
from tests.helpers import fresh_seed, seeded_inception_state, write_image_folder


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "seeded-inception.pth"
    torch.save(seeded_inception_state(), path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    rng = np.random.default_rng(fresh_seed())
    root = tmp_path_factory.mktemp("images")
    real = torch.from_numpy(rng.integers(0, 256, (5, 3, 24, 24), dtype=np.uint8))
    fake = torch.from_numpy(rng.integers(0, 160, (4, 3, 24, 24), dtype=np.uint8))
    return {name: (write_image_folder(root / name, x), x) for name, x in (("real", real), ("fake", fake))}


def _options(weights):
    return ["--weights", str(weights), "--no-verify-weights", "--batch-size", "4", "--json"]


def _run(args):
    return subprocess.run(
        [sys.executable, "-m", "lightning_genmetrics.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_stats_then_fid_as_subprocesses(folders, weights, tmp_path):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    stats_path = tmp_path / "real.npz"
    done = _run(["stats", str(real_dir), "-o", str(stats_path), *_options(weights)])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_samples"] == 5
    provenance = load_statistics(stats_path).provenance
    assert (provenance.extractor, provenance.layer, provenance.resize) == ("FIDInceptionV3", "2048", "tf1")
    assert "5/5 images" in done.stderr  # progress on stderr

    done = _run(["fid", str(stats_path), str(fake_dir), *_options(weights)])
    assert done.returncode == 0, done.stderr
    network = FIDInceptionV3("2048", weights_path=weights, verify_weights=False)
    metric = FrechetInceptionDistance(network)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert json.loads(done.stdout)["fid"] == pytest.approx(metric.compute().item(), rel=1e-6)


def test_is_and_kid(folders, weights, capsys):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    assert main(["is", str(fake_dir), "--splits", "1", *_options(weights)]) == 0  # 4 images: 2 hash splits may be empty
    result = json.loads(capsys.readouterr().out)
    metric = InceptionScore(FIDInceptionV3("logits_unbiased", weights_path=weights, verify_weights=False), splits=1)
    metric.update(fake)
    assert result["inception_score_mean"] == pytest.approx(metric.compute()[0].item(), rel=1e-6)

    assert main(["kid", str(real_dir), str(fake_dir), "--subsets", "3", "--subset-size", "3", *_options(weights)]) == 0
    result = json.loads(capsys.readouterr().out)
    kid = KernelInceptionDistance(
        FIDInceptionV3("2048", weights_path=weights, verify_weights=False), subsets=3, subset_size=3
    )
    kid.update(real, real=True)
    kid.update(fake, real=False)
    assert result["kid_mean"] == pytest.approx(kid.compute()[0].item(), rel=1e-5)
    assert result["num_samples"] == [5, 4]


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_empty_folder(tmp_path, weights, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["is", str(tmp_path / "empty"), *_options(weights)]) == 2
    assert "no images in" in _one_line_error(capsys)


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image(tmp_path, weights, capsys, workers):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"this is not a png")
    assert main(["is", str(folder), "--num-workers", str(workers), "--quiet", *_options(weights)]) == 2
    line = _one_line_error(capsys)
    assert line.startswith("genmetrics: error: cannot read image")
    assert "bad.png" in line


def test_mismatched_and_corrupt_statistics(folders, weights, tmp_path, capsys):
    small = tmp_path / "layer768.npz"
    assert (
        main(["stats", str(folders["real"][0]), "-o", str(small), "--layer", "768", "--quiet", *_options(weights)]) == 0
    )
    capsys.readouterr()
    assert main(["fid", str(small), str(folders["fake"][0]), "--quiet", *_options(weights)]) == 2
    line = _one_line_error(capsys)  # refused before the folder is read
    assert f"the statistics in '{small}' were produced differently" in line
    assert "layer: '768' != '2048'" in line
    big = tmp_path / "layer2048.npz"
    assert main(["stats", str(folders["fake"][0]), "-o", str(big), "--quiet", *_options(weights)]) == 0
    capsys.readouterr()
    assert main(["fid", str(small), str(big), "--allow-provenance-mismatch", "--quiet"]) == 2
    assert "768 and 2048 features (layer: '768' != '2048')" in _one_line_error(capsys)

    other = tmp_path / "other_resize.npz"
    args = ["stats", str(folders["fake"][0]), "-o", str(other), "--layer", "768", "--resize", "torch-antialias"]
    assert main([*args, "--quiet", *_options(weights)]) == 0
    capsys.readouterr()
    assert main(["fid", str(small), str(other), "--quiet", *_options(weights)]) == 2
    assert "resize: 'tf1' != 'torch-antialias'" in _one_line_error(capsys)

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"garbage")
    assert main(["fid", str(corrupt), str(small), "--quiet"]) == 2
    assert "Cannot read statistics file" in _one_line_error(capsys)


def test_missing_weights_offline_is_one_line(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("LIGHTNING_GENMETRICS_INCEPTION_WEIGHTS", raising=False)
    from lightning_genmetrics.features import weights as weights_module

    spec = weights_module.INCEPTION_FID_WEIGHTS
    offline = type(spec)(spec.filename, spec.sha256, ("http://127.0.0.1:9/unreachable.pth",), spec.source, spec.license)
    monkeypatch.setattr(weights_module, "INCEPTION_FID_WEIGHTS", offline)
    assert main(["is", str(folders["fake"][0]), "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert spec.sha256 in line
    assert spec.filename in line
    assert f"--weights /path/to/{spec.filename}" in line  # the flag, not the library's weights_path='...'
    assert "weights_path" not in line
    assert "--feature SPEC" in line  # the way on without these weights


# Image modes: exact 8-bit RGB or a refusal naming the file and its mode ---------------------------------


def _png_16_bit_rgb(path, array):
    """A 48-bit RGB PNG written byte by byte (Pillow cannot write one)."""
    import struct
    import zlib

    height, width, _ = array.shape
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


def _read(path):
    from lightning_genmetrics.cli import image_to_rgb8

    with Image.open(path) as image:
        return image.mode, image_to_rgb8(image, path)


def _refusal(path):
    from lightning_genmetrics.cli import CommandError, image_to_rgb8

    with Image.open(path) as image, pytest.raises(CommandError) as raised:
        image_to_rgb8(image, path)
    assert str(path) in str(raised.value)
    return str(raised.value)


def _scaled(values):
    """The exact 8-bit value of 16-bit data, in float64 (v / 257 is never a tie, so rounding is unambiguous)."""
    return np.round(np.asarray(values, dtype=np.float64) * 255 / 65535).astype(np.uint8)


def test_16_bit_grayscale_is_scaled_exactly(rng, tmp_path):
    gradient = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    Image.fromarray(gradient).save(tmp_path / "gradient.png")
    mode, rgb = _read(tmp_path / "gradient.png")
    assert mode == "I;16"
    assert rgb.mean() == pytest.approx(_scaled(gradient).mean(), abs=1e-12)  # 127.5; Pillow's own convert gave 254.5
    np.testing.assert_array_equal(rgb, np.repeat(_scaled(gradient)[..., None], 3, axis=2))

    values = rng.integers(0, 65536, (9, 13)).astype(np.uint16)
    Image.frombytes("I;16B", (13, 9), values.astype(">u2").tobytes()).save(tmp_path / "big_endian.tif")
    Image.fromarray(values.astype(np.int32)).save(tmp_path / "int32.tif")
    for name, expected_mode in [("big_endian.tif", "I;16B"), ("int32.tif", "I")]:
        mode, rgb = _read(tmp_path / name)
        assert mode == expected_mode
        np.testing.assert_array_equal(rgb[..., 1], _scaled(values))

    from lightning_genmetrics.cli import image_to_rgb8

    little = Image.frombytes("I;16L", (13, 9), values.astype("<u2").tobytes())
    np.testing.assert_array_equal(image_to_rgb8(little)[..., 2], _scaled(values))


def test_8_bit_images_are_unchanged(rng, tmp_path):
    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    bits = rng.integers(0, 2, (7, 5)).astype(bool)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(bits).save(tmp_path / "bits.png")
    indexed = Image.fromarray(indices, "P")
    indexed.putpalette(palette.reshape(-1).tolist())
    indexed.save(tmp_path / "palette.png")
    Image.fromarray(np.dstack([rgb, np.full((7, 5), 255, np.uint8)])).save(tmp_path / "opaque.png")
    Image.fromarray(np.dstack([gray, np.full((7, 5), 255, np.uint8)]), "LA").save(tmp_path / "opaque_la.png")
    expected = {
        "rgb.png": ("RGB", rgb),
        "gray.png": ("L", np.repeat(gray[..., None], 3, axis=2)),
        "bits.png": ("1", np.repeat(np.where(bits, 255, 0).astype(np.uint8)[..., None], 3, axis=2)),
        "palette.png": ("P", palette[indices]),
        "opaque.png": ("RGBA", rgb),  # fully opaque: the alpha channel carries nothing and is dropped
        "opaque_la.png": ("LA", np.repeat(gray[..., None], 3, axis=2)),
    }
    for name, (mode, pixels) in expected.items():
        read_mode, read = _read(tmp_path / name)
        assert read_mode == mode, name
        assert read.dtype == np.uint8
        np.testing.assert_array_equal(read, pixels, err_msg=name)


def test_images_without_one_exact_8_bit_reading_are_refused_naming_file_and_mode(rng, tmp_path):
    Image.fromarray(rng.random((6, 6)).astype(np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "wide.tif")
    Image.fromarray(np.array([[-1, 5]], dtype=np.int32)).save(tmp_path / "negative.tif")
    alpha = np.full((4, 4), 255, np.uint8)
    alpha[1, 2] = 254
    Image.fromarray(np.dstack([rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), alpha])).save(tmp_path / "alpha.png")
    indexed = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), "P")
    indexed.putpalette([0, 0, 0, 255, 255, 255])
    indexed.save(tmp_path / "keyed.png", transparency=1)
    Image.fromarray(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8), "CMYK").save(tmp_path / "cmyk.jpg")
    _png_16_bit_rgb(tmp_path / "deep.png", rng.integers(0, 65536, (4, 5, 3)))
    cases = {
        "float.tif": ("'F'", "floating-point"),
        "wide.tif": ("'I'", "70000"),
        "negative.tif": ("'I'", "-1"),
        "alpha.png": ("'RGBA'", "transparent"),
        "keyed.png": ("'P'", "transparent"),
        "cmyk.jpg": ("'CMYK'", "no exact 8-bit RGB reading"),
        "deep.png": ("'RGB'", "16-bit colour"),
    }
    for name, fragments in cases.items():
        message = _refusal(tmp_path / name)
        for fragment in fragments:
            assert fragment in message, message


def test_the_command_exits_non_zero_on_a_float_image(rng, weights, tmp_path, capsys):
    floats = tmp_path / "floats"
    floats.mkdir()
    for name in ("a.tif", "b.tif"):  # two: statistics of fewer are refused before any image is read
        Image.fromarray(rng.random((24, 24)).astype(np.float32)).save(floats / name)
    assert main(["stats", str(floats), "-o", str(tmp_path / "f.npz"), "--quiet", *_options(weights)]) == 2
    line = _one_line_error(capsys)
    assert "a.tif" in line
    assert "'F'" in line
    assert not (tmp_path / "f.npz").exists()


def test_a_16_bit_folder_reads_as_its_exact_8_bit_equivalent(rng, tmp_path):
    from lightning_genmetrics.cli import _ImageFolder

    deep, shallow = tmp_path / "deep", tmp_path / "shallow"
    deep.mkdir()
    shallow.mkdir()
    for i in range(3):
        values = rng.integers(0, 65536, (6, 9)).astype(np.uint16)
        Image.fromarray(values).save(deep / f"{i}.png")
        Image.fromarray(_scaled(values)).save(shallow / f"{i}.png")
    deep_images, shallow_images = _ImageFolder(deep), _ImageFolder(shallow)
    for i in range(3):
        assert deep_images[i].dtype == torch.uint8
        assert deep_images[i].shape == (3, 6, 9)
        assert torch.equal(deep_images[i], shallow_images[i])
