"""Native worker pool, TTL cache, metrics and test tooling for game servers."""

from pygamesvc._core import QueueFullError
from pygamesvc.cache import TTLCache
from pygamesvc.pool import WorkerPool

__all__ = ["QueueFullError", "TTLCache", "WorkerPool"]
__version__ = "0.1.0"
