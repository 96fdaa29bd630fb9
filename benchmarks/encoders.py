"""Seconds per 1,000 images of each encoder on CPU, this project's against torch-fidelity 0.4's extractor for the same
network, in one run.

Every pair gets the same seeded weights and the same seeded uint8 images ``[batch, 3, 256, 256]``; each side runs
its whole extractor (uint8 in, features out: resize, normalisation, network) under ``torch.inference_mode()``:

- FID InceptionV3, 2048-d pool: ``FIDInceptionV3(layer="2048", resize="tf1")`` against
  ``FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])``, both loading
  ``tests.helpers.seeded_inception_state()`` (the real key set) from a temporary file; the same TF1 bilinear resize,
  so the features agree.
- CLIP ViT-B/32: ``CLIPImageEncoder("ViT-B/32", preprocess="torch-fidelity")`` (the same TF1 bilinear resize as
  torch-fidelity's extractor) against ``FeatureExtractorCLIP("clip-vit-b-32", ["clip"])``. torch-fidelity reads
  OpenAI's TorchScript archive from its download URL; here its downloader is replaced by one that hands back our
  random tower (OpenAI's key names, weights rounded to float16 as OpenAI's files are, a zero text projection that
  only sets the embedding width), which its own ``build_model`` then loads. Ours with its default ``"clip"``
  preprocessing (PIL bicubic, bit-exact with OpenAI's) is timed too.
- DINOv2 ViT-S/14: ``DINOv2Encoder("vits14")`` against ``FeatureExtractorDinoV2("dinov2-vit-s-14", ["dinov2"])``.
  torch-fidelity builds the network with ``torch.hub.load("facebookresearch/dinov2", ...)``, which downloads the
  hub repository's code and the weights; it cannot be built offline. With ``--dinov2-hub-dir`` pointing at a local
  copy of that repository, its ``torch.hub.load`` is redirected to the local code with ``pretrained=False`` and our
  weights are loaded strictly; without it, timm's ``vit_small_patch14_dinov2`` (the same weights) is timed as the
  anchor, wrapped in torch-fidelity's preprocessing. The resize differs: torch-fidelity uses TF1 bilinear to 224,
  ours PIL bicubic (``"dgm-eval"``, the default, the FD_DINOv2 definition) or antialiased torch bicubic
  (``"edm2"``), both timed; the networks are checked on the same normalised pixels.

A first untimed pass of each extractor warms it up (and gives the agreement check); then ``--repeats`` timed passes,
rotating which extractor goes first. Reported: seconds per 1,000 images of the median pass, and the median over
repeats of the time ratio ours / anchor within a repeat (below 1: ours is faster).

Run: ``PYTHONPATH=. python benchmarks/encoders.py [--dinov2-hub-dir PATH] [--batch-size 32 --repeats 3
--threads 1]`` (17 min on 2 CPU cores shared with other work at load average 10, about 7 min on 2 idle cores; one
thread).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch
import torch_fidelity
from torch import Tensor
from torch_fidelity import feature_extractor_clip
from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP
from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from lightning_genmetrics.features.clip import CLIPImageEncoder
from lightning_genmetrics.features.dinov2 import DINOv2Encoder, dinov2_preprocess
from lightning_genmetrics.features.inception import FIDInceptionV3
from tests.helpers import seeded_inception_state

Extractor = Callable[[Tensor], Tensor]


def inception_pair() -> tuple[dict[str, Extractor], str]:
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "seeded-inception.pth"
        torch.save(seeded_inception_state(), weights)
        ours = FIDInceptionV3(layer="2048", resize="tf1", weights_path=weights, verify_weights=False)
        theirs = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
        )
    return {"ours tf1": ours, "torch-fidelity": lambda images: theirs(images)[0]}, "torch-fidelity"


class _Archive:
    """What torch-fidelity's CLIP loader gets from its download: an object with ``state_dict()``."""

    def __init__(self, state: dict[str, Tensor]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.state)


def clip_pair() -> tuple[dict[str, Extractor], str]:
    torch.manual_seed(0)
    ours = CLIPImageEncoder("ViT-B/32", preprocess="torch-fidelity", pretrained=False)
    with torch.no_grad():
        for tensor in ours.visual.state_dict().values():
            tensor.copy_(tensor.half().float())  # torch-fidelity's build_model rounds the tower to float16
    state = {f"visual.{name}": tensor.clone() for name, tensor in ours.visual.state_dict().items()}
    state["text_projection"] = torch.zeros(ours.num_features, ours.num_features)
    with mock.patch.object(feature_extractor_clip, "load_state_dict_from_url", return_value=_Archive(state)):
        theirs = FeatureExtractorCLIP("clip-vit-b-32", ["clip"])
    pil = CLIPImageEncoder("ViT-B/32", preprocess="clip", pretrained=False)
    pil.visual.load_state_dict(ours.visual.state_dict())
    return {
        "ours torch-fidelity resize": ours,
        "ours clip (PIL) resize": pil,
        "torch-fidelity": lambda images: theirs(images)[0],
    }, "torch-fidelity"


def dinov2_pair(hub_dir: str | None) -> tuple[dict[str, Extractor], str, float]:
    torch.manual_seed(0)
    ours = DINOv2Encoder("vits14", resize="dgm-eval", pretrained=False)
    edm2 = DINOv2Encoder("vits14", resize="edm2", pretrained=False)
    edm2.load_state_dict(ours.state_dict())
    if hub_dir is not None:
        hub_load = torch.hub.load

        def local_hub(repo: str, model: str, *args, **kwargs) -> torch.nn.Module:
            network = hub_load(hub_dir, model, source="local", pretrained=False)
            network.load_state_dict(ours.state_dict(), strict=True)
            return network

        with mock.patch.object(torch.hub, "load", local_hub):
            extractor = FeatureExtractorDinoV2("dinov2-vit-s-14", ["dinov2"])
        network, anchor, name = extractor.model, lambda images: extractor(images)[0], "torch-fidelity"
    else:
        import timm

        state = {key: value for key, value in ours.state_dict().items() if key != "mask_token"}
        state["pos_embed"] = ours.positional_embedding(16, 16).detach().clone()
        network = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=224)
        network.load_state_dict(state, strict=True)
        network.eval()
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

        mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1) * 255
        std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1) * 255

        def anchor(images: Tensor) -> Tensor:
            x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(224, 224), align_corners=False)
            return network((x - mean) / std)

        name = "timm + torch-fidelity resize"
    pixels = dinov2_preprocess(torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8), "edm2")
    with torch.inference_mode():
        mine, theirs = ours.encode(pixels), network(pixels)
    difference = float((mine - theirs).abs().max() / theirs.abs().max())
    return {"ours dgm-eval resize": ours, "ours edm2 resize": edm2, name: anchor}, name, difference


def timed(extractor: Extractor, images: Tensor) -> tuple[float, Tensor]:
    with torch.inference_mode():
        start = time.perf_counter()
        features = extractor(images)
        return time.perf_counter() - start, features


def bench(title: str, extractors: dict[str, Extractor], anchor: str, images: Tensor, repeats: int) -> list[str]:
    warm = {name: timed(extractor, images)[1] for name, extractor in extractors.items()}
    reference = warm[anchor]
    seconds: dict[str, list[float]] = {name: [] for name in extractors}
    names = list(extractors)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            seconds[name].append(timed(extractors[name], images)[0])
    batch = images.shape[0]
    lines = []
    for name in names:
        agreement = float((warm[name] - reference).abs().max() / reference.abs().max())
        ratio = statistics.median(ours / theirs for ours, theirs in zip(seconds[name], seconds[anchor], strict=True))
        lines.append(
            f"{title:16s} {name:30s} {1000 * statistics.median(seconds[name]) / batch:9.1f} {ratio:8.2f}   "
            f"{agreement:9.1e}   {' '.join(f'{s:.2f}' for s in seconds[name])}"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["inception", "clip", "dinov2"])
    parser.add_argument("--dinov2-hub-dir", default=None, help="a local copy of facebookresearch/dinov2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="input side length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torch-fidelity {torch_fidelity.__version__}, "
        f"{os.cpu_count()} CPUs, batch {args.batch_size} × 3×{args.size}×{args.size} uint8, load {os.getloadavg()}"
    )
    images = torch.randint(
        0,
        256,
        (args.batch_size, 3, args.size, args.size),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(0),
    )
    print(f"\n{'encoder':16s} {'extractor':30s} {'s/1000 img':>9s} {'ours/anchor':>8s} {'rel. diff':>9s}   passes (s)")
    for encoder in args.encoders:
        if encoder == "inception":
            extractors, anchor = inception_pair()
            bench("InceptionV3 2048", extractors, anchor, images, args.repeats)
        elif encoder == "clip":
            extractors, anchor = clip_pair()
            bench("CLIP ViT-B/32", extractors, anchor, images, args.repeats)
        else:
            extractors, anchor, difference = dinov2_pair(args.dinov2_hub_dir)
            print(f"(DINOv2 networks on the same pixels: max relative difference {difference:.1e})")
            bench("DINOv2 ViT-S/14", extractors, anchor, images, args.repeats)
    print(
        "\nrel. diff: max |features - anchor's| / max |anchor's| on the warm-up batch (other resizes differ by design)"
    )
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
