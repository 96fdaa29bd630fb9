"""Every use of a private attribute of torchmetrics or Lightning, one module per library.

The package relies on a few internals that neither library exposes publicly (a metric's registered
defaults, its sync flags, Lightning's count of batches that stepped the optimizers, the average kept by
``WeightAveraging``). Reading them through named functions here keeps each assumption in one place, with a
test in ``tests/test_compat_libraries.py`` that fails when the library changes it. The submodules are
imported where they are used, so that ``import lightning_genmetrics`` does not import Lightning.
"""
