"""The digits shared by the examples: scikit-learn's handwritten digits as 16×16 images, and their judge.

``load_digits_images`` gives the 1,797 bundled digits (offline) upsampled to ``[1, 16, 16]`` in [-1, 1];
``train_classifier`` trains (seconds, then cached on disk) the small ``DigitClassifier`` whose penultimate layer the
examples use for FID and KID and whose logits they use for the Inception Score, through ``ClassifierFeatures`` with
``input_transform=to_classifier_input``. Scripts in this folder import it as ``from digits_data import ...``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

NUM_CLASSES = 10
IMAGE_SIZE = 16
CLASSIFIER_VERSION = 2  # bump when the classifier or its training changes: it names the cache file (2: seeded init)


def load_digits_images(size: int = IMAGE_SIZE) -> tuple[Tensor, Tensor]:
    """scikit-learn's digits as float32 ``[1797, 1, size, size]`` in [-1, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return (images * 2 - 1).clamp(-1, 1), torch.tensor(digits.target, dtype=torch.int64)


def to_classifier_input(images: Tensor) -> Tensor:
    """The metrics' feature protocol (RGB in [0, 1]) to the classifier's input (one channel in [-1, 1])."""
    return images[:, :1] * 2 - 1


class DigitClassifier(nn.Module):
    """A small conv net on ``[N, 1, 16, 16]`` digits in [-1, 1]; ``features`` ends in the 64-d penultimate layer."""

    num_penultimate = 64

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, self.num_penultimate),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.num_penultimate, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def train_classifier(
    images: Tensor, labels: Tensor, cache_dir: Path, *, epochs: int = 15, seed: int = 0
) -> tuple[DigitClassifier, float]:
    """The digits classifier and its held-out accuracy: loaded from ``cache_dir``, or trained (seconds) and saved.

    Trained on a random 80% of the digits, with random shifts of up to one pixel so it also reads imperfect
    samples; the accuracy is measured on the other 20%. Everything random (the initial weights, the split, the
    batches, the shifts) comes from ``seed`` and training runs on one thread, so every machine trains the same
    judge: bit-identical weights for the same torch build and CPU architecture, whatever the core count or the
    caller's thread setting (which is restored, as is the caller's global random state).
    """
    path = cache_dir / f"digits-classifier-v{CLASSIFIER_VERSION}-e{epochs}-s{seed}.pt"
    if path.is_file():
        classifier = DigitClassifier()
        state = torch.load(path, map_location="cpu", weights_only=True)
        accuracy = float(state.pop("held_out_accuracy"))
        classifier.load_state_dict(state)
        return classifier.eval(), accuracy
    # The initial weights come from torch's global generator: seed it before building the network (the only
    # randomness outside `generator`; numpy and `random` are not used), inside fork_rng so the caller's stream is kept.
    # One thread: the float sums in the convolutions then do not depend on the machine's core count.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            classifier = DigitClassifier()
            accuracy = _fit(classifier, images, labels, epochs, torch.Generator().manual_seed(seed))
    finally:
        torch.set_num_threads(threads)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({**classifier.state_dict(), "held_out_accuracy": torch.tensor(accuracy)}, partial)
    partial.replace(path)  # atomic: a concurrent run never reads half a file
    return classifier, accuracy


def _fit(classifier: DigitClassifier, images: Tensor, labels: Tensor, epochs: int, generator: torch.Generator) -> float:
    """Train in place on a random 80% of the images; return the accuracy on the other 20%."""
    order = torch.randperm(images.shape[0], generator=generator)
    cut = int(0.8 * images.shape[0])
    train, test = order[:cut], order[cut:]
    optimizer = torch.optim.Adam(classifier.parameters(), lr=2e-3)
    classifier.train()
    for _ in range(epochs):
        for batch in train[torch.randperm(cut, generator=generator)].split(64):
            shift = torch.randint(-1, 2, (2,), generator=generator).tolist()
            x = torch.roll(images[batch], shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(classifier(x), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    classifier.eval()
    with torch.no_grad():
        return (classifier(images[test]).argmax(1) == labels[test]).float().mean().item()
