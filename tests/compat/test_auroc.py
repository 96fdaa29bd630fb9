"""AUROC as torchmetrics 1.9 computes it.

- torchmetrics' own test cases (its inputs, shapes and extra dimensions, its scikit-learn reference with
  ``max_fpr``, ``ignore_index`` and ``average``, its tolerance), class batch by batch with ``forward`` and
  functional, in the exact mode (``thresholds=None``) its tests use;
- live comparisons with torchmetrics on fresh random inputs: class and functional, positional and keyword
  arguments, every ``thresholds`` form, ``forward`` batch by batch, batch-split ``compute``; the default binned
  mode against torchmetrics' exact value within the metric's own ``error_bound()``;
- (two gloo processes with uneven shards and an empty rank for these options: ``tests/ddp/test_ddp_auroc.py``,
  which shares its process start with the other AUROC DDP checks);
- the refusals, each naming what to write instead, and the one deliberate difference (undefined AUROC: NaN here,
  0 in torchmetrics, ``undefined=0.0`` reproduces it).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from sklearn.metrics import roc_auc_score
from torchmetrics.classification import AUROC as TMAUROC
from torchmetrics.classification import BinaryAUROC as TMBinaryAUROC
from torchmetrics.classification import MulticlassAUROC as TMMulticlassAUROC
from torchmetrics.classification import MultilabelAUROC as TMMultilabelAUROC
from torchmetrics.functional.classification import auroc as tm_auroc
from torchmetrics.functional.classification import binary_auroc as tm_binary_auroc
from torchmetrics.functional.classification import multiclass_auroc as tm_multiclass_auroc
from torchmetrics.functional.classification import multilabel_auroc as tm_multilabel_auroc

from lightning_genmetrics import AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC
from lightning_genmetrics.functional import auroc, binary_auroc, multiclass_auroc, multilabel_auroc

# torchmetrics' tests: NUM_BATCHES batches of BATCH_SIZE samples, NUM_CLASSES classes or labels, EXTRA_DIM.
NUM_BATCHES, BATCH_SIZE, NUM_CLASSES, EXTRA_DIM = 4, 32, 5, 3
ATOL = 1e-8  # torchmetrics' MetricTester tolerance against scikit-learn
FLOAT32 = 1e-6  # torchmetrics computes rates and areas in float32
CASES = ["probs", "logits", "multi_dim-probs", "multi_dim-logits"]  # its cases 1, 2, 4 and 5


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _inject_ignore_index(target: torch.Tensor, rng: np.random.Generator, keep: int) -> torch.Tensor:
    """torchmetrics' ``inject_ignore_index``: every 9th or 10th entry becomes -1, except the ``keep`` first of each
    batch (so that every batch still holds every class)."""
    flat = target.clone().reshape(NUM_BATCHES, -1)
    skip = int(rng.integers(9, 11))
    for batch in flat:
        order = torch.from_numpy(rng.permutation(batch.numel() - keep)) + keep
        batch[order[::skip]] = -1
    return flat.reshape(target.shape)


def _binary_case(rng, case, ignore_index=None):
    shape = (NUM_BATCHES, BATCH_SIZE) + ((EXTRA_DIM,) if case.startswith("multi_dim") else ())
    target = _tensor(rng.integers(0, 2, shape))
    target.reshape(NUM_BATCHES, -1)[:, :2] = torch.tensor([0, 1])
    probs = _tensor(rng.random(shape, dtype=np.float32))
    preds = (probs / (1 - probs)).log() if case.endswith("logits") else probs  # its _inv_sigmoid
    if ignore_index is not None:
        target = _inject_ignore_index(target, rng, keep=2)
    return preds, target


def _multiclass_case(rng, case, ignore_index=None):
    extra = (EXTRA_DIM,) if case.startswith("multi_dim") else ()
    target = _tensor(rng.integers(0, NUM_CLASSES, (NUM_BATCHES, BATCH_SIZE, *extra)))
    target.reshape(NUM_BATCHES, -1)[:, :NUM_CLASSES] = torch.arange(NUM_CLASSES)
    if case == "probs":
        preds = _tensor(rng.standard_normal((NUM_BATCHES, BATCH_SIZE, NUM_CLASSES), dtype=np.float32)).softmax(-1)
    elif case == "logits":  # its _logsoftmax of uniform scores
        preds = _tensor(rng.random((NUM_BATCHES, BATCH_SIZE, NUM_CLASSES), dtype=np.float32)).log_softmax(-1)
    else:
        uniform = _tensor(rng.random((NUM_BATCHES, BATCH_SIZE, NUM_CLASSES, EXTRA_DIM), dtype=np.float32))
        preds = uniform.softmax(-2) if case.endswith("probs") else uniform.log_softmax(-2)
    if ignore_index is not None:
        target = _inject_ignore_index(target, rng, keep=NUM_CLASSES)
    return preds, target


def _multilabel_case(rng, case, ignore_index=None):
    shape = (NUM_BATCHES, BATCH_SIZE, NUM_CLASSES) + ((EXTRA_DIM,) if case.startswith("multi_dim") else ())
    target = _tensor(rng.integers(0, 2, shape))
    target[:, 0], target[:, 1] = 0, 1  # both classes for every label of every batch
    probs = _tensor(rng.random(shape, dtype=np.float32))
    preds = (probs / (1 - probs)).log() if case.endswith("logits") else probs
    if ignore_index is not None:
        target = _inject_ignore_index(target, rng, keep=2 * NUM_CLASSES * (EXTRA_DIM if len(shape) == 4 else 1))
    return preds, target


def _remove_ignored(target: np.ndarray, preds: np.ndarray, ignore_index):
    if ignore_index is None:
        return target, preds
    kept = target != ignore_index
    return target[kept], preds[kept]


def _reference_binary(preds, target, max_fpr=None, ignore_index=None):
    """torchmetrics' ``_reference_sklearn_auroc_binary`` (the sigmoid in float64)."""
    preds, target = preds.double().flatten().numpy(), target.flatten().numpy()
    if not ((preds > 0) & (preds < 1)).all():
        preds = expit(preds)
    target, preds = _remove_ignored(target, preds, ignore_index)
    return roc_auc_score(target, preds, max_fpr=max_fpr)


def _reference_multiclass(preds, target, average="macro", ignore_index=None):
    preds = np.moveaxis(preds.double().numpy(), 1, -1).reshape((-1, preds.shape[1]))
    target = target.numpy().flatten()
    if not ((preds > 0) & (preds < 1)).all():
        preds = softmax(preds, 1)
    target, preds = _remove_ignored(target, preds, ignore_index)
    return roc_auc_score(target, preds, average=average, multi_class="ovr", labels=list(range(NUM_CLASSES)))


def _reference_multilabel(preds, target, average="macro", ignore_index=None):
    if ignore_index is None:
        if preds.ndim > 2:
            target = target.transpose(2, 1).reshape(-1, NUM_CLASSES)
            preds = preds.transpose(2, 1).reshape(-1, NUM_CLASSES)
        preds = preds.double().numpy()
        if not ((preds > 0) & (preds < 1)).all():
            preds = expit(preds)
        return roc_auc_score(target.numpy(), preds, average=average, max_fpr=None)
    if average == "micro":
        return _reference_binary(preds.flatten(), target.flatten(), None, ignore_index)
    res = np.array([_reference_binary(preds[:, i], target[:, i], None, ignore_index) for i in range(NUM_CLASSES)])
    if average == "macro":
        return res[~np.isnan(res)].mean()
    if average == "weighted":
        weights = ((target == 1).sum([0, 2]) if target.ndim == 3 else (target == 1).sum(0)).numpy()
        return (res * weights / weights.sum())[~np.isnan(res)].sum()
    return res


def _run_class(metric, preds, target, reference, atol=ATOL):
    """torchmetrics' ``run_class_metric_test`` on one process: ``forward`` on every batch against the reference of
    that batch, then ``compute`` against the reference of all batches."""
    for p, t in zip(preds, target, strict=True):
        np.testing.assert_allclose(metric(p, t).numpy(), reference(p, t), rtol=0, atol=atol)
    whole = reference(torch.cat(list(preds)), torch.cat(list(target)))
    np.testing.assert_allclose(metric.compute().numpy(), whole, rtol=0, atol=atol)


def _run_functional(function, preds, target, reference, atol=ATOL, **kwargs):
    for p, t in zip(preds, target, strict=True):
        np.testing.assert_allclose(function(p, t, **kwargs).numpy(), reference(p, t), rtol=0, atol=atol)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("max_fpr", [None, 0.8, 0.5])
@pytest.mark.parametrize("ignore_index", [None, -1])
def test_binary_auroc_torchmetrics_cases(rng, case, max_fpr, ignore_index):
    preds, target = _binary_case(rng, case, ignore_index)

    def reference(p, t):
        return _reference_binary(p, t, max_fpr, ignore_index)

    _run_class(BinaryAUROC(max_fpr=max_fpr, thresholds=None, ignore_index=ignore_index), preds, target, reference)
    _run_functional(binary_auroc, preds, target, reference, max_fpr=max_fpr, thresholds=None, ignore_index=ignore_index)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("average", ["macro", "weighted"])
@pytest.mark.parametrize("ignore_index", [None, -1])
def test_multiclass_auroc_torchmetrics_cases(rng, case, average, ignore_index):
    preds, target = _multiclass_case(rng, case, ignore_index)

    def reference(p, t):
        return _reference_multiclass(p, t, average, ignore_index)

    arguments = {"thresholds": None, "num_classes": NUM_CLASSES, "average": average, "ignore_index": ignore_index}
    _run_class(MulticlassAUROC(**arguments), preds, target, reference)
    _run_functional(multiclass_auroc, preds, target, reference, **arguments)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
@pytest.mark.parametrize("ignore_index", [None, -1])
def test_multilabel_auroc_torchmetrics_cases(rng, case, average, ignore_index):
    preds, target = _multilabel_case(rng, case, ignore_index)

    def reference(p, t):
        return _reference_multilabel(p, t, average, ignore_index)

    arguments = {"thresholds": None, "num_labels": NUM_CLASSES, "average": average, "ignore_index": ignore_index}
    _run_class(MultilabelAUROC(**arguments), preds, target, reference)
    _run_functional(multilabel_auroc, preds, target, reference, **arguments)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("as_list", [False, True], ids=["as tensor", "as list"])
def test_binary_auroc_threshold_arg(rng, case, as_list):
    """torchmetrics' ``test_binary_auroc_threshold_arg``: binned at the scores' own distinct values (and 1) is exact.

    Logits are compared as float64 sigmoids here: their thresholds come from this library's exact ROC curve. A list
    becomes a float32 tensor (as in torchmetrics), so the list form takes the float32 probability cases.
    """
    if as_list and case.endswith("logits"):
        case = case.replace("logits", "probs")
    preds, target = _binary_case(rng, case)
    for p, t in zip(preds, target, strict=True):
        metric = BinaryAUROC(thresholds=None)
        metric.update(p, t)
        _, _, thresholds = metric.roc()
        thresholds = torch.cat([thresholds[1:].flip(0), torch.ones(1, dtype=torch.float64)])
        given = thresholds.tolist() if as_list else thresholds
        exact = binary_auroc(p, t, thresholds=None)
        torch.testing.assert_close(binary_auroc(p, t, thresholds=given), exact, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("average", ["macro", "weighted", None])
def test_multiclass_auroc_threshold_arg(rng, case, average):
    """torchmetrics' ``test_multiclass_auroc_threshold_arg``: scores rounded to 0.01 and binned at 101 thresholds
    (torchmetrics takes 100: 0.00 and 0.01 then share a bin, which fresh inputs may show) equal the exact value."""
    preds, target = _multiclass_case(rng, case)
    if (preds < 0).any():
        preds = preds.softmax(dim=-1 if preds.ndim == 3 else -2)
    for p, t in zip(preds, target, strict=True):
        rounded = torch.from_numpy(np.round(p.numpy(), 2)) + 1e-6  # rounding simulates binning
        exact = multiclass_auroc(rounded, t, num_classes=NUM_CLASSES, average=average, thresholds=None)
        binned = multiclass_auroc(rounded, t, NUM_CLASSES, average, torch.linspace(0, 1, 101))
        torch.testing.assert_close(binned, exact, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_multilabel_auroc_threshold_arg(rng, case, average):
    """torchmetrics' ``test_multilabel_auroc_threshold_arg``: scores rounded to 0.1, 100 thresholds."""
    preds, target = _multilabel_case(rng, case)
    if (preds < 0).any():
        preds = torch.sigmoid(preds)
    for p, t in zip(preds, target, strict=True):
        rounded = torch.from_numpy(np.round(p.numpy(), 1)) + 1e-6
        exact = multilabel_auroc(rounded, t, num_labels=NUM_CLASSES, average=average, thresholds=None)
        binned = multilabel_auroc(rounded, t, NUM_CLASSES, average, torch.linspace(0, 1, 100))
        torch.testing.assert_close(binned, exact, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "metric",
    [BinaryAUROC, lambda **kw: MulticlassAUROC(NUM_CLASSES, **kw), lambda **kw: MultilabelAUROC(NUM_CLASSES, **kw)],
    ids=["binary", "multiclass", "multilabel"],
)
@pytest.mark.parametrize("thresholds", [None, 100, [0.3, 0.5, 0.7, 0.9], torch.linspace(0, 1, 10)])
def test_valid_input_thresholds(metric, thresholds):
    """torchmetrics' ``test_valid_input_thresholds``: every form is accepted without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric(thresholds=thresholds)


@pytest.mark.parametrize("max_fpr", [None, 0.8, 0.5])
def test_corner_case_max_fpr_is_the_one_deliberate_difference(max_fpr):
    """torchmetrics' ``test_corner_case_max_fpr`` expects 0 when one class is missing: here the AUROC is undefined
    (NaN, with a warning), and ``undefined=0.0`` gives torchmetrics' 0."""
    for preds, target in (
        (torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0, 0, 0, 0])),
        (torch.tensor([0.5, 0.6, 0.7, 0.8]), torch.tensor([1, 1, 1, 1])),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert TMBinaryAUROC(max_fpr=max_fpr)(preds, target) == 0.0
        with pytest.warns(UserWarning, match="undefined"):
            assert torch.isnan(BinaryAUROC(max_fpr=max_fpr)(preds, target))
        with pytest.warns(UserWarning, match="undefined"):
            assert BinaryAUROC(max_fpr=max_fpr, undefined=0.0)(preds, target) == 0.0


def test_wrapper_class_task_check():
    """torchmetrics' ``test_wrapper_class``: the task selects the behaviour; an unknown task is refused."""
    assert AUROC(task="multiclass", num_classes=3).num_classes == 3
    assert AUROC(task="multilabel", num_labels=3).num_labels == 3
    with pytest.raises(ValueError, match="`task` to be one of 'binary', 'multiclass', 'multilabel'"):
        AUROC(task="not_valid_task")


# Live comparisons: (ours, torchmetrics') built from the same positional or keyword arguments.
EXACT_FORMS = {
    "BinaryAUROC(None, None)": lambda m: m.BinaryAUROC(None, None),
    "BinaryAUROC(0.3, None, -1)": lambda m: m.BinaryAUROC(0.3, None, -1),
    "BinaryAUROC(thresholds=50, ignore_index=-1)": lambda m: m.BinaryAUROC(thresholds=50, ignore_index=-1),
    "BinaryAUROC(0.5, [0.0, 0.2, 0.5, 0.7, 1.0])": lambda m: m.BinaryAUROC(0.5, [0.0, 0.2, 0.5, 0.7, 1.0]),
    "MulticlassAUROC(4, 'weighted', None, -1)": lambda m: m.MulticlassAUROC(4, "weighted", None, -1),
    "MulticlassAUROC(4, None, 30)": lambda m: m.MulticlassAUROC(4, None, 30),
    "MulticlassAUROC(num_classes=4, thresholds=tensor)": lambda m: m.MulticlassAUROC(
        num_classes=4, thresholds=torch.linspace(0.1, 0.9, 17)
    ),
    "MultilabelAUROC(3, 'micro', None, -1)": lambda m: m.MultilabelAUROC(3, "micro", None, -1),
    "MultilabelAUROC(3, 'none', 40, -1)": lambda m: m.MultilabelAUROC(3, "none", 40, -1),
    "MultilabelAUROC(3, 'weighted', [0.1, 0.5, 0.9])": lambda m: m.MultilabelAUROC(3, "weighted", [0.1, 0.5, 0.9]),
    "AUROC('binary', None, None, None, 'macro', 0.3)": lambda m: m.AUROC("binary", None, None, None, "macro", 0.3),
    "AUROC('multiclass', None, 4)": lambda m: m.AUROC("multiclass", None, 4),
    "AUROC('multilabel', 25, None, 3, 'micro')": lambda m: m.AUROC("multilabel", 25, None, 3, "micro"),
    "AUROC(task='binary', thresholds=None, num_classes=2)": lambda m: m.AUROC(
        task="binary", thresholds=None, num_classes=2
    ),
}
DEFAULT_FORMS = {
    "BinaryAUROC()": lambda m: m.BinaryAUROC(),
    "BinaryAUROC(max_fpr=0.3)": lambda m: m.BinaryAUROC(max_fpr=0.3),
    "MulticlassAUROC(4)": lambda m: m.MulticlassAUROC(4),
    "MulticlassAUROC(4, 'weighted', ignore_index=-1)": lambda m: m.MulticlassAUROC(4, "weighted", ignore_index=-1),
    "MultilabelAUROC(3, 'micro')": lambda m: m.MultilabelAUROC(3, "micro"),
    "AUROC('multilabel', num_labels=3, average=None)": lambda m: m.AUROC("multilabel", num_labels=3, average=None),
}


class _Ours:
    AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC = AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC


class _Theirs:
    AUROC, BinaryAUROC = TMAUROC, TMBinaryAUROC
    MulticlassAUROC, MultilabelAUROC = TMMulticlassAUROC, TMMultilabelAUROC


def _live_data(rng, metric, n=900):
    """Fresh scores for the metric's task: probabilities or logits (torchmetrics' rule decides), some targets -1."""
    task = metric.task
    logits_given = bool(rng.random() < 0.5)
    if task == "binary":
        target = rng.integers(0, 2, n)
        scores = rng.standard_normal(n) + target
    elif task == "multiclass":
        target = rng.integers(0, 4, n)
        scores = rng.standard_normal((n, 4)) + 1.5 * np.eye(4)[target]
    else:
        target = rng.integers(0, 2, (n, 3))
        scores = rng.standard_normal((n, 3)) + target
    preds = _tensor(scores.astype(np.float32))
    if not logits_given:
        preds = preds.softmax(-1) if task == "multiclass" else preds.sigmoid()
    target = _tensor(np.where(rng.random(target.shape) < 0.05, -1, target)) if metric.ignore_index == -1 else target
    return preds, _tensor(np.asarray(target))


@pytest.mark.parametrize("form", list(EXACT_FORMS))
def test_exact_and_explicit_thresholds_equal_torchmetrics_live(rng, form):
    ours, theirs = EXACT_FORMS[form](_Ours), EXACT_FORMS[form](_Theirs)
    preds, target = _live_data(rng, ours)
    for p, t in zip(preds.split(200), target.split(200), strict=True):  # forward, batch by batch
        torch.testing.assert_close(ours(p, t), theirs(p, t).double(), rtol=0, atol=FLOAT32)
    torch.testing.assert_close(ours.compute(), theirs.compute().double(), rtol=0, atol=FLOAT32)


@pytest.mark.parametrize("form", list(DEFAULT_FORMS))
def test_default_binned_is_within_its_error_bound_of_torchmetrics_exact(rng, form):
    """The deliberate difference of the defaults: 2001 bins (constant memory) against torchmetrics' every score."""
    ours, theirs = DEFAULT_FORMS[form](_Ours), DEFAULT_FORMS[form](_Theirs)
    preds, target = _live_data(rng, ours)
    for p, t in zip(preds.split(300), target.split(300), strict=True):
        alone = DEFAULT_FORMS[form](_Ours)
        alone.update(p, t)
        assert bool(((ours(p, t) - theirs(p, t).double()).abs() <= alone.error_bound() + FLOAT32).all())
    value, bound = ours.compute(), ours.error_bound()
    assert bool(((value - theirs.compute().double()).abs() <= bound + FLOAT32).all())
    if ours.max_fpr is None:
        assert bool((bound <= 1e-3).all()), bound  # the tolerance the README states, at 900 samples
    exact = AUROC(**_arguments(ours), thresholds=None)  # one argument away: torchmetrics' number
    exact.update(preds, target)
    torch.testing.assert_close(exact.compute(), theirs.compute().double(), rtol=0, atol=FLOAT32)


def _arguments(metric) -> dict:
    """The arguments of :class:`AUROC` that rebuild ``metric`` (for the one-argument switch to the exact mode)."""
    return {
        "task": metric.task,
        "num_classes": metric.num_classes,
        "num_labels": metric.num_labels,
        "average": metric.average,
        "max_fpr": metric.max_fpr,
        "ignore_index": metric.ignore_index,
    }


FUNCTIONAL_FORMS = {
    "binary_auroc(p, t)": lambda f, p, t: f["binary_auroc"](p, t),
    "binary_auroc(p, t, 0.3, 20, -1)": lambda f, p, t: f["binary_auroc"](p, t, 0.3, 20, -1),
    "multiclass_auroc(p, t, 4, 'none', None, -1)": lambda f, p, t: f["multiclass_auroc"](p, t, 4, "none", None, -1),
    "multiclass_auroc(p, t, num_classes=4, thresholds=[...])": lambda f, p, t: f["multiclass_auroc"](
        p, t, num_classes=4, thresholds=[0.0, 0.3, 0.6, 1.0]
    ),
    "multilabel_auroc(p, t, 3, 'weighted', 10)": lambda f, p, t: f["multilabel_auroc"](p, t, 3, "weighted", 10),
    "auroc(p, t, 'multilabel', None, None, 3, 'micro')": lambda f, p, t: f["auroc"](
        p, t, "multilabel", None, None, 3, "micro"
    ),
    "auroc(p, t, task='multiclass', num_classes=4, average='weighted')": lambda f, p, t: f["auroc"](
        p, t, task="multiclass", num_classes=4, average="weighted"
    ),
    "auroc(p, t, 'binary', max_fpr=0.6)": lambda f, p, t: f["auroc"](p, t, "binary", max_fpr=0.6),
}
OURS_FUNCTIONAL = {
    "auroc": auroc,
    "binary_auroc": binary_auroc,
    "multiclass_auroc": multiclass_auroc,
    "multilabel_auroc": multilabel_auroc,
}
THEIRS_FUNCTIONAL = {
    "auroc": tm_auroc,
    "binary_auroc": tm_binary_auroc,
    "multiclass_auroc": tm_multiclass_auroc,
    "multilabel_auroc": tm_multilabel_auroc,
}


@pytest.mark.parametrize("form", list(FUNCTIONAL_FORMS))
def test_functional_equals_torchmetrics_live(rng, form):
    task = next(name for name in ("binary", "multiclass", "multilabel") if name in form)
    ignore_index = -1 if "-1" in form else None
    preds, target = _live_data(rng, AUROC(task, None, 4, 3, ignore_index=ignore_index))
    ours = FUNCTIONAL_FORMS[form](OURS_FUNCTIONAL, preds, target)
    theirs = FUNCTIONAL_FORMS[form](THEIRS_FUNCTIONAL, preds, target)
    torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=FLOAT32)


def test_integer_predictions_and_extra_dimensions_live(rng):
    """Hard {0, 1} predictions (torchmetrics needs ``validate_args=False`` for them) and ``[N, C, ...]`` inputs."""
    hard, target = _tensor(rng.integers(0, 2, (60, 3, 4))), _tensor(rng.integers(0, 2, (60, 3, 4)))
    for ours, theirs in (
        (binary_auroc(hard, target), tm_binary_auroc(hard, target, validate_args=False)),
        (multilabel_auroc(hard, target, 3), tm_multilabel_auroc(hard, target, 3, validate_args=False)),
    ):
        torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=FLOAT32)
    scores, classes = _tensor(rng.random((20, 4, 5, 6), dtype=np.float32)), _tensor(rng.integers(0, 4, (20, 5, 6)))
    metric, reference = MulticlassAUROC(4, thresholds=None), TMMulticlassAUROC(4, thresholds=None)
    for p, t in zip(scores.split(7), classes.split(7), strict=True):
        torch.testing.assert_close(metric(p, t), reference(p, t).double(), rtol=0, atol=FLOAT32)
    torch.testing.assert_close(metric.compute(), reference.compute().double(), rtol=0, atol=FLOAT32)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: AUROC("binary", num_bins=None), r"the exact mode .* is now `thresholds=None`"),
        (lambda: BinaryAUROC(thresholds=None, num_bins=500), "drop them, or pass thresholds='binned'"),
        (lambda: BinaryAUROC(thresholds=100, spacing="linear"), "drop them, or pass thresholds='binned'"),
        (lambda: AUROC("multiclass", num_classes=3, max_fpr=0.5), "torchmetrics ignores it .*; drop it"),
        (lambda: AUROC("multilabel", num_classes=3), "Expected `num_labels` .*`num_classes` counts the classes"),
        (lambda: BinaryAUROC(thresholds=[0.5, 0.2]), "increasing order .*; pass them sorted"),
        (lambda: BinaryAUROC(thresholds=[0.5, 2.0]), r"numbers in \[0, 1\]"),
        (lambda: BinaryAUROC(thresholds=1), "at least 2"),
        (lambda: BinaryAUROC(max_fpr=1.5), r"`max_fpr` to be a float in \(0, 1\]"),
    ],
)
def test_refusals_name_the_replacement(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_declared_probabilities_outside_range_name_the_replacement():
    with pytest.raises(ValueError, match=r"declare input='logits' .* or input='auto' to decide per batch"):
        BinaryAUROC(input="probs").update(torch.tensor([-0.5, 2.0]), torch.tensor([0, 1]))
