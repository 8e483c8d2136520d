"""A task service whose reads the server may answer from a short-lived cache.

Under load every Describe call, REST listing and console refresh reads each task's
record and table statistics from the state store, through one SQLite connection and its
lock. :class:`CachedTaskService` keeps those two reads for ``ttl`` seconds; anything
that changes a task through this service (create, start, stop, ...) empties the cache
before and after, so the API's own changes show at once and only the task processes'
progress can lag by ``ttl``. Checks that decide an action (is the task running?) read
:meth:`CachedTaskService.fresh_record`, never the cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from opendms.service import TaskService
from opendms.state import TaskRecord
from opendms.state.store import TableStats

T = TypeVar("T")
TTL = 0.3  # seconds a task's record and statistics may be reused


class CachedTaskService(TaskService):
    """:class:`TaskService` with cached :meth:`record` and :meth:`tables`."""

    def __init__(self, *args: Any, ttl: float = TTL, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._cache_lock = threading.Lock()

    def _cached(self, kind: str, name: str, read: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get((kind, name))
        if hit is not None and now - hit[0] < self.ttl:
            value: T = hit[1]
            return value
        value = read()
        with self._cache_lock:
            self._cache[(kind, name)] = (now, value)
        return value

    def forget(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def record(self, name: str) -> TaskRecord:
        return self._cached("record", name, lambda: super(CachedTaskService, self).record(name))

    def fresh_record(self, name: str) -> TaskRecord:
        record = super().record(name)
        with self._cache_lock:
            self._cache[("record", name)] = (time.monotonic(), record)
        return record

    def tables(self, name: str) -> list[TableStats]:
        return self._cached("tables", name, lambda: super(CachedTaskService, self).tables(name))


def _forgetting(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: CachedTaskService, *args: Any, **kwargs: Any) -> Any:
        self.forget()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.forget()

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


for _name in ("create", "delete", "run", "start", "resume", "reload", "stop"):
    setattr(CachedTaskService, _name, _forgetting(getattr(TaskService, _name)))
