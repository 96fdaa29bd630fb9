"""One network pass for several metrics: within ``shared_extraction()``, a module called again on the same input
tensor returns its first result.

FID and KID usually read the same layer of the same network, and the Inception Score the logits a few
operations further: fed one uint8 batch, they would run the network two or three times. Inside the scope a
call is remembered by the identity of the module and of the input tensor, and the scope holds both, so an
identity cannot be reused by another tensor while it is open. The scope is meant for one batch at a time
(the callback opens one per batch): an input modified in place inside it would not be seen again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")
_active: list[dict[tuple[str, int, int], tuple[Any, Any, Any]]] = []


@contextlib.contextmanager
def shared_extraction() -> Iterator[None]:
    """Within the block, ``memoized`` calls on the same module and input object compute once.

    Example:
        >>> import torch
        >>> calls = []
        >>> def double(x):
        ...     calls.append(1)
        ...     return x * 2
        >>> x = torch.ones(2)
        >>> with shared_extraction():
        ...     first = memoized("double", double, x, lambda: double(x))
        ...     second = memoized("double", double, x, lambda: double(x))
        >>> len(calls), first is second
        (1, True)
    """
    _active.append({})
    try:
        yield
    finally:
        _active.pop()


def memoized(what: str, module: Any, inputs: Any, compute: Callable[[], _T]) -> _T:
    """``compute()``, or inside ``shared_extraction()`` the result already computed for ``(what, module, inputs)``
    (``what`` names the computation, so two kinds of result of one module never mix)."""
    if not _active:
        return compute()
    memo = _active[-1]
    key = (what, id(module), id(inputs))
    entry = memo.get(key)
    if entry is not None and entry[0] is module and entry[1] is inputs:
        return entry[2]
    value = compute()
    memo[key] = (module, inputs, value)
    return value
