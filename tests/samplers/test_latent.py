"""GAN and VAE samplers: the latent law, labels, shards, modes, and VAE reconstructions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lightning_genmetrics.samplers import GANSampler, VAESampler, reconstruct_images, sample_range, sample_seed


class ConditionalGenerator(nn.Module):
    """Rows do not interact; label c shifts the image by 0.1·c. Records whether it ran in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 12)
        self.norm = nn.BatchNorm1d(12)
        self.modes: list[bool] = []

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.modes.append(self.training)
        h = torch.tanh(self.norm(self.linear(z)))
        if labels is not None:
            h = h + 0.1 * labels.reshape(-1, 1)
        return h.reshape(-1, 3, 2, 2)


def test_latents_are_standard_normal_per_sample(rng):
    # An identity generator shows the latents: sample i's z is the first draw of its generator, N(0, I).
    n, seed = 4000, int(rng.integers(2**63))
    sampler = GANSampler(lambda z: z.reshape(-1, 2, 1, 1), (2,), clamp_output=False)
    z = sample_range(sampler, 0, n, seed=seed, batch_size=1000, device="cpu").reshape(n, 2).double()
    assert bool((z.mean(0).abs() < 5 / math.sqrt(n)).all())
    assert bool(((z.var(0) - 1).abs() < 5 * math.sqrt(2 / (n - 1))).all())
    for i in (0, 17, n - 1):
        expected = torch.randn(2, generator=torch.Generator().manual_seed(sample_seed(seed, i)))
        assert torch.equal(z[i].float(), expected)


def test_labels_are_drawn_uniformly_when_missing(rng):
    n, k = 6000, 4
    seen = []

    def generator(z, labels):
        seen.append(labels)
        return z.reshape(-1, 1, 1, 1).tanh()

    sampler = GANSampler(generator, (1,), num_classes=k)
    sampler(n, generator=torch.Generator().manual_seed(int(rng.integers(2**31))), device="cpu")
    counts = torch.bincount(seen[0], minlength=k).numpy()
    np.testing.assert_array_less(np.abs(counts / n - 1 / k), 5 * math.sqrt((1 / k) * (1 - 1 / k) / n))
    given = torch.tensor([3, 0, 2])
    sampler(3, generator=torch.Generator(), device="cpu", labels=given)
    assert torch.equal(seen[-1], given)


@pytest.mark.parametrize("with_labels", [False, True])
def test_shards_equal_one_process(rng, with_labels):
    net = ConditionalGenerator()
    sampler = GANSampler(net, (6,), num_classes=5)
    seed = int(rng.integers(2**63))
    labels = torch.from_numpy(rng.integers(0, 5, 30)) if with_labels else None
    whole = sample_range(sampler, 0, 30, seed=seed, batch_size=30, device="cpu", labels=labels)
    parts = [
        sample_range(sampler, lo, hi, seed=seed, batch_size=bs, device="cpu",
                     labels=None if labels is None else labels[lo:hi])
        for lo, hi, bs in ((0, 13, 4), (13, 30, 6))
    ]  # fmt: skip
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-6, atol=1e-6)


def test_eval_mode_no_grad_and_global_rng():
    net = ConditionalGenerator()
    state = torch.get_rng_state()
    out = GANSampler(net, (6,), num_classes=2)(5, generator=torch.Generator(), device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    assert net.modes == [False]
    assert net.training
    assert net.norm.training
    assert not out.requires_grad


def test_output_is_clamped_to_the_declared_range():
    gan = GANSampler(lambda z: 3 * z.reshape(-1, 1, 2, 2), (4,))
    out = gan(50, generator=torch.Generator(), device="cpu")
    assert out.min() == -1
    assert out.max() == 1
    vae = VAESampler(lambda z: 3 * z.reshape(-1, 1, 2, 2), (4,))
    out = vae(50, generator=torch.Generator(), device="cpu")
    assert out.min() == 0
    assert out.max() == 1
    assert vae.output_range == (0.0, 1.0)
    assert gan.output_range == (-1.0, 1.0)


def test_vae_sampler_decodes_prior_latents():
    decoder = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Unflatten(1, (1, 2, 2)))
    sampler = VAESampler(decoder, (3,))
    gens = [torch.Generator().manual_seed(s) for s in (4, 5)]
    out = sampler(2, generator=gens, device="cpu")
    z = torch.stack([torch.randn(3, generator=torch.Generator().manual_seed(s)) for s in (4, 5)])
    torch.testing.assert_close(out, decoder(z).detach())


@pytest.mark.parametrize(
    ("sampler", "call", "error", "match"),
    [
        (GANSampler(lambda z: z, (1, 2, 2)), {"labels": torch.tensor([0, 1])}, ValueError,
         r"`labels` for an unconditional generator \(num_classes=None\)"),
        (GANSampler(lambda z, c: z, (1, 2, 2), num_classes=3), {"labels": torch.tensor([0, 3])}, ValueError,
         r"`labels` in \[0, 3\) \(num_classes\), got values in \[0, 3\]"),
        (GANSampler(lambda z, c: z, (1, 2, 2), num_classes=3), {"labels": torch.tensor([0])}, ValueError,
         r"`labels` to have shape \[num_samples\] = \[2\], got shape \(1,\)"),
        (GANSampler(lambda z: z, (4,)), {}, ValueError,
         r"`generator` to return shape \[num_samples, C, H, W\] with num_samples = 2, got shape \(2, 4\)"),
        (GANSampler(lambda z: z * math.inf, (1, 1, 2)), {}, ValueError,
         r"NaN/Inf in 2 of 2 samples .* from GANSampler\(latent_shape=\(1, 1, 2\).*, computed in torch.float32"),
        (VAESampler(lambda z: (z,), (1, 1, 2)), {}, TypeError, r"`decoder` to return a torch.Tensor, got tuple"),
    ],
)  # fmt: skip
def test_bad_calls(sampler, call, error, match):
    with pytest.raises(error, match=match):
        sampler(2, generator=torch.Generator(), device="cpu", **call)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: GANSampler("g", (4,)), TypeError, r"`generator` to be callable, got str"),
        (lambda: VAESampler(None, (4,)), TypeError, r"`decoder` to be callable, got NoneType"),
        (lambda: GANSampler(abs, (4, 0)), ValueError, r"`latent_shape` to be a non-empty tuple of positive ints"),
        (lambda: GANSampler(abs, 128), ValueError, r"`latent_shape` .*got 128"),
        (lambda: GANSampler(abs, (4,), num_classes=0), ValueError, r"`num_classes` to be an int >= 1, got 0"),
        (lambda: VAESampler(abs, (4,), output_range=(0, 255)), ValueError, r"`output_range` .*got \(0, 255\)"),
    ],
)
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


class TinyVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.Dropout(0.5))
        self.decoder = nn.Sequential(nn.Linear(2, 12), nn.Sigmoid(), nn.Unflatten(1, (3, 2, 2)))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def posterior(self, x: torch.Tensor) -> torch.distributions.Normal:
        mean, logvar = self.encode(x)
        return torch.distributions.Normal(mean, (0.5 * logvar).exp())


def test_reconstructions_decode_the_posterior_mean(rng):
    vae = TinyVAE()
    images = torch.from_numpy(rng.uniform(0, 1, (7, 3, 2, 2))).float()
    state = torch.get_rng_state()
    out = reconstruct_images(vae.encode, vae.decoder, images, batch_size=3)
    assert torch.equal(torch.get_rng_state(), state)  # the encoder's dropout was off (eval mode)
    vae.eval()
    expected = vae.decoder(vae.encode(images)[0]).detach()
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert not out.requires_grad


def test_reconstructions_restore_modes_and_accept_distributions():
    vae = TinyVAE()
    images = torch.rand(4, 3, 2, 2)
    out = reconstruct_images(vae.posterior, vae.decoder, images, output_range=(-1, 1))
    assert vae.training
    assert vae.encoder[2].training
    assert out.shape == images.shape
    with torch.no_grad():
        vae.eval()
        torch.testing.assert_close(out, vae.decoder(vae.encode(images)[0]))


def test_bad_reconstruction_inputs():
    vae = TinyVAE()
    with pytest.raises(ValueError, match=r"`decoder` to return the shape of `images` \(2, 3, 2, 2\), got \(2, 1, 2, 2"):
        reconstruct_images(vae.encode, lambda z: torch.zeros(len(z), 1, 2, 2), torch.rand(2, 3, 2, 2))
    with pytest.raises(TypeError, match=r"a \(mean, ...\) tuple or an object with a `mean` tensor, got str"):
        reconstruct_images(lambda x: "z", vae.decoder, torch.rand(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"`images` to be floating point \[N, C, H, W\], got dtype torch.uint8"):
        reconstruct_images(vae.encode, vae.decoder, torch.zeros(2, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"`batch_size` to be an int >= 1, got 0"):
        reconstruct_images(vae.encode, vae.decoder, torch.rand(2, 3, 2, 2), batch_size=0)
