"""Native worker pool, TTL cache, metrics and test tooling for game servers."""

try:
    from pygamesvc._core import QueueFullError
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the layout
    if exc.name != "pygamesvc._core":
        raise
    import os as _os

    raise ImportError(
        "pygamesvc's C extension (pygamesvc._core) is not built in "
        f"{_os.path.dirname(__file__)}. This happens when Python imports the "
        "source tree instead of the installed package, e.g. when run from "
        "the repository root after a plain 'pip install .': run from "
        "another directory, or install with 'pip install -e .' to build "
        "the extension in place."
    ) from exc
from pygamesvc.cache import TTLCache
from pygamesvc.pool import WorkerPool

__all__ = ["QueueFullError", "TTLCache", "WorkerPool"]
__version__ = "0.1.0"
