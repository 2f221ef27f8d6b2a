"""Type stubs for pygamesvc._core, the C extension."""

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypedDict, TypeVar

_T = TypeVar("_T")

class QueueFullError(RuntimeError): ...

class PoolStats(TypedDict):
    workers: int
    queued: int
    running: int
    submitted: int
    completed: int
    failed: int
    rejected: int

class WorkerPool:
    def __new__(
        cls,
        workers: int,
        queue_size: int | None = ...,
        *,
        name: str | None = ...,
        on_error: Callable[[BaseException], object] | None = ...,
        submit_timeout: float | None = ...,
    ) -> WorkerPool: ...
    @property
    def name(self) -> str: ...
    @property
    def workers(self) -> int: ...
    @property
    def queue_size(self) -> int: ...
    @property
    def submit_timeout(self) -> float | None: ...
    @property
    def closed(self) -> bool: ...
    def execute(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None: ...
    def try_execute(
        self, fn: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> bool: ...
    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]: ...
    def wait(self, timeout: float | None = ...) -> bool: ...
    def shutdown(self, wait: bool = ..., *, cancel_futures: bool = ...) -> None: ...
    def close(self) -> None: ...
    def stats(self) -> PoolStats: ...

def _shutdown_all_pools() -> None: ...
