"""The real side on its own, with stub trainers: sharding over ranks, the cache, and cache faults that must not end
the run (a file that cannot be read is recomputed, one that cannot be written is skipped, each with a warning)."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.image import FrechetInceptionDistance as TorchmetricsFID

from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.callbacks.real_side import RealSide
from lightning_genmetrics.callbacks.registry import build_builtin_metrics
from lightning_genmetrics.features import ImageBatch
from lightning_genmetrics.features.preprocess import images_to_uint8
from lightning_genmetrics.stats import load_artifact, load_statistics, weights_fingerprint
from tests.callbacks.support import CountingImages, stub_trainer
from tests.helpers import TinyFeatureNet

RANGE = (-1.0, 1.0)


class CountingNet(TinyFeatureNet):
    def __init__(self) -> None:
        super().__init__(6, seed=5, declare=True)
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return super().forward(x)


class RealImages(TorchmetricsFID):
    """Records the real images it is fed (uint8), to see which rank read what."""

    def __init__(self) -> None:
        super().__init__(feature=UInt8Net())
        self.fed: list[torch.Tensor] = []

    def update(self, imgs: torch.Tensor, real: bool) -> None:
        if real:
            self.fed.append(imgs.clone())
        super().update(imgs, real)


class UInt8Net(TinyFeatureNet):
    def __init__(self) -> None:
        super().__init__(6, seed=5, declare=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float() / 255)


def builtin_plugs(net: torch.nn.Module) -> list[MetricPlug]:
    kwargs = {"kid": {"subsets": 2, "subset_size": 4, "max_samples": 8}}
    metrics = build_builtin_metrics(("fid", "kid"), {"fid": net, "kid": net}, kwargs, RANGE)
    return [MetricPlug(name, metric) for name, metric in metrics.items()]


def real_side(dataset: CountingImages, cache_dir: Path | None, batch_size: int = 4) -> tuple[RealSide, list[str]]:
    """A real side over ``dataset``, and the messages it warns once about."""
    warned: list[str] = []
    side = RealSide(DataLoader(dataset, batch_size=batch_size), None, RANGE, cache_dir, lambda t, m: warned.append(m))
    return side, warned


def test_each_rank_reads_its_own_batches() -> None:
    images = CountingImages(14)
    fed = []
    for rank in (0, 1):
        plug = MetricPlug("tm_fid", RealImages())
        side, _ = real_side(images, None)
        side.prepare(stub_trainer(rank, 2), torch.device("cpu"), [plug])
        fed.append(torch.cat(plug.metric.fed))
    expected = images_to_uint8(images.images, RANGE)
    # Batches of 4: rank 0 reads batches 0 and 2, rank 1 batches 1 and 3 (the last one holds 2 images).
    torch.testing.assert_close(fed[0], torch.cat([expected[0:4], expected[8:12]]), rtol=0, atol=0)
    torch.testing.assert_close(fed[1], torch.cat([expected[4:8], expected[12:14]]), rtol=0, atol=0)
    one, _ = real_side(images, None, batch_size=7)
    one.prepare(stub_trainer(), torch.device("cpu"), [MetricPlug("tm_fid", RealImages())])
    assert one.data_key[1] == 14


def test_a_second_run_loads_the_cache_without_extracting(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first_net, second_net = CountingNet(), CountingNet()
    first_plugs, second_plugs = builtin_plugs(first_net), builtin_plugs(second_net)
    first, _ = real_side(CountingImages(12), cache)
    first.prepare(stub_trainer(), torch.device("cpu"), first_plugs)
    assert first_net.images == 12  # FID and KID share one pass of the network
    assert sorted(path.name.split("-")[1] for path in cache.iterdir()) == ["kid", "statistics"]

    dataset = CountingImages(12)
    second, warned = real_side(dataset, cache)
    second.prepare(stub_trainer(), torch.device("cpu"), second_plugs)
    assert second_net.images == 0  # found in the cache: the data are only read and hashed
    assert dataset.reads == 12
    assert second.cache_key(second_plugs) == first.cache_key(first_plugs)
    assert torch.equal(first_plugs[0].metric.real_statistics().mu, second_plugs[0].metric.real_statistics().mu)
    assert not warned
    # Ready: the next evaluation does not read the data again.
    second.prepare(stub_trainer(), torch.device("cpu"), second_plugs)
    assert dataset.reads == 12


@pytest.mark.parametrize("damage", [b"", b"not an npz file"])
def test_a_cache_file_that_cannot_be_read_is_recomputed_with_a_warning(tmp_path: Path, damage: bytes) -> None:
    cache = tmp_path / "cache"

    def run(net: CountingNet) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            real_side(CountingImages(12), cache)[0].prepare(stub_trainer(), torch.device("cpu"), builtin_plugs(net))
        return [str(warning.message) for warning in caught if "cache" in str(warning.message)]

    assert run(CountingNet()) == []
    for path in cache.iterdir():
        path.write_bytes(damage)
    net = CountingNet()
    notes = run(net)
    assert len(notes) == 2  # the statistics and the KID reservoir
    assert all("ignores the cached" in note for note in notes)
    assert net.images == 12  # recomputed
    net = CountingNet()
    assert run(net) == []  # rewritten: a third run reads both without a word
    assert net.images == 0


def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    plugs = builtin_plugs(CountingNet())
    side, warned = real_side(CountingImages(12), blocker / "cache")
    side.prepare(stub_trainer(), torch.device("cpu"), plugs)
    assert len(warned) == 2
    assert all("cannot write the cache file" in message for message in warned)
    plugs[0].metric.update(images_to_uint8(CountingImages(6).images, RANGE), real=False)
    assert float(plugs[0].metric.compute()) > 0  # the real side is ready all the same


def test_only_global_rank_zero_touches_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    side, _ = real_side(CountingImages(12), cache)
    side.prepare(stub_trainer(1, 2), torch.device("cpu"), builtin_plugs(CountingNet()))
    assert not cache.exists()


def test_a_metric_that_drops_its_real_side_on_reset_is_fed_once() -> None:
    metric = RealImages()
    plug = MetricPlug("tm_fid", metric)
    side, _ = real_side(CountingImages(8), None)
    side.prepare(stub_trainer(), torch.device("cpu"), [plug])
    generated = images_to_uint8(CountingImages(8).images.flip(0) * 0.5, RANGE)
    values = []
    for _ in range(2):
        plug.reset_generated()
        plug.update_generated(generated, torch.arange(8))
        values.append(plug.compute()["tm_fid"])
        side.prepare(stub_trainer(), torch.device("cpu"), [plug])
    assert len(metric.fed) == 2  # two batches of 4, read once
    reference = TorchmetricsFID(feature=UInt8Net())
    reference.update(images_to_uint8(CountingImages(8).images, RANGE), real=True)
    reference.update(generated, real=False)
    assert values == pytest.approx([float(reference.compute())] * 2, rel=1e-9)


def test_statistics_given_as_real_are_loaded_into_the_metrics(tmp_path: Path) -> None:
    net = CountingNet()
    fid = build_builtin_metrics(("fid",), {"fid": net}, {}, RANGE)["fid"]
    fid.update(images_to_uint8(CountingImages(8).images, RANGE), real=True)
    side = RealSide(None, fid.real_statistics(), RANGE, None, lambda t, m: None)
    plug = MetricPlug("fid", build_builtin_metrics(("fid",), {"fid": net}, {}, RANGE)["fid"])
    side.use_statistics([plug])
    images = net.images
    side.prepare(stub_trainer(), torch.device("cpu"), [plug])  # nothing to read
    assert net.images == images
    plug.update_generated(images_to_uint8(CountingImages(8).images * 0.5, RANGE), torch.arange(8))
    fid.update(images_to_uint8(CountingImages(8).images * 0.5, RANGE), real=False)
    assert plug.compute()["fid"] == pytest.approx(float(fid.compute()), rel=1e-9)


def test_real_batches_that_are_uint8_are_taken_as_they_are() -> None:
    pixels = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    metric = RealImages()
    side = RealSide(DataLoader(TensorDataset(pixels), batch_size=4), None, RANGE, None, lambda t, m: None)
    side.prepare(stub_trainer(), torch.device("cpu"), [MetricPlug("tm_fid", metric)])
    torch.testing.assert_close(torch.cat(metric.fed), pixels, rtol=0, atol=0)


# The newer suite's real sides, cached as artifacts -----------------------------------------------------------------

SUITE = ("fid", "sfid", "fd_infinity", "fd_dinov2", "kid", "precision_recall", "cmmd")
SUITE_KWARGS = {
    "kid": {"subsets": 2, "subset_size": 4, "max_samples": 8},
    "precision_recall": {"max_samples": 10},
    "cmmd": {"max_samples": 10},
    "fd_infinity": {"points": 2, "min_fraction": 0.5},
}


def suite_plugs(net: torch.nn.Module) -> list[MetricPlug]:
    metrics = build_builtin_metrics(SUITE, dict.fromkeys(SUITE, net), SUITE_KWARGS, RANGE)
    return [MetricPlug(name, metric) for name, metric in metrics.items()]


def evaluate(side: RealSide, plugs: list[MetricPlug]) -> dict[str, float]:
    """Make the real side ready, score 8 generated images, cache the covariance's root."""
    side.prepare(stub_trainer(), torch.device("cpu"), plugs)
    # One batch for every metric: one pass of their shared network.
    generated = ImageBatch(CountingImages(8).images.flip(0) * 0.7, input_range=RANGE)
    values: dict[str, float] = {}
    for plug in plugs:
        plug.reset_generated()
        plug.update_generated(generated, torch.arange(8))
        values.update(plug.compute())
    side.cache_root(stub_trainer(), plugs)
    return values


def caught_cache_notes(run: Callable[[], object]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(warning.message) for warning in caught if "cache" in str(warning.message)]


def test_every_real_side_of_the_suite_is_cached_as_an_artifact_and_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning_genmetrics.metrics.frechet as frechet_module

    roots: list[int] = []
    original = frechet_module.psd_sqrt
    monkeypatch.setattr(frechet_module, "psd_sqrt", lambda s, **kw: roots.append(1) or original(s, **kw))
    cache = tmp_path / "cache"
    first_net = CountingNet()
    first = evaluate(real_side(CountingImages(12), cache)[0], suite_plugs(first_net))
    assert first_net.images == 12 + 8  # one real pass and one generated pass for all seven metrics
    assert roots  # the first run computed the real covariance's root
    files = {path.name.split("-")[1]: path for path in cache.iterdir()}
    # One extractor: FID, sFID, FD∞ and FD_DINOv2 share one statistics file (now with its root); one reservoir each.
    assert sorted(files) == ["cmmd", "kid", "precision_recall", "statistics"]
    assert load_statistics(files["statistics"]).sigma_root is not None
    prdc = load_artifact(
        files["precision_recall"], kind="real_reservoir/PrecisionRecallDensityCoverage", names=("features", "radii")
    )
    assert prdc.arrays["radii"].shape == (10,)  # the k-NN radii of the bounded reservoir, cached with it
    assert prdc.provenance.num_samples == 12
    assert prdc.provenance.weights_sha256 == weights_fingerprint(first_net)  # the encoder, in the provenance

    roots.clear()
    dataset, second_net = CountingImages(12), CountingNet()
    side, warned = real_side(dataset, cache)
    second: dict[str, float] = {}
    notes = caught_cache_notes(lambda: second.update(evaluate(side, suite_plugs(second_net))))
    assert not notes
    assert not warned
    assert second_net.images == 8  # every real side from the cache: no real image through the network
    assert dataset.reads == 12  # read once, to fingerprint the data
    assert roots == []  # the root came with the statistics
    assert second == pytest.approx(first, rel=1e-12, abs=1e-15)
    # Resumed with the checkpoint's fingerprint trusted: not one real image is read.
    unread, third_net = CountingImages(12), CountingNet()
    resumed, _ = real_side(unread, cache)
    resumed.restore(side.data_key, trust=True)
    assert evaluate(resumed, suite_plugs(third_net)) == pytest.approx(first, rel=1e-12, abs=1e-15)
    assert (unread.reads, third_net.images) == (0, 8)


def test_damaged_or_foreign_suite_artifacts_are_recomputed_with_a_warning(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = evaluate(real_side(CountingImages(12), cache)[0], suite_plugs(CountingNet()))
    files = {path.name.split("-")[1]: path for path in cache.iterdir()}
    files["statistics"].write_bytes(files["statistics"].read_bytes()[:-20])
    files["cmmd"].write_bytes(b"")
    # A valid artifact of the right kind where another extractor's is expected: its provenance refuses it.
    other = CountingNet()
    torch.nn.init.constant_(other.head.bias, 0.5)
    evaluate(real_side(CountingImages(12), tmp_path / "other")[0], suite_plugs(other))
    (foreign,) = (tmp_path / "other").glob("real-precision_recall-*.npz")
    shutil.copyfile(foreign, files["precision_recall"])

    net = CountingNet()
    second: dict[str, float] = {}
    notes = caught_cache_notes(
        lambda: second.update(evaluate(real_side(CountingImages(12), cache)[0], suite_plugs(net)))
    )
    assert len(notes) == 3
    for name in ("statistics", "cmmd", "precision_recall"):
        assert any("ignores the cached" in note and str(files[name]) in note for note in notes), name
    assert any("another extractor" in note for note in notes)
    assert net.images == 12 + 8  # recomputed
    assert second == pytest.approx(first, rel=1e-12, abs=1e-15)
    third = CountingNet()
    assert caught_cache_notes(lambda: evaluate(real_side(CountingImages(12), cache)[0], suite_plugs(third))) == []
    assert third.images == 8  # rewritten: read without a word


def test_another_encoder_has_another_key_and_never_loads_the_first_ones_files(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    side, _ = real_side(CountingImages(12), cache)
    plugs = suite_plugs(CountingNet())
    evaluate(side, plugs)
    other = CountingNet()
    torch.nn.init.constant_(other.head.bias, 0.5)
    other_side, _ = real_side(CountingImages(12), cache)
    other_plugs = suite_plugs(other)
    assert caught_cache_notes(lambda: evaluate(other_side, other_plugs)) == []
    assert other.images == 12 + 8  # nothing of the first encoder's was loaded
    assert other_side.cache_key(other_plugs) != side.cache_key(plugs)
    assert len(list(cache.iterdir())) == 8  # two sets of four files
