"""The `genmetrics` command with another feature network (no Inception weights), its help, errors and `-o` checks.

The networks are tiny seeded convolutions written by the test to a Python file (``nets.py:ATTRIBUTE``), imported as a
module from a folder on ``sys.path`` (``MODULE:ATTRIBUTE``), or scripted to a TorchScript file.
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from lightning_genmetrics.cli import build_parser, main
from lightning_genmetrics.stats import load_statistics, weights_fingerprint
from tests.helpers import exact_frechet, exact_inception_score, exact_mmd2, fresh_seed, write_image_folder

MODULE = "genmetrics_cli_test_nets"  # a name no installed package uses
NETS = '''
import torch
from torch import nn

CALLS = []  # the dtype of every batch the networks saw: the fail-fast tests check that it stays empty


class Tiny(nn.Module):
    """A seeded 3x3 convolution and a global average: [N, 3, H, W] -> [N, 5]."""

    def __init__(self, seed=0):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in self.conv.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))

    def forward(self, images):
        CALLS.append(str(images.dtype))
        return self.conv(images.float()).mean(dim=(2, 3))


def tiny():
    return Tiny(0)


def other():
    return Tiny(1)


instance = Tiny(0)


class Nets:
    small = staticmethod(tiny)


def not_a_network():
    return 3
'''


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def nets_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    (folder / "nets.py").write_text(NETS)
    (folder / f"{MODULE}.py").write_text(NETS)
    return folder


@pytest.fixture
def nets(nets_dir, monkeypatch):
    """The networks' module as ``MODULE:ATTRIBUTE`` finds it, with its call log emptied."""
    monkeypatch.syspath_prepend(str(nets_dir))
    module = __import__(MODULE)
    module.CALLS.clear()
    return module


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("images")
    real = torch.from_numpy(rng.integers(0, 256, (9, 3, 12, 12), dtype=np.uint8))
    fake = torch.from_numpy(rng.integers(0, 150, (7, 3, 12, 12), dtype=np.uint8))
    other = torch.from_numpy(rng.integers(60, 256, (7, 3, 10, 10), dtype=np.uint8))
    return {
        "real": (write_image_folder(root / "real", real), real),
        "fake": (write_image_folder(root / "fake", fake), fake),
        "other": (write_image_folder(root / "other", other), other),
    }


def _features(network, images, feature_input="float"):
    with torch.no_grad():
        return network(images / 255 if feature_input == "float" else images).double().numpy()


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _error(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("genmetrics: error: "), lines
    return lines[0]


# --help ---------------------------------------------------------------------------------------------------

HEAVY = ("torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning", "scipy", "numpy", "PIL")


def test_help_imports_no_heavy_module(tmp_path):
    code = textwrap.dedent(
        f"""
        import contextlib, io, json, sys, time
        start = time.perf_counter()
        from lightning_genmetrics.cli import main
        commands = ("stats", "fd", "fid", "is", "kid", "prdc", "cmmd")
        for argv in (["--help"], *([command, "--help"] for command in commands)):
            with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
                main(argv)
            assert out.getvalue().startswith("usage: genmetrics"), out.getvalue()
        heavy = [name for name in sys.modules if name.split(".")[0] in {HEAVY!r}]
        ours = [name for name in sys.modules if name.startswith("lightning_genmetrics.")]
        print(json.dumps({{"heavy": heavy, "ours": ours, "seconds": time.perf_counter() - start}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    print(f"eight --help texts in {result['seconds']:.2f} s")
    assert result["heavy"] == []
    assert result["ours"] == ["lightning_genmetrics.cli"]


def _subparsers(parser):
    return parser._subparsers._group_actions[0].choices  # argparse has no public accessor


def test_every_argument_has_help_and_shows_its_default():
    parser = build_parser()
    commands = _subparsers(parser)
    assert sorted(commands) == ["cmmd", "fd", "fid", "is", "kid", "prdc", "stats"]
    for name, command in [("genmetrics", parser), *commands.items()]:
        formatter = command._get_formatter()
        for action in command._actions:
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, label
            assert action.help.strip(), label
            shown = formatter._expand_help(action)
            if action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default: {action.default})" in shown, (label, shown)
            elif action.option_strings and action.nargs != 0 and not action.required:
                assert "default: " in shown, (label, shown)  # a None default says what happens instead


def test_subcommand_help_describes_the_feature_network(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["is", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for fragment in ("MODULE:ATTRIBUTE", "PATH.py:ATTRIBUTE", "TorchScript", "logits", "--feature-input"):
        assert fragment in text, fragment


# --feature: the three forms, what the network receives, provenance ----------------------------------------


def test_stats_from_a_python_file(folders, nets_dir, tmp_path, capsys):
    (real_dir, real) = folders["real"]
    out = tmp_path / "tiny.npz"
    assert main(["stats", str(real_dir), "-o", str(out), "--feature", f"{nets_dir}/nets.py:tiny", "--json"]) == 0
    assert _json(capsys)["extractor"] == "nets.py:tiny"
    statistics = load_statistics(out)
    namespace: dict = {}
    exec(compile(NETS, "nets", "exec"), namespace)
    network = namespace["tiny"]()
    features = _features(network, real)
    np.testing.assert_allclose(statistics.mu.numpy(), features.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(statistics.sigma.numpy(), np.cov(features, rowvar=False), rtol=1e-5, atol=1e-6)
    provenance = statistics.provenance
    assert provenance.weights_sha256 == weights_fingerprint(network)
    assert (provenance.layer, provenance.resize, provenance.num_samples) == ("output", "none", 9)
    assert provenance.feature_input == "float"


def test_module_instance_class_and_dotted_attributes_give_the_same_statistics(folders, nets, tmp_path, capsys):
    real_dir = folders["real"][0]
    means = {}
    for attribute in ("tiny", "instance", "Nets.small"):
        out = tmp_path / f"{attribute}.npz"
        assert main(["stats", str(real_dir), "-o", str(out), "--feature", f"{MODULE}:{attribute}", "--quiet"]) == 0
        statistics = load_statistics(out)
        assert (statistics.provenance.extractor, statistics.provenance.feature_input) == (
            f"{MODULE}:{attribute}",
            "float",
        )
        means[attribute] = statistics.mu
    assert torch.equal(means["tiny"], means["instance"])
    assert torch.equal(means["tiny"], means["Nets.small"])
    assert set(nets.CALLS) == {"torch.float32"}  # --feature-input float: [0, 1] floats


def test_fid_with_a_feature_network_matches_the_exact_distance(folders, nets, capsys):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    assert main(["fid", str(real_dir), str(fake_dir), "--feature", f"{MODULE}:tiny", "--json", "--quiet"]) == 0
    result = _json(capsys)
    network = nets.tiny()
    expected = exact_frechet(_features(network, real), _features(network, fake))
    assert result["fid"] == pytest.approx(expected, rel=1e-6, abs=1e-8)
    assert result["num_samples"] == [9, 7]


def test_is_takes_the_network_outputs_as_logits(folders, nets, capsys):
    fake_dir, fake = folders["fake"]
    assert main(["is", str(fake_dir), "--splits", "1", "--feature", f"{MODULE}:tiny", "--json", "--quiet"]) == 0
    result = _json(capsys)
    logits = _features(nets.tiny(), fake)
    mean, _ = exact_inception_score(logits, np.zeros(len(logits), dtype=np.int64), 1)
    assert result["inception_score_mean"] == pytest.approx(mean, rel=1e-6)
    assert result["num_samples"] == 7


def test_kid_with_uint8_input(folders, nets, capsys):
    (other_dir, other), (fake_dir, fake) = folders["other"], folders["fake"]
    args = ["kid", str(other_dir), str(fake_dir), "--subsets", "2", "--subset-size", "7"]
    assert main([*args, "--feature", f"{MODULE}:tiny", "--feature-input", "uint8", "--json", "--quiet"]) == 0
    result = _json(capsys)
    assert set(nets.CALLS) == {"torch.uint8"}
    network = nets.tiny()
    # Subsets of all 7 images of each side: every subset is the whole set, whatever the seeded draw.
    expected = exact_mmd2(_features(network, other, "uint8"), _features(network, fake, "uint8"))
    assert result["kid_mean"] == pytest.approx(expected, rel=1e-5)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-6 * abs(expected))
    assert result["num_samples"] == [7, 7]


def test_torchscript_file(folders, nets, tmp_path, capsys):
    real_dir = folders["real"][0]
    scripted = tmp_path / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates TorchScript; the format is still read
        torch.jit.save(torch.jit.trace(nets.tiny(), torch.rand(2, 3, 8, 8)), str(scripted))
    from_script, from_module = tmp_path / "script.npz", tmp_path / "module.npz"
    assert main(["stats", str(real_dir), "-o", str(from_script), "--feature", str(scripted), "--quiet"]) == 0
    assert main(["stats", str(real_dir), "-o", str(from_module), "--feature", f"{MODULE}:tiny", "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # no deprecation warning for the user
    script_stats, module_stats = load_statistics(from_script), load_statistics(from_module)
    torch.testing.assert_close(script_stats.mu, module_stats.mu, rtol=1e-6, atol=1e-7)
    assert script_stats.provenance.extractor == "tiny.pt"
    assert script_stats.provenance.weights_sha256 == module_stats.provenance.weights_sha256

    state_dict = tmp_path / "state.pt"
    torch.save(nets.tiny().state_dict(), state_dict)
    assert main(["stats", str(real_dir), "-o", str(tmp_path / "x.npz"), "--feature", str(state_dict)]) == 2
    line = _error(capsys)
    assert "is not a TorchScript archive" in line
    assert "PATH.py:ATTRIBUTE" in line


def test_module_spec_from_pythonpath_in_a_subprocess(folders, nets_dir, tmp_path):
    real_dir = folders["real"][0]
    out = tmp_path / "sub.npz"
    feature = ["--feature", f"{MODULE}:tiny", "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(nets_dir), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "lightning_genmetrics.cli", "stats", str(real_dir), "-o", str(out), *feature],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_samples"] == 9
    assert load_statistics(out).provenance.extractor == f"{MODULE}:tiny"


# Provenance: statistics of another network, weights or input are refused -----------------------------------


@pytest.fixture
def tiny_stats(folders, nets, tmp_path, capsys):
    def make(attribute="tiny", feature_input="float", folder="real"):
        out = tmp_path / f"{attribute}-{feature_input}-{folder}.npz"
        args = ["stats", str(folders[folder][0]), "-o", str(out), "--feature", f"{MODULE}:{attribute}", "--quiet"]
        assert main([*args, "--feature-input", feature_input]) == 0
        capsys.readouterr()
        return out

    return make


@pytest.mark.parametrize(
    ("first", "second", "field"),
    [
        (("tiny", "float"), ("other", "float"), "weights_sha256"),  # the same class with other weights
        (("tiny", "float"), ("tiny", "uint8"), "feature_input"),  # the same network given other input
    ],
)
def test_statistics_of_another_extractor_are_refused(tiny_stats, capsys, first, second, field):
    a, b = tiny_stats(*first), tiny_stats(*second, folder="fake")
    assert main(["fid", str(a), str(b)]) == 2
    line = _error(capsys)
    assert f"{field}:" in line
    assert "--allow-provenance-mismatch" in line
    assert "allow_provenance_mismatch" not in line
    assert main(["fid", str(a), str(b), "--allow-provenance-mismatch", "--json"]) == 0
    assert _json(capsys)["fid"] > 0


def test_a_mismatched_statistics_file_is_refused_before_any_image_is_read(tiny_stats, folders, nets, capsys):
    reference = tiny_stats("tiny")
    nets.CALLS.clear()
    assert main(["fid", str(reference), str(folders["fake"][0]), "--feature", f"{MODULE}:other"]) == 2
    line = _error(capsys)
    assert "weights_sha256" in line
    assert "--allow-provenance-mismatch" in line
    assert nets.CALLS == []


def test_statistics_without_provenance_give_a_one_line_warning(tiny_stats, tmp_path, capsys):
    ours = load_statistics(tiny_stats("tiny"))
    foreign = tmp_path / "pytorch_fid.npz"
    np.savez(foreign, mu=ours.mu.numpy(), sigma=ours.sigma.numpy())
    assert main(["fid", str(foreign), str(tiny_stats("tiny", folder="fake")), "--json"]) == 0
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1
    assert warning[0].startswith("genmetrics: warning: Cannot check")


# Errors name flags ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no_such_module_for_genmetrics:net", "no module 'no_such_module_for_genmetrics'"),
        ("{nets}/nets.py:missing", "has no attribute 'missing'"),
        ("{nets}/nets.py:Nets.missing", "'{nets}/nets.py'.Nets has no attribute 'missing'"),
        ("{nets}/nets.py:not_a_network", "not_a_network() returned int, not an nn.Module"),
        ("{nets}/nets.py:torch", "expected an nn.Module, an nn.Module class or a function returning one, got module"),
        ("{nets}/nets.py", "--feature {nets}/nets.py:ATTRIBUTE"),
        ("{nets}/absent.py:net", "no Python file"),
        ("{nets}/absent.pt", "no such file"),
    ],
)
def test_bad_feature_specs(folders, nets_dir, nets, tmp_path, capsys, spec, fragment):
    spec, fragment = spec.format(nets=nets_dir), fragment.format(nets=nets_dir)
    assert main(["is", str(folders["fake"][0]), "--feature", spec]) == 2
    line = _error(capsys)
    assert line.startswith("genmetrics: error: --feature"), line
    assert fragment in line, line
    assert nets.CALLS == []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--weights", "w.pth"], "--weights"),
        (["--layer", "768"], "--layer"),
        (
            ["--resize", "clean", "--no-verify-weights", "--weights", "w.pth"],
            "--weights, --no-verify-weights, --resize",
        ),
    ],
)
def test_inception_flags_with_a_feature_network_are_refused(folders, nets, tmp_path, capsys, extra, named):
    out = tmp_path / "x.npz"
    assert main(["stats", str(folders["real"][0]), "-o", str(out), "--feature", f"{MODULE}:tiny", *extra]) == 2
    assert f"error: {named} configure" in _error(capsys)
    assert nets.CALLS == []
    assert not out.exists()


def test_feature_input_without_a_feature_network_is_refused(folders, capsys):
    assert main(["is", str(folders["fake"][0]), "--feature-input", "uint8"]) == 2
    assert "--feature-input" in _error(capsys)


def test_unverifiable_and_missing_weights_name_the_flags(folders, tmp_path, capsys):
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"not the pinned weights")
    assert main(["is", str(folders["fake"][0]), "--weights", str(wrong)]) == 2
    line = _error(capsys)
    assert "SHA-256 mismatch" in line
    assert "given by --weights" in line
    assert "pass --no-verify-weights" in line
    for keyword in ("verify=False", "verify_weights", "`path`", "weights_path"):
        assert keyword not in line, keyword

    assert main(["is", str(folders["fake"][0]), "--weights", str(tmp_path / "absent.pth")]) == 2
    line = _error(capsys)
    assert "given by --weights" in line
    assert "`path`" not in line


def test_metric_limits_name_the_flags(folders, nets, capsys):
    real_dir, fake_dir = folders["real"][0], folders["fake"][0]
    assert main(["kid", str(real_dir), str(fake_dir), "--subset-size", "8", "--feature", f"{MODULE}:tiny"]) == 2
    line = _error(capsys)
    assert "--subset-size 8" in line
    assert "subset_size" not in line
    assert nets.CALLS == []  # the folders' sizes are known before any image is read

    assert main(["is", str(fake_dir), "--splits", "50", "--feature", f"{MODULE}:tiny", "--quiet"]) == 2
    line = _error(capsys)
    assert "--splits" in line

    with pytest.raises(SystemExit) as exited:
        main(["kid", str(real_dir), str(fake_dir), "--subset-size", "1"])
    assert exited.value.code == 2
    assert "argument --subset-size: expected an integer >= 2, got 1" in capsys.readouterr().err


# -o is checked before any image is read -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("stats.txt", "must end in .npz"),
        ("folder.npz", "is a folder"),
        ("absent/stats.npz", "does not exist"),
        ("file/stats.npz", "does not exist"),  # a file where the folder should be
    ],
)
def test_a_bad_output_fails_before_extraction(folders, nets, tmp_path, capsys, output, fragment):
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "file").write_text("a file")
    assert main(["stats", str(folders["real"][0]), "-o", str(tmp_path / output), "--feature", f"{MODULE}:tiny"]) == 2
    line = _error(capsys)
    assert line.startswith("genmetrics: error: -o/--output")
    assert fragment in line
    assert nets.CALLS == []


def test_a_bad_output_fails_before_the_inception_weights_are_read(folders, tmp_path, capsys, monkeypatch):
    from lightning_genmetrics.features import weights

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were read before -o was checked")

    monkeypatch.setattr(weights, "inception_weights_path", no_weights)
    assert main(["stats", str(folders["real"][0]), "-o", str(tmp_path / "absent" / "x.npz")]) == 2
    assert "does not exist" in _error(capsys)
