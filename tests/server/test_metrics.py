"""``GET /metrics`` of a real server: the Prometheus text equals the tasks' statistics,
and no password or credentialed URL appears in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opendms.config import task_from_dict
from opendms.server.metrics import registry_of
from opendms.service import TaskService
from tests.server.dms import make_task
from tests.server.test_dms_api import FAST, MAPPINGS, _endpoints, _source

pytestmark = pytest.mark.timeout(180)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_after_a_full_load(server: str, token: str, dms: Any, tmp_path: Path) -> None:
    _source(tmp_path / "src.db", 120)
    with sqlite3.connect(tmp_path / "src.db") as conn:
        conn.execute("CREATE TABLE other (k TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO other VALUES (?)", [(f"k{i}",) for i in range(7)])
    src, dst = _endpoints(dms, tmp_path)
    task = make_task(dms, src, dst, MAPPINGS, ident="fl", mtype="full-load")
    # a task whose source has a password (never run): its credentials stay out of /metrics
    secret = TaskService(tmp_path / "state" / "state.db")
    secret.create(
        task_from_dict(
            {
                "name": "pgtask",
                "source": "postgresql://app:Sup3rS3cret@db.example:5432/shop",
                "target": f"sqlite:///{tmp_path / 'x.db'}",
            },
            "test",
        )
    )
    secret.close()
    dms.start_replication_task(
        ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
    )
    flt = [{"Name": "replication-task-arn", "Values": [task]}]
    dms.get_waiter("replication_task_stopped").wait(Filters=flt, WaiterConfig=FAST)
    stats = {
        t["TableName"]: t
        for t in dms.describe_table_statistics(ReplicationTaskArn=task)["TableStatistics"]
    }
    assert {k: v["FullLoadRows"] for k, v in stats.items()} == {"items": 120, "other": 7}

    assert httpx.get(f"{server}/metrics", timeout=30).status_code == 401  # needs the token
    auth = {"Authorization": f"Bearer {token}"}
    response = httpx.get(f"{server}/metrics", headers=auth, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    got = _samples(text)
    status = (("status", "stopped"), ("task", "fl"))
    assert got[("opendms_task_status", status)] == 1.0
    assert got[("opendms_task_status", (("status", "running"), ("task", "fl")))] == 0.0
    assert got[("opendms_task_status", (("status", "ready"), ("task", "pgtask")))] == 1.0
    assert got[("opendms_task_full_load_rows_total", (("task", "fl"),))] == 127.0
    assert got[("opendms_task_full_load_rows_per_second", (("task", "fl"),))] > 0
    assert got[("opendms_task_data_errors_total", (("task", "fl"),))] == 0.0
    for table, want in (("main.items", stats["items"]), ("main.other", stats["other"])):
        labels = (("table", table), ("task", "fl"))
        assert got[("opendms_table_full_load_rows_total", labels)] == want["FullLoadRows"]
        assert got[("opendms_table_inserts_total", labels)] == want["Inserts"] == 0
        assert got[("opendms_table_updates_total", labels)] == want["Updates"]
        assert got[("opendms_table_deletes_total", labels)] == want["Deletes"]
        assert got[("opendms_table_ddls_total", labels)] == want["Ddls"]
        assert got[("opendms_table_error_rows_total", labels)] == want["FullLoadErrorRows"] == 0
    assert "Sup3rS3cret" not in text and "app:" not in text and "://" not in text


def test_cdc_metrics_and_validation_come_from_the_store(tmp_path: Path) -> None:
    """The collector reads what the engine wrote: CDC latencies, backlog, validation."""
    from opendms.state import StateStore
    from opendms.state import validation as vstate

    state = tmp_path / "state.db"
    service = TaskService(state)
    service.create(
        task_from_dict(
            {"name": "c", "source": "sqlite:///a.db", "target": "sqlite:///b.db"}, "test"
        )
    )
    service.close()
    store = StateStore(state)
    store.set_metrics(
        "c",
        {
            "incoming_changes": 12.0,
            "source_latency_s": 1.5,
            "target_latency_s": 2.25,
            "throughput_rows_s": 40.0,
            "source_lag_bytes": 4096.0,
        },
    )
    store.table_planned("c", "main", "t", 10)
    store.count_change("c", "main", "t", "I", 3)
    store.count_change("c", "main", "t", "D", 2)
    vstate.ensure_tables(store)
    vstate.save_state(
        store, "c", vstate.ValidationStateRow("main", "t", "Validated", 1, 1, 0, "", "")
    )
    store.close()
    from prometheus_client import generate_latest

    got = _samples(generate_latest(registry_of(state)).decode())
    task = (("task", "c"),)
    assert got[("opendms_task_cdc_incoming_changes", task)] == 12.0
    assert got[("opendms_task_cdc_latency_source_seconds", task)] == 1.5
    assert got[("opendms_task_cdc_latency_target_seconds", task)] == 2.25
    assert got[("opendms_task_source_backlog_bytes", task)] == 4096.0
    assert got[("opendms_task_validation_tables", (("state", "Validated"), ("task", "c")))] == 1
    assert got[("opendms_task_validation_failures_total", task)] == 0
    labels = (("table", "main.t"), ("task", "c"))
    assert got[("opendms_table_inserts_total", labels)] == 3
    assert got[("opendms_table_deletes_total", labels)] == 2
    # each registry is its own: a second one over another state sees none of these
    empty = generate_latest(registry_of(tmp_path / "none.db")).decode()
    assert 'task="c"' not in empty
