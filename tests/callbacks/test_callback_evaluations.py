"""GenerativeMetricsCallback beyond FID/IS/KID: EMA weights, step cadence, per-metric extractors, conditional
(classifier and segmenter) and reconstruction evaluation, figures, progress bar, the KID cache and phase timings."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch import callbacks as pl_callbacks
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import (
    CallableSampler,
    InceptionScore,
    KernelInceptionDistance,
    SegmentationMetrics,
    load_statistics,
    sample_range,
    save_statistics,
)
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.features.preprocess import images_to_uint8
from tests.callbacks.support import (
    LATENT,
    BrightnessClassifier,
    ConditionalGAN,
    CountingImages,
    ThresholdSegmenter,
    TinyDiffusion,
    TinyGAN,
    TinyGANWithValidation,
    conditional_sampler,
    gan_sampler,
    guidance_sweep_callback,
    make_trainer,
    masks_to_images,
    read_events,
    train_loader,
)
from tests.helpers import TinyFeatureNet

# Lightning's weight-averaging callbacks arrived in 2.6; CI also runs these tests at the floor (Lightning 2.4), where
# the tests of an `EMAWeightAveraging` have no subject.
EMAWeightAveraging = getattr(pl_callbacks, "EMAWeightAveraging", None)
needs_weight_averaging = pytest.mark.skipif(
    EMAWeightAveraging is None, reason="this Lightning has no EMAWeightAveraging (added in Lightning 2.6)"
)

NUM_SAMPLES = 24


class WeightProbe:
    """A GAN sampler that records the generator weight each evaluation samples with."""

    def __init__(self, pl_module: TinyGAN) -> None:
        self.module = pl_module
        self.sampler = gan_sampler(pl_module)
        self.output_range = self.sampler.output_range
        self.seen: list[torch.Tensor] = []

    def __call__(self, num_samples: int, **kwargs: object) -> torch.Tensor:
        weight = self.module.generator[0].weight.detach().clone()
        if not self.seen or not torch.equal(self.seen[-1], weight):
            self.seen.append(weight)
        return self.sampler(num_samples, **kwargs)


class TinyGANRecordingAverage(TinyGANWithValidation):
    """Records, after every step, the EMA callback's average (updated by then) and the training weight."""

    def __init__(self) -> None:
        super().__init__()
        self.averages: list[torch.Tensor] = []
        self.trained: list[torch.Tensor] = []

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        (averaging,) = [cb for cb in self.trainer.callbacks if isinstance(cb, EMAWeightAveraging)]
        self.averages.append(averaging._average_model.module.generator[0].weight.detach().clone())
        self.trained.append(self.generator[0].weight.detach().clone())


def fid_only(real: object, sampler: object, **kwargs: object) -> GenerativeMetricsCallback:
    options = {
        "metrics": ("fid",),
        "feature_extractor": TinyFeatureNet(16, seed=5, declare=True),
        "num_samples": NUM_SAMPLES,
        "batch_size": 10,
        "num_images": 4,
    }
    options.update(kwargs)
    return GenerativeMetricsCallback(sampler, real, **options)


@needs_weight_averaging
@pytest.mark.parametrize("ema_first", [True, False])
def test_evaluates_the_ema_weights_whatever_the_callback_order(tmp_path: Path, ema_first: bool) -> None:
    probes: list[WeightProbe] = []

    def probe_sampler(pl_module: TinyGAN) -> WeightProbe:
        probes.append(WeightProbe(pl_module))
        return probes[-1]

    averaging = EMAWeightAveraging(decay=0.5)
    callback = fid_only(DataLoader(CountingImages(), batch_size=8), probe_sampler)
    model = TinyGANRecordingAverage()
    callbacks = [averaging, callback] if ema_first else [callback, averaging]
    trainer = make_trainer(tmp_path, callbacks, max_epochs=2)
    trainer.fit(model, train_loader(), DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4))

    (probe,) = probes
    assert [record["ema"] for record in callback.history] == [True, True]
    # Evaluations after steps 2 and 4 (two batches an epoch) sampled with the average after those steps.
    assert len(probe.seen) == 2
    for seen, step in zip(probe.seen, (2, 4), strict=True):
        torch.testing.assert_close(seen, model.averages[step - 1], rtol=0, atol=0)
        assert not torch.equal(seen, model.trained[step - 1])
    # Training continued from its own weights: the final weights are the trained ones, then (on_train_end) the
    # EMA callback copies its average in.
    torch.testing.assert_close(model.generator[0].weight, model.averages[-1], rtol=0, atol=0)


@needs_weight_averaging
def test_without_an_updated_average_the_training_weights_are_used(tmp_path: Path) -> None:
    probes: list[WeightProbe] = []

    def probe_sampler(pl_module: TinyGAN) -> WeightProbe:
        probes.append(WeightProbe(pl_module))
        return probes[-1]

    averaging = EMAWeightAveraging(decay=0.5, update_starting_at_step=1000)
    callback = fid_only(DataLoader(CountingImages(), batch_size=8), probe_sampler)
    model = TinyGANRecordingAverage()
    trainer = make_trainer(tmp_path, [callback, averaging], max_epochs=1)
    trainer.fit(model, train_loader(), DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4))
    assert [record["ema"] for record in callback.history] == [False]
    torch.testing.assert_close(probes[0].seen[0], model.trained[-1], rtol=0, atol=0)


def test_a_user_ema_module_is_sampled_and_the_training_weights_restored(tmp_path: Path) -> None:
    probes: list[WeightProbe] = []

    def probe_sampler(pl_module: TinyGAN) -> WeightProbe:
        probes.append(WeightProbe(pl_module))
        return probes[-1]

    model = TinyGAN()
    ema = copy.deepcopy(model.generator)
    with torch.no_grad():
        for parameter in ema.parameters():
            parameter.mul_(0.5)
    callback = fid_only(DataLoader(CountingImages(), batch_size=8), probe_sampler, ema=ema)
    reference = TinyGAN()  # the same training without the callback
    make_trainer(tmp_path / "a", [callback], max_epochs=2).fit(model, train_loader())
    make_trainer(tmp_path / "b", [], max_epochs=2).fit(reference, train_loader())

    assert [record["ema"] for record in callback.history] == [True, True]
    assert all(torch.equal(seen, ema[0].weight) for seen in probes[0].seen)
    torch.testing.assert_close(model.generator[0].weight, reference.generator[0].weight, rtol=0, atol=0)


def test_an_ema_module_that_fits_no_submodule_is_refused(tmp_path: Path) -> None:
    callback = fid_only(DataLoader(CountingImages(), batch_size=8), gan_sampler, ema=nn.Linear(3, 2))
    with pytest.raises(MisconfigurationException, match=r"Invalid `ema`: .*found no submodule"):
        make_trainer(tmp_path, [callback], max_epochs=1).fit(TinyGAN(), train_loader())


def test_step_cadence(tmp_path: Path) -> None:
    dataset = CountingImages()
    callback = fid_only(DataLoader(dataset, batch_size=8), gan_sampler, every_n_epochs=None, every_n_steps=3)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="gen/fid", every_n_train_steps=3)
    trainer = make_trainer(tmp_path, [callback, checkpoint], max_epochs=3, log_every_n_steps=1)
    trainer.fit(TinyGAN(), train_loader())
    assert [record["global_step"] for record in callback.history] == [3, 6]
    assert [record["epoch"] for record in callback.history] == [1, 2]
    assert dataset.reads == 8 + len(dataset)  # the first batch's check at setup, then one pass
    events = read_events(trainer.logger.log_dir)
    assert [s.step for s in events.Scalars("gen/fid")] == [2, 5]
    assert [s.value for s in events.Scalars("gen/fid")] == pytest.approx([r["fid"] for r in callback.history])
    assert [s.step for s in events.Scalars("gen/eval_seconds")] == [2, 5]
    assert [checkpoint.best_model_score.item()] == pytest.approx([min(r["fid"] for r in callback.history)])
    assert checkpoint.best_model_path.endswith(f"step={callback.history[0]['global_step']}.ckpt") or (
        checkpoint.best_model_path.endswith(f"step={callback.history[1]['global_step']}.ckpt")
    )

    both = fid_only(DataLoader(CountingImages(), batch_size=8), gan_sampler, every_n_epochs=1, every_n_steps=2)
    make_trainer(tmp_path / "both", [both], max_epochs=2).fit(TinyGAN(), train_loader())
    # Steps 2 and 4 end the epochs: the epoch evaluation does not repeat the step evaluation of the same model.
    assert [record["global_step"] for record in both.history] == [2, 4]

    with pytest.raises(MisconfigurationException, match="`every_n_epochs` or `every_n_steps`"):
        fid_only(None, gan_sampler, every_n_epochs=None)
    with pytest.raises(MisconfigurationException, match=re.escape("`every_n_steps` to be None or an int >= 1, got 0")):
        fid_only(None, gan_sampler, every_n_steps=0)


def test_per_metric_feature_extractors(tmp_path: Path) -> None:
    pool, logits = TinyFeatureNet(16, seed=5, declare=True), TinyFeatureNet(5, seed=9, declare=True)
    callback = GenerativeMetricsCallback(
        gan_sampler,
        DataLoader(CountingImages(), batch_size=8),
        metrics=("kid", "is"),
        feature_extractor={"kid": pool, "is": logits},
        num_samples=NUM_SAMPLES,
        batch_size=10,
        metric_kwargs={"is": {"splits": 1}, "kid": {"subsets": 4, "subset_size": 8}},
    )
    model = TinyGAN()
    make_trainer(tmp_path, [callback], max_epochs=1, logger=False).fit(model, train_loader())
    samples = sample_range(gan_sampler(model), 0, NUM_SAMPLES, seed=0, batch_size=10, device="cpu")
    inception = InceptionScore(logits, splits=1, input_range=(-1, 1), feature_input="float")
    inception.update(samples, sample_ids=torch.arange(NUM_SAMPLES))
    kid = KernelInceptionDistance(pool, subsets=4, subset_size=8, input_range=(-1, 1), feature_input="float")
    kid.update(CountingImages().images, real=True)
    kid.update(samples, real=False, sample_ids=torch.arange(NUM_SAMPLES))
    (record,) = callback.history
    assert record["is"] == pytest.approx(float(inception.compute()[0]), rel=1e-9)
    assert record["kid"] == pytest.approx(float(kid.compute()[0]), rel=1e-9, abs=1e-12)

    with pytest.raises(MisconfigurationException, match=r"`feature_extractor` to be None, an nn.Module, or a mapping"):
        GenerativeMetricsCallback(gan_sampler, None, metrics=("is",), feature_extractor={"fid": pool})


def test_classifier_scores_samples_against_their_conditioning_labels(tmp_path: Path) -> None:
    callback = fid_only(
        DataLoader(CountingImages(), batch_size=8), conditional_sampler, classifier=BrightnessClassifier()
    )
    model = ConditionalGAN()
    trainer = make_trainer(tmp_path, [callback], max_epochs=1)
    trainer.fit(model, train_loader())

    labels = torch.arange(NUM_SAMPLES) % 3
    samples = sample_range(
        conditional_sampler(model), 0, NUM_SAMPLES, seed=0, batch_size=7, device="cpu", labels=labels
    )
    logits = BrightnessClassifier()(images_to_uint8(samples, (-1, 1)).float() / 255)
    (record,) = callback.history
    accuracy = float((logits.argmax(1) == labels).double().mean())
    assert 0.4 < accuracy < 1.0  # a test that can tell right from wrong labels
    assert record["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    per_class = [float((logits.argmax(1)[labels == k] == k).double().mean()) for k in range(3)]
    assert record["balanced_accuracy"] == pytest.approx(np.mean(per_class), abs=1e-12)
    exact = roc_auc_score(labels.numpy(), torch.softmax(logits.double(), 1).numpy(), multi_class="ovr")
    assert record["auroc"] == pytest.approx(exact, abs=1e-12)  # exact: no bins, so no bound is logged
    assert "auroc_error_bound" not in record
    events = read_events(trainer.logger.log_dir)
    assert [s.value for s in events.Scalars("gen/accuracy")] == pytest.approx([accuracy])

    with pytest.raises(MisconfigurationException, match="needs `num_classes`"):
        make_trainer(tmp_path / "b", [fid_only(None, gan_sampler, metrics=(), classifier=BrightnessClassifier())],
                     max_epochs=1).fit(TinyGAN(), train_loader())  # fmt: skip


def test_segmenter_scores_mask_conditioned_samples(tmp_path: Path) -> None:
    masks = torch.randint(0, 3, (10, 8, 8), generator=torch.Generator().manual_seed(6))
    sampler = CallableSampler(masks_to_images, output_range=(0, 1))
    callback = GenerativeMetricsCallback(
        sampler,
        None,
        metrics=(),
        segmenter=ThresholdSegmenter(),
        masks=DataLoader(TensorDataset(masks), batch_size=4),
        num_mask_classes=3,
        num_samples=4,
    )
    make_trainer(tmp_path, [callback], max_epochs=1, logger=False).fit(TinyGAN(), train_loader())
    images = sample_range(sampler, 0, 10, seed=0, batch_size=3, device="cpu", labels=masks)
    predicted = ThresholdSegmenter()(images_to_uint8(images, (0, 1)).float() / 255)
    expected = SegmentationMetrics(3)
    expected.update(predicted, masks)
    scores = expected.compute()
    (record,) = callback.history
    assert 0.3 < scores["miou"] < 1.0
    for name in ("miou", "pixel_accuracy", "mdice"):
        assert record[name] == pytest.approx(float(scores[name]), abs=1e-12), name

    with pytest.raises(MisconfigurationException, match="`segmenter`, `masks` and `num_mask_classes` together"):
        GenerativeMetricsCallback(sampler, None, metrics=(), segmenter=ThresholdSegmenter())


class TinyVAE(LightningModule):
    """An autoencoder on [0, 1] images: encoder -> (mean, logvar), sigmoid decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2 * LATENT))
        self.decoder = nn.Sequential(nn.Linear(LATENT, 3 * 8 * 8), nn.Sigmoid(), nn.Unflatten(1, (3, 8, 8)))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(images).chunk(2, dim=1)
        return mean, logvar

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = (batch[0] + 1) / 2
        mean, logvar = self.encode(images)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return (self.decoder(z) - images).pow(2).sum((1, 2, 3)).mean() + 0.01 * kl

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def vae_sampler(pl_module: TinyVAE) -> object:
    from lightning_genmetrics import VAESampler

    return VAESampler(pl_module.decoder, latent_shape=(LATENT,))


def reconstruct(pl_module: TinyVAE, images: torch.Tensor) -> torch.Tensor:
    return pl_module.decoder(pl_module.encode(images)[0])


def test_reconstruction_metrics_of_a_vae(tmp_path: Path) -> None:
    data = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    callback = fid_only(
        DataLoader(TensorDataset((CountingImages().images + 1) / 2), batch_size=8),
        vae_sampler,
        reconstruct=reconstruct,
        reconstruction_data=DataLoader(TensorDataset(data[:, :, :8, :8]), batch_size=4),
        reconstruction_metrics=("ssim", "psnr"),
        metric_kwargs={"ssim": {"sigma": 0.5}},  # the callback keeps the valid-window protocol
        real_input_range=(0, 1),
    )
    model = TinyVAE()
    trainer = make_trainer(tmp_path, [callback], max_epochs=2)
    trainer.fit(model, train_loader())

    images = data[:, :, :8, :8].double()
    with torch.no_grad():
        recon = reconstruct(model, images.float()).double().clamp(0, 1)
    ssim = np.mean([
        structural_similarity(images[i].numpy(), recon[i].numpy(), data_range=1.0, channel_axis=0,
                              gaussian_weights=True, sigma=0.5, use_sample_covariance=False)
        for i in range(10)
    ])  # fmt: skip
    psnr = np.mean([peak_signal_noise_ratio(images[i].numpy(), recon[i].numpy(), data_range=1.0) for i in range(10)])
    record = callback.history[-1]
    assert record["recon/ssim"] == pytest.approx(ssim, abs=1e-5)
    assert record["recon/psnr"] == pytest.approx(psnr, abs=1e-4)
    assert callback.best["recon/psnr"] == max(r["recon/psnr"] for r in callback.history)
    assert "seconds/reconstruction" in record
    events = read_events(trainer.logger.log_dir)
    assert len(events.Scalars("gen/recon/ssim")) == 2

    with pytest.raises(MisconfigurationException, match="`reconstruct` needs images"):
        GenerativeMetricsCallback(vae_sampler, None, metrics=(), reconstruct=reconstruct)


def test_figures_reach_tensorboard(tmp_path: Path) -> None:
    callback = guidance_sweep_callback()
    trainer = make_trainer(tmp_path, [callback], max_epochs=2)
    trainer.fit(TinyDiffusion(), train_loader())
    events = read_events(trainer.logger.log_dir)
    for tag in ("gen/pca", "gen/fid_is_tradeoff"):
        assert [image.step for image in events.Images(tag)] == [1, 3], tag
        assert min(events.Images(tag)[0].width, events.Images(tag)[0].height) > 100

    quiet = fid_only(DataLoader(CountingImages(), batch_size=8), gan_sampler, log_figures=False)
    trainer = make_trainer(tmp_path / "quiet", [quiet], max_epochs=1)
    trainer.fit(TinyGAN(), train_loader())
    assert "gen/pca" not in read_events(trainer.logger.log_dir).Tags()["images"]


def test_progress_bar_on_sampling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    callback = fid_only(DataLoader(CountingImages(), batch_size=8), gan_sampler, batch_size=5)
    make_trainer(tmp_path, [callback], max_epochs=1, enable_progress_bar=True, logger=False).fit(
        TinyGAN(), train_loader()
    )
    # tqdm redraws at most every 0.1 s: the first draw (0/5) is certain, later ones depend on the speed.
    assert re.search(r"gen/sampling: +\d+%.*\| [0-5]/5 ", capsys.readouterr().err)

    quiet = fid_only(DataLoader(CountingImages(), batch_size=8), gan_sampler, batch_size=5, progress_bar=False)
    make_trainer(tmp_path / "quiet", [quiet], max_epochs=1, enable_progress_bar=True, logger=False).fit(
        TinyGAN(), train_loader()
    )
    assert "gen/sampling" not in capsys.readouterr().err


class CountingExtractor(TinyFeatureNet):
    """Counts the images it extracts features from."""

    def __init__(self) -> None:
        super().__init__(16, seed=5, declare=True)
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return super().forward(x)


def test_a_fresh_run_finds_fid_and_kid_real_features_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning_genmetrics.metrics.frechet as frechet_module

    roots: list[int] = []
    original = frechet_module.psd_sqrt
    monkeypatch.setattr(frechet_module, "psd_sqrt", lambda s, **kw: roots.append(1) or original(s, **kw))
    records = []
    for run in ("first", "second"):
        extractor = CountingExtractor()
        dataset = CountingImages()
        callback = GenerativeMetricsCallback(
            gan_sampler,
            DataLoader(dataset, batch_size=8),
            metrics=("fid", "kid"),
            feature_extractor=extractor,
            num_samples=NUM_SAMPLES,
            batch_size=12,
            metric_kwargs={"kid": {"subsets": 3, "subset_size": 8, "max_samples": 12}},
            cache_dir=tmp_path / "cache",
        )
        torch.manual_seed(0)
        make_trainer(tmp_path / run, [callback], max_epochs=2, logger=False).fit(TinyGAN(), train_loader())
        records.append((callback.history, extractor.images, dataset.reads))
        # The real covariance's root: computed once in the first run, read from the cache in the second.
        assert len(roots) == 1, run
    (first, first_extracted, first_reads), (second, second_extracted, second_reads) = records
    # FID and KID share the extractor's pass over each batch. First run: one real pass with extraction, then 2
    # evaluations × 24 samples.
    # (Each run also reads the first batch, 8 images, to check it at setup.)
    assert (first_reads, first_extracted) == (8 + 16, 16 + 2 * NUM_SAMPLES)
    # Second run: a fingerprint pass reads the images but extracts nothing from them.
    assert (second_reads, second_extracted) == (8 + 16, 2 * NUM_SAMPLES)
    for a, b in zip(first, second, strict=True):
        assert b["fid"] == pytest.approx(a["fid"], rel=1e-12)
        assert b["kid"] == pytest.approx(a["kid"], rel=1e-12, abs=1e-15)
    assert len(list((tmp_path / "cache").glob("real-kid-*.npz"))) == 1
    (statistics_file,) = (tmp_path / "cache").glob("real-statistics-*.npz")
    assert load_statistics(statistics_file).sigma_root is not None  # the root, written into the statistics file
    # The second evaluation of a run does not touch the real data at all.
    assert all(record["seconds/real"] < first[0]["seconds/real"] for record in first[1:])
    for key in ("seconds/sampling", "seconds/features", "seconds/compute", "eval_seconds"):
        assert all(record[key] > 0 for record in first), key


def test_a_corrupt_kid_cache_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    def run(name: str) -> GenerativeMetricsCallback:
        callback = GenerativeMetricsCallback(
            gan_sampler,
            DataLoader(CountingImages(), batch_size=8),
            metrics=("kid",),
            feature_extractor=TinyFeatureNet(16, seed=5, declare=True),
            num_samples=NUM_SAMPLES,
            metric_kwargs={"kid": {"subsets": 3, "subset_size": 8}},
            cache_dir=tmp_path / "cache",
        )
        make_trainer(tmp_path / name, [callback], max_epochs=1, logger=False).fit(TinyGAN(), train_loader())
        return callback

    first = run("a")
    (path,) = (tmp_path / "cache").glob("real-kid-*.npz")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.warns(UserWarning, match="ignores the cached real features of 'kid'"):
        second = run("b")
    assert second.history[0]["kid"] == pytest.approx(first.history[0]["kid"], rel=1e-12, abs=1e-15)


def test_reconstruction_inputs_outside_the_declared_range_are_refused(tmp_path: Path) -> None:
    callback = GenerativeMetricsCallback(
        vae_sampler,
        None,
        metrics=(),
        reconstruct=reconstruct,
        reconstruction_data=DataLoader(TensorDataset(CountingImages().images), batch_size=8),  # [-1, 1]
        real_input_range=(0, 1),
        metric_kwargs={"ssim": {"gaussian_kernel": False, "kernel_size": 3}},
    )
    with pytest.raises(ValueError, match=r"reconstruction inputs in the declared range \(0.0, 1.0\).*real_input_range"):
        make_trainer(tmp_path, [callback], max_epochs=1, logger=False).fit(TinyVAE(), train_loader())


class TwoOptimizerGAN(TinyGAN):
    """Manual optimization with two optimizers: ``global_step`` counts both, twice per batch."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.critic = nn.Linear(3 * 8 * 8, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        generator_optimizer, critic_optimizer = self.optimizers()
        fake = self.generator(self.z[: batch[0].shape[0]])
        loss = self.critic(fake.flatten(1)).mean()
        generator_optimizer.zero_grad()
        self.manual_backward(loss)
        generator_optimizer.step()
        critic_loss = self.critic(batch[0].flatten(1)).mean() - self.critic(fake.detach().flatten(1)).mean()
        critic_optimizer.zero_grad()
        self.manual_backward(critic_loss)
        critic_optimizer.step()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.SGD(self.generator.parameters(), lr=0.1), torch.optim.SGD(self.critic.parameters(), lr=0.1)]


@pytest.mark.parametrize(("validation", "every_n_steps"), [(False, None), (True, None), (False, 3)])
def test_images_and_figures_share_the_scalars_step_with_two_optimizers(
    tmp_path: Path, validation: bool, every_n_steps: int | None
) -> None:
    callback = fid_only(
        DataLoader(CountingImages(), batch_size=8),
        gan_sampler,
        every_n_epochs=None if every_n_steps else 1,
        every_n_steps=every_n_steps,
    )
    trainer = make_trainer(tmp_path, [callback], max_epochs=3, log_every_n_steps=1)
    val = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4) if validation else None
    model = TwoOptimizerGAN()
    if validation:
        model.validation_step = lambda batch, batch_idx: None
    trainer.fit(model, train_loader(), val)
    assert trainer.global_step == 12  # 2 optimizers × 2 batches × 3 epochs
    events = read_events(trainer.logger.log_dir)
    scalar_steps = [s.step for s in events.Scalars("gen/fid")]
    # Step cadence counts optimizer steps (global_step 6 and 12: after batches 3 and 6); Lightning logs a batch's
    # values at the number of batches before it.
    assert scalar_steps == ([2, 5] if every_n_steps else [1, 3, 5])
    assert [image.step for image in events.Images("gen/samples")] == scalar_steps
    assert [image.step for image in events.Images("gen/pca")] == scalar_steps


def test_a_wrong_cached_root_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    def run(name: str) -> GenerativeMetricsCallback:
        callback = fid_only(DataLoader(CountingImages(), batch_size=8), gan_sampler, cache_dir=tmp_path / "cache")
        make_trainer(tmp_path / name, [callback], max_epochs=1, logger=False).fit(TinyGAN(), train_loader())
        return callback

    first = run("a")
    (path,) = (tmp_path / "cache").glob("real-statistics-*.npz")
    statistics = load_statistics(path)
    root = statistics.sigma_root
    assert root is not None
    # A valid file whose root is not this covariance's: the statistics are used, the root recomputed and rewritten.
    save_statistics(path, dataclasses.replace(statistics, sigma_root=torch.eye(16, dtype=torch.float64)))
    with pytest.warns(UserWarning, match="ignores the cached square root .*square root of the real covariance"):
        second = run("b")
    assert second.history[0]["fid"] == pytest.approx(first.history[0]["fid"], rel=1e-12)
    assert torch.allclose(load_statistics(path).sigma_root, root, rtol=0, atol=1e-12)
