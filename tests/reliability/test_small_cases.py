"""Small inputs that used to fail at random or silently: Inception Score on a few dozen images, the demo's judge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_genmetrics import InceptionScore
from lightning_genmetrics.functional import sample_keys
from lightning_genmetrics.functional.inception_score import ids_to_balanced_splits, keys_to_balanced_splits
from tests.contract import same_state, state_snapshot
from tests.ddp.harness import count_all_gathers, run_distributed
from tests.helpers import exact_inception_score, fresh_seed

NUM_CLASSES = 6


class PixelLogits(nn.Module):
    """Logits from the first pixels: exact per image in any batch, and cheap, so many random draws fit in a test."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :NUM_CLASSES] * 8


def _images(rng: np.random.Generator, n: int) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8))


def _logits(images: torch.Tensor) -> np.ndarray:
    return PixelLogits()(images.float() / 255).double().numpy()


def _feed(metric: InceptionScore, images: torch.Tensor, rng: np.random.Generator, ids: torch.Tensor | None = None):
    """Update in batches of random sizes (some empty)."""
    cuts = np.sort(rng.integers(0, images.shape[0] + 1, size=int(rng.integers(0, 5))))
    for begin, end in zip([0, *cuts.tolist()], [*cuts.tolist(), images.shape[0]], strict=True):
        metric.update(images[begin:end], sample_ids=None if ids is None else ids[begin:end])
    return metric


def _documented_split_index(images: torch.Tensor, splits: int, limit: int) -> np.ndarray:
    """The documented rule without ids: balanced chunks of the key order below ``limit`` images, else key mod S."""
    keys = sample_keys(images, seed=0)
    return (keys_to_balanced_splits(keys, splits) if keys.shape[0] < limit else keys % splits).numpy()


@pytest.mark.parametrize("splits", [2, 5, 10])
def test_inception_score_on_small_sets_never_fails_and_is_shard_invariant(rng, splits):
    limit = 32 * splits
    sizes = [2 * splits, 2 * splits + 1, limit - 1, limit, limit + 1, *rng.integers(2 * splits, limit + 2 * splits, 15)]
    for n in sizes:
        images = _images(rng, int(n))
        whole = _feed(InceptionScore(PixelLogits(), splits=splits, feature_input="float"), images, rng)
        mean, std = whole.compute()  # never raises
        split_index = _documented_split_index(images, splits, limit)
        assert np.bincount(split_index, minlength=splits).min() >= (2 if n < limit else 1)
        expected = exact_inception_score(_logits(images), split_index, splits)
        assert (mean.item(), std.item()) == pytest.approx(expected, rel=1e-10, abs=1e-12), f"n={n}"

        # Three shards of a shuffled copy (possibly empty), each batched at random, merged in a random order.
        order = torch.from_numpy(rng.permutation(int(n)))
        cuts = np.sort(rng.integers(0, int(n) + 1, size=2)).tolist()
        shards = [
            _feed(InceptionScore(PixelLogits(), splits=splits, feature_input="float"), images[order[a:b]], rng)
            for a, b in zip([0, *cuts], [*cuts, int(n)], strict=True)
        ]
        first, *rest = (shards[i] for i in rng.permutation(3))
        for other in rest:
            first.merge_state(other)
        torch.testing.assert_close(torch.stack(first.compute()), torch.stack((mean, std)), rtol=1e-12, atol=1e-14)


def test_ten_splits_on_twenty_to_thirty_images_never_fail(rng):
    # Issue 12 (B6): with split = key mod 10, 30 images left a split empty about 40% of the time.
    for _ in range(60):
        n = int(rng.integers(20, 31))
        metric = InceptionScore(PixelLogits(), splits=10, seed=int(rng.integers(2**31)), feature_input="float")
        metric.update(_images(rng, n))
        mean, std = metric.compute()
        assert 1.0 <= mean.item() <= NUM_CLASSES
        assert std.item() >= 0


@pytest.mark.parametrize("splits", [2, 5, 10])
def test_consecutive_sample_ids_never_leave_a_split_empty(rng, splits):
    for _ in range(15):
        n, offset = int(rng.integers(2 * splits, 4 * splits + 1)), int(rng.integers(-1000, 1000))
        ids = torch.arange(offset, offset + n)
        sizes = np.bincount(ids_to_balanced_splits(ids, splits, seed=3).numpy(), minlength=splits)
        # Every full block of `splits` ids gives one to each split; the two partial blocks at the ends one at most.
        assert sizes.min() >= 1
        assert sizes.max() - sizes.min() <= 2
        if offset % splits == 0:
            assert sizes.max() - sizes.min() <= 1
        images = _images(rng, n)
        order = torch.from_numpy(rng.permutation(n))
        metric = _feed(
            InceptionScore(PixelLogits(), splits=splits, seed=3, feature_input="float"), images[order], rng, ids[order]
        )
        expected = exact_inception_score(_logits(images), ids_to_balanced_splits(ids, splits, seed=3).numpy(), splits)
        assert tuple(v.item() for v in metric.compute()) == pytest.approx(expected, rel=1e-10, abs=1e-12)


# Two gloo processes: (splits, images on rank 0, images on rank 1, with ids). balanced_limit = 32·splits: the first
# two cases share the buffered rows by all-reduce, the third folds them (rank 0 is past the limit, rank 1 is not).
_DDP_CASES = [(5, 20, 10, False), (3, 50, 0, False), (5, 150, 40, False), (10, 37, 20, True)]


def _ddp_images(case: int, seed: int) -> torch.Tensor:
    _, left, right, _ = _DDP_CASES[case]
    return _images(np.random.default_rng([seed, case]), left + right)


def _ddp_metric(case: int) -> InceptionScore:
    return InceptionScore(PixelLogits(), splits=_DDP_CASES[case][0], feature_input="float")


def _ddp_rank(rank: int, world_size: int, seed: int) -> dict:
    values, gathers, restored = [], 0, True
    for case, (_, left, _, with_ids) in enumerate(_DDP_CASES):
        images = _ddp_images(case, seed)
        mine = slice(0, left) if rank == 0 else slice(left, None)
        metric = _ddp_metric(case)
        metric.update(images[mine], sample_ids=torch.arange(images.shape[0])[mine] if with_ids else None)
        local = state_snapshot(metric)
        with count_all_gathers() as calls:
            values.append(torch.stack(metric.compute()))
        gathers += len(calls)
        restored &= same_state(metric, local)
    return {"values": values, "gathers": gathers, "restored": restored}


@pytest.mark.ddp
def test_two_processes_give_the_one_process_value_below_and_beyond_the_limit():
    seed = fresh_seed()
    results = run_distributed(_ddp_rank, world_size=2, timeout=240, seed=seed)
    for case, (*_, with_ids) in enumerate(_DDP_CASES):
        images = _ddp_images(case, seed)
        metric = _ddp_metric(case)
        metric.update(images, sample_ids=torch.arange(images.shape[0]) if with_ids else None)
        expected = torch.stack(metric.compute())
        for rank, result in enumerate(results):
            torch.testing.assert_close(result["values"][case], expected, rtol=1e-12, atol=1e-14, msg=f"{case=} {rank=}")
    assert all(result["gathers"] == 0 and result["restored"] for result in results)


_BUILD_JUDGE = """
import hashlib, sys, tempfile
from pathlib import Path
import torch
sys.path.insert(0, sys.argv[1])
from digits_data import load_digits_images, train_classifier
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(int(sys.argv[3]))  # a caller's own seeding must not matter
images, labels = load_digits_images()
with tempfile.TemporaryDirectory() as tmp:  # a quarter of the digits: the same code path, a second's training
    classifier, accuracy = train_classifier(images[:450], labels[:450], Path(tmp), epochs=1)
digest = hashlib.sha256()
for name, value in sorted(classifier.state_dict().items()):
    digest.update(name.encode() + value.contiguous().numpy().tobytes())
print(digest.hexdigest(), accuracy)
"""


def test_the_demo_judge_is_the_same_in_every_fresh_process(tmp_path):
    # Issue 12 (B8): the network was built before seeding, so each machine trained a different judge.
    import subprocess
    import sys
    from pathlib import Path

    examples = str(Path(__file__).resolve().parents[2] / "examples")
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_JUDGE, examples, threads, caller_seed],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for threads, caller_seed in (("1", "0"), ("2", "12345"))
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    (digest_a, accuracy_a), (digest_b, accuracy_b) = (stdout.split() for stdout, _ in outputs)
    assert digest_a == digest_b
    assert accuracy_a == accuracy_b


def test_training_the_judge_leaves_the_callers_random_state_and_threads(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    try:
        from digits_data import train_classifier
    finally:
        sys.path.pop(0)
    images, labels = torch.rand(50, 1, 16, 16) * 2 - 1, torch.arange(50) % 10
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    _, accuracy = train_classifier(images, labels, tmp_path, epochs=1, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    again, _ = train_classifier(images, labels, tmp_path / "other", epochs=1, seed=3)
    cached, cached_accuracy = train_classifier(images, labels, tmp_path, epochs=1, seed=3)  # from the file
    for name, value in again.state_dict().items():
        assert torch.equal(value, cached.state_dict()[name]), name
    assert cached_accuracy == accuracy
