"""ImageFeatures keeps its extractor out of state dicts: saved without it, loaded strictly with or without it."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import (
    FrechetInceptionDistance,
    ImageFeatures,
    InceptionScore,
    KernelInceptionDistance,
)
from lightning_genmetrics.features.inception import FIDInceptionV3
from tests.helpers import INCEPTION_FIXTURES, TinyFeatureNet

METRICS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "fid": lambda net: FrechetInceptionDistance(net, feature_input="float", input_range=(0, 1)),
    "is": lambda net: InceptionScore(net, feature_input="float", splits=2, input_range=(0, 1)),
    "kid": lambda net: KernelInceptionDistance(
        net, feature_input="float", subsets=2, subset_size=2, input_range=(0, 1)
    ),
}
FID_STATES = ["real_n", "real_mean", "real_m2", "fake_n", "fake_mean", "fake_m2"]


class Holder(nn.Module):
    """A model with a metric beside a trainable layer, as a LightningModule holds them."""

    def __init__(self, metric: nn.Module) -> None:
        super().__init__()
        self.metric = metric
        self.linear = nn.Linear(3, 2)


def _clone_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def _with_old_extractor_keys(state: dict, extractor: nn.Module, prefix: str) -> dict:
    """``state`` plus the extractor's entries as checkpoints held them before, with other values."""
    old = copy.copy(state)  # keeps `_metadata`
    for name, value in extractor.state_dict().items():
        old[prefix + name] = value + 1 if value.is_floating_point() else value
    return old


def _assert_same(state: dict[str, torch.Tensor], module: nn.Module) -> None:
    assert state.keys() == module.state_dict().keys()
    assert all(torch.equal(value, module.state_dict()[name]) for name, value in state.items())


@pytest.mark.parametrize("name", sorted(METRICS))
def test_state_dict_of_a_metric_and_of_its_parent_has_no_extractor_keys(name: str) -> None:
    net = TinyFeatureNet()
    metric = METRICS[name](net)
    assert len(net.state_dict()) == 4
    assert dict(metric.state_dict()) == {}
    assert dict(metric.extractor.state_dict()) == {}
    assert sorted(Holder(metric).state_dict()) == ["linear.bias", "linear.weight"]
    assert len(net.state_dict()) == 4, "the extractor's own state dict is untouched"


@pytest.mark.parametrize("name", sorted(METRICS))
def test_strict_load_of_new_and_old_format(name: str) -> None:
    holder = Holder(METRICS[name](TinyFeatureNet()))
    extractor = holder.metric.extractor.module
    before = _clone_state(extractor)
    new = holder.state_dict()
    new["linear.weight"] = torch.full((2, 3), 7.0)
    assert holder.load_state_dict(new, strict=True) == ([], [])
    assert torch.equal(holder.linear.weight, torch.full((2, 3), 7.0))

    old = _with_old_extractor_keys(new, extractor, "metric.extractor.module.")
    old["linear.weight"] = torch.full((2, 3), 5.0)
    keys = sorted(old)
    assert holder.load_state_dict(old, strict=True) == ([], [])
    assert torch.equal(holder.linear.weight, torch.full((2, 3), 5.0))
    _assert_same(before, extractor)
    assert sorted(old) == keys, "the caller's dict is not modified"


def test_strict_load_still_reports_every_other_key() -> None:
    holder = Holder(METRICS["fid"](TinyFeatureNet()))
    state = holder.state_dict()
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "linear.bias"'):
        holder.load_state_dict({"linear.weight": state["linear.weight"]}, strict=True)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "metric.extractor.other"'):
        holder.load_state_dict({**state, "metric.extractor.other": torch.ones(1)}, strict=True)
    result = holder.load_state_dict({"linear.weight": state["linear.weight"]}, strict=False)
    assert result.missing_keys == ["linear.bias"]


def test_old_extractor_keys_of_the_wrong_shape_are_ignored() -> None:
    metric = METRICS["fid"](TinyFeatureNet())
    before = _clone_state(metric.extractor.module)
    old = {"extractor.module.conv.weight": torch.zeros(1), "extractor.module.gone.weight": torch.zeros(2)}
    assert metric.load_state_dict(old, strict=True) == ([], [])
    _assert_same(before, metric.extractor.module)


def test_the_wrapper_alone_and_its_own_state() -> None:
    features = ImageFeatures(TinyFeatureNet(), input_range=(0, 1))
    features.register_buffer("marker", torch.tensor([3.0]))
    before = _clone_state(features.module)
    assert list(features.state_dict()) == ["marker"]
    old = _with_old_extractor_keys({"marker": torch.tensor([4.0])}, features.module, "module.")
    assert features.load_state_dict(old, strict=True) == ([], [])
    assert features.marker.item() == 4.0
    _assert_same(before, features.module)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "marker"'):
        features.load_state_dict({}, strict=True)


def test_a_module_shared_with_the_model_is_saved_under_its_own_name_only() -> None:
    encoder = TinyFeatureNet()
    holder = Holder(METRICS["fid"](encoder))
    holder.encoder = encoder
    state = holder.state_dict()
    assert sorted(state) == sorted(["linear.weight", "linear.bias"] + [f"encoder.{k}" for k in encoder.state_dict()])
    state["encoder.head.bias"] = torch.full_like(encoder.head.bias, 2.0)
    holder.load_state_dict(state, strict=True)
    assert torch.equal(holder.metric.extractor.module.head.bias, torch.full_like(encoder.head.bias, 2.0))
    del state["encoder.head.bias"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "encoder.head.bias"'):
        holder.load_state_dict(state, strict=True)


def test_persistent_metric_states_are_saved_and_loaded_as_before() -> None:
    metric = METRICS["fid"](TinyFeatureNet())
    metric.persistent(True)
    generator = torch.Generator().manual_seed(0)
    metric.update(torch.rand(4, 3, 8, 8, generator=generator), real=True)
    metric.update(torch.rand(4, 3, 8, 8, generator=generator), real=False)
    state = metric.state_dict()
    assert sorted(state) == sorted(FID_STATES)
    other = METRICS["fid"](TinyFeatureNet())
    other.persistent(True)
    other.load_state_dict(_with_old_extractor_keys(state, other.extractor.module, "extractor.module."), strict=True)
    assert all(torch.equal(getattr(other, name), getattr(metric, name)) for name in FID_STATES)
    assert int(other.real_n) == int(other.fake_n) == 4


def test_the_extractor_still_moves_and_is_still_a_submodule() -> None:
    metric = METRICS["fid"](TinyFeatureNet())
    names = [name for name, _ in metric.named_parameters()]
    assert names == [f"extractor.module.{name}" for name, _ in TinyFeatureNet().named_parameters()]
    assert "extractor.module.conv" in dict(metric.named_modules())
    metric.to(torch.float64)
    assert all(parameter.dtype == torch.float64 for parameter in metric.extractor.module.parameters())
    if torch.cuda.is_available():
        metric.to("cuda")
        assert all(parameter.is_cuda for parameter in metric.extractor.module.parameters())
    assert dict(metric.state_dict()) == {}


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda metric: pickle.loads(pickle.dumps(metric))])
def test_copies_keep_the_behaviour(duplicate: Callable[[nn.Module], nn.Module]) -> None:
    original = METRICS["fid"](TinyFeatureNet())
    metric = duplicate(original)
    assert dict(metric.state_dict()) == {}
    before = _clone_state(metric.extractor.module)
    old = _with_old_extractor_keys({}, metric.extractor.module, "extractor.module.")
    assert metric.load_state_dict(old, strict=True) == ([], [])
    _assert_same(before, metric.extractor.module)


def test_fid_inception_v3_leaves_no_key() -> None:
    network = FIDInceptionV3("2048", pretrained=False)
    keys = [name for name, _ in json.loads((INCEPTION_FIXTURES / "keys.json").read_text())]
    assert list(network.state_dict()) == keys
    holder = Holder(FrechetInceptionDistance(network))
    assert sorted(holder.state_dict()) == ["linear.bias", "linear.weight"]
    assert list(network.state_dict()) == keys, "the network's own state dict (its weights hash) is untouched"
    before = _clone_state(network)
    old = _with_old_extractor_keys(holder.state_dict(), network, "metric.extractor.module.")
    assert holder.load_state_dict(old, strict=True) == ([], [])
    _assert_same(before, network)


class ModelWithFID(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.fid = FrechetInceptionDistance(TinyFeatureNet(), feature_input="float", input_range=(0, 1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_checkpoint_round_trip(tmp_path: Path) -> None:
    model = ModelWithFID()
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        limit_train_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(4, 3)), batch_size=2))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert sorted(checkpoint["state_dict"]) == ["layer.bias", "layer.weight"]

    loaded = ModelWithFID.load_from_checkpoint(path, strict=True)
    assert torch.equal(loaded.layer.weight, model.layer.weight)
    _assert_same(_clone_state(model.fid.extractor.module), loaded.fid.extractor.module)

    fresh = _clone_state(loaded.fid.extractor.module)
    checkpoint["state_dict"] = _with_old_extractor_keys(
        checkpoint["state_dict"], loaded.fid.extractor.module, "fid.extractor.module."
    )
    old_path = tmp_path / "old.ckpt"
    torch.save(checkpoint, old_path)
    from_old = ModelWithFID.load_from_checkpoint(old_path, strict=True)
    assert torch.equal(from_old.layer.weight, model.layer.weight)
    _assert_same(fresh, from_old.fid.extractor.module)


def test_lpips_network_weights_stay_out_of_state_dicts() -> None:
    from lightning_genmetrics import LPIPS

    metric = LPIPS("squeeze", pretrained=False)
    network_state = _clone_state(metric.network)
    assert len(network_state) > 10
    holder = Holder(metric)
    assert sorted(holder.state_dict()) == ["linear.bias", "linear.weight"]
    old = _with_old_extractor_keys(holder.state_dict(), metric.network, "metric.network.")
    assert holder.load_state_dict(old, strict=True) == ([], [])
    _assert_same(network_state, metric.network)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.isfinite(metric(images, images.flip(0))).all()


def test_provenance_records_what_the_network_receives_and_the_cache_key_follows_it() -> None:
    from lightning_genmetrics.callbacks.real_statistics import real_cache_key

    net = TinyFeatureNet(4, seed=1)
    fields = {
        mode: ImageFeatures(net, input_range=(0, 1), feature_input=mode).provenance_fields()
        for mode in ("float", "as_given")
    }
    assert fields["float"]["feature_input"] == "float"
    assert fields["as_given"]["feature_input"] == "as_given"
    uint8_net = TinyFeatureNet(4, seed=1)
    uint8_net.input_dtype = torch.uint8  # as the FID InceptionV3 declares: it scales the uint8 images itself
    assert ImageFeatures(uint8_net, feature_input="as_given").provenance_fields()["feature_input"] == "uint8"
    # The same weights fed [0, 1] floats or the images as given compute other features: other cache entries.
    keys = {real_cache_key("ab" * 32, 10, fields[mode], (0.0, 1.0)) for mode in fields}
    assert len(keys) == 2
