"""Conformance of the source roles: full-load reads of every native type, and change
capture of one insert, update and delete (see ``conftest.py`` for the parametrization)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pyarrow as pa

from opendms.changes import Change, Op
from opendms.endpoints import open_change_source, open_source
from opendms.endpoints.base import EndpointURL
from opendms.model import ReadPlan
from tests.conformance.conftest import Endpoint, needs
from tests.conformance.readback import canonical_rows


@needs("source")
def test_source_reads_every_native_type(endpoint: Endpoint, source_url: str) -> None:
    want = endpoint.create_everything(source_url)
    source = open_source(source_url)
    try:
        ref = next(r for r in source.list_tables() if r.name == "everything")
        table = source.describe(ref)
        plan = ReadPlan(table, tuple(c.name for c in table.columns))
        rows = pa.Table.from_batches(list(source.read(plan, None))).sort_by("id").to_pylist()
    finally:
        source.close()
    assert [c.name for c in table.columns] == want.columns
    got, wrote = canonical_rows(rows, want.kinds), canonical_rows(want.rows, want.kinds)
    assert _differences(got, wrote) == []


def _differences(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[str]:
    """Each (row id, column) whose value read differs from the one written."""
    assert len(got) == len(want)
    return [
        f"row {w['id']} {name}: read {g[name]!r}, wrote {value!r}"
        for g, w in zip(got, want, strict=True)
        for name, value in w.items()
        if g[name] != value
    ]


def _changes(stream: Any, want: int, seconds: float = 30) -> list[Change]:
    """The first ``want`` row changes the stream delivers (or what came within ``seconds``)."""
    out: list[Change] = []
    deadline = time.monotonic() + seconds
    for txn in stream:
        out += [c for c in (txn.changes if txn else []) if c.op is not Op.DDL]
        if len(out) >= want or time.monotonic() > deadline:
            break
    return out


@needs("cdc_source")
def test_capture_sees_insert_update_delete(endpoint: Endpoint, source_url: str) -> None:
    endpoint.kv(source_url, "create")
    source = open_source(source_url)
    refs = [r for r in source.list_tables() if r.name == "kv"]
    source.close()
    capture = open_change_source(EndpointURL.parse(source_url), "conformance")
    try:
        capture.prepare(refs)
        start, _ = capture.start()
        capture.release_snapshot()
        endpoint.kv(source_url, "change")
        stop = threading.Event()
        changes = _changes(capture.stream(start, stop), 3)
        stop.set()
        capture.drop()
    finally:
        capture.close()
    assert [(c.op, c.table) for c in changes] == [
        (Op.INSERT, "kv"),
        (Op.UPDATE, "kv"),
        (Op.DELETE, "kv"),
    ]
    assert [str(v) for v in changes[1].values] == ["1", "b"]
    assert [str(k) for k in changes[2].key] == ["1"]
