"""The server's cached task reads: reused for ``ttl`` seconds, read afresh after any
change made through the service, and never used by :meth:`fresh_record`."""

from __future__ import annotations

import time
from pathlib import Path

from opendms.server.views import CachedTaskService
from opendms.state import StateStore, TaskStatus


def test_reads_are_reused_then_refreshed(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.save_task("t", "src", "dst", "full-load", "{}")
    service = CachedTaskService(store, ttl=0.5)
    first = service.record("t").status
    store.set_status("t", TaskStatus.STOPPED)  # a task process moves on
    assert first is not TaskStatus.STOPPED
    assert service.record("t").status == first  # within the ttl: the cached record
    assert service.fresh_record("t").status is TaskStatus.STOPPED  # decisions read now
    store.set_status("t", TaskStatus.FAILED, "gone")
    time.sleep(0.6)
    assert service.record("t").status is TaskStatus.FAILED  # past the ttl: read again
    store.close()


def test_a_change_through_the_service_empties_the_cache(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.save_task("t", "src", "dst", "full-load", "{}")
    service = CachedTaskService(store, ttl=60)
    assert service.tables("t") == []
    assert service.record("t").status is not TaskStatus.DELETING
    service.delete("t")
    try:
        service.record("t")
    except Exception as exc:  # gone: not answered from the cache
        assert "t" in str(exc)
    else:
        raise AssertionError("a deleted task was answered from the cache")
    store.close()
