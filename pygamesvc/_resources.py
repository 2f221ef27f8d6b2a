"""Registry of pygamesvc objects that own threads or other resources.

Pools, caches and samplers call :func:`track` as they are created, and the
pytest plugin's leak check calls :func:`open_resources` to find the ones
that a test left open.  The registry holds weak references only, so
tracking never keeps an object alive; an object that is garbage-collected
leaves the registry and is no longer reported.
"""

import itertools
import threading
import weakref
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["OpenResource", "open_resources", "track"]


class OpenResource(NamedTuple):
    """An open tracked object, as reported by :func:`open_resources`."""

    token: int  # unique for the life of the process, unlike id()
    kind: str  # "pool", "cache", "sampler", ...
    obj: object


class _Entry(NamedTuple):
    ref: "weakref.ref[object]"
    kind: str
    is_closed: Callable[[object], bool] | None


_lock = threading.Lock()
_entries: "dict[int, _Entry]" = {}
_tokens = itertools.count(1)


def _forget(token: int) -> None:
    with _lock:
        _entries.pop(token, None)


def track(
    obj: object,
    kind: str,
    is_closed: Callable[[object], bool] | None = None,
) -> int:
    """Register obj so that leak checks report it while it is open.

    ``kind`` names the sort of object in leak reports ("pool", "cache",
    "sampler").  The object counts as open until ``is_closed(obj)`` returns
    true; without ``is_closed`` it is read from the object's ``closed``
    attribute.  obj must support weak references.  Returns the token that
    identifies obj in :func:`open_resources`.
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty str, got {kind!r}")
    if is_closed is not None and not callable(is_closed):
        raise TypeError(
            f"is_closed must be callable or None, got {type(is_closed).__name__}"
        )
    token = next(_tokens)
    # The callback drops the entry as soon as obj is collected.
    ref = weakref.ref(obj, lambda _ref, token=token: _forget(token))
    with _lock:
        _entries[token] = _Entry(ref, kind, is_closed)
    return token


def _is_closed(obj: object, entry: _Entry) -> bool:
    if entry.is_closed is not None:
        return bool(entry.is_closed(obj))
    return bool(obj.closed)


def open_resources() -> "list[OpenResource]":
    """Return the tracked objects that are alive and not closed, oldest first."""
    with _lock:
        entries = list(_entries.items())
    found = []
    # The closed checks run outside the lock: they are the objects' own code.
    for token, entry in entries:
        obj = entry.ref()
        if obj is not None and not _is_closed(obj, entry):
            found.append(OpenResource(token, entry.kind, obj))
    return found
