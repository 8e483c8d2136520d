"""PostgreSQL source features: partitions-auto, ranges, source filters, indexes after load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pyarrow.dataset as ds
import pytest

from opendms.config import task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore


@pytest.fixture
def events(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE events (id int, day date, kind text, amount numeric(8,2), "
            "PRIMARY KEY (id, day)) PARTITION BY RANGE (day)"
        )
        for month in (1, 2, 3):
            conn.execute(
                f"CREATE TABLE events_m{month} PARTITION OF events "
                f"FOR VALUES FROM ('2024-{month:02d}-01') TO ('2024-{month + 1:02d}-01')"
            )
        conn.execute(
            "INSERT INTO events SELECT g, date '2024-01-01' + (g % 90), "
            "CASE WHEN g % 7 = 0 THEN NULL ELSE 'k' || (g % 5) END, g / 100.0 "
            "FROM generate_series(1, 9000) g"
        )
        conn.execute("CREATE INDEX events_kind ON events (kind)")
    return pg_db


def _rules(*extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "events",
                "object-locator": {"schema-name": "public", "table-name": "events"},
                "rule-action": "include",
            },
            *extra,
        ]
    }


def _run(source: str, target: str, tmp_path: Path, mappings: dict[str, Any]) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    spec = {"name": "ev", "source": source, "target": target, "table_mappings": mappings}
    run_task(task_from_dict(spec, where="test"), store)
    return store


def _source_rows(url: str, where: str = "true") -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT id, day, kind, amount FROM events WHERE {where} ORDER BY id"
        ).fetchall()


def test_partitions_auto_to_lake(events: str, tmp_path: Path) -> None:
    settings = {
        "rule-type": "table-settings",
        "rule-id": "2",
        "rule-name": "p",
        "object-locator": {"schema-name": "public", "table-name": "events"},
        "parallel-load": {"type": "partitions-auto"},
    }
    store = _run(events, f"file://{tmp_path}/lake?DataFormat=parquet", tmp_path, _rules(settings))
    folder = tmp_path / "lake/public/events"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"SEGMENT{i}_LOAD00000001.parquet" for i in (1, 2, 3)]
    per_file = [ds.dataset(str(folder / n)).count_rows() for n in names]
    assert per_file == [
        len(_source_rows(events, f"extract(month from day) = {m}")) for m in (1, 2, 3)
    ]
    table = ds.dataset(str(folder)).to_table().sort_by("id")
    got = list(
        zip(*(table.column(c).to_pylist() for c in ("id", "day", "kind", "amount")), strict=True)
    )
    assert got == _source_rows(events)
    assert store.tables("ev")[0].full_load_rows == 9000


def test_partitioned_table_to_postgres_with_key_and_index(
    events: str, pg_target_db: str, tmp_path: Path
) -> None:
    settings = {
        "rule-type": "table-settings",
        "rule-id": "2",
        "rule-name": "p",
        "object-locator": {"schema-name": "public", "table-name": "events"},
        "parallel-load": {"type": "partitions-auto"},
    }
    _run(events, pg_target_db, tmp_path, _rules(settings))
    assert _source_rows(pg_target_db) == _source_rows(events)
    with psycopg.connect(pg_target_db) as conn:
        pk = conn.execute(
            "SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'events'::regclass AND i.indisprimary"
        ).fetchone()
        assert pk == (["id", "day"],)
        idx = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'events_kind'"
        ).fetchone()
        assert idx is not None and "(kind)" in idx[0]


@pytest.mark.parametrize(
    ("conditions", "where"),
    [
        (
            [{"filter-operator": "between", "start-value": "100", "end-value": "200"}],
            "id BETWEEN 100 AND 200",
        ),
        (
            [
                {"filter-operator": "lte", "value": "10"},
                {"filter-operator": "gte", "value": "8990"},
            ],
            "id <= 10 OR id >= 8990",
        ),
        ([{"filter-operator": "eq", "value": "77"}], "id = 77"),
    ],
)
def test_source_filters(
    events: str, pg_target_db: str, tmp_path: Path, conditions: list[dict[str, str]], where: str
) -> None:
    rule = _rules()["rules"][0]
    rule["filters"] = [
        {"filter-type": "source", "column-name": "id", "filter-conditions": conditions},
        {
            "filter-type": "source",
            "column-name": "kind",
            "filter-conditions": [{"filter-operator": "notnull"}],
        },
    ]
    _run(events, pg_target_db, tmp_path, {"rules": [rule]})
    assert _source_rows(pg_target_db) == _source_rows(events, f"({where}) AND kind IS NOT NULL")


def test_ranges_segments_cover_every_row(events: str, pg_target_db: str, tmp_path: Path) -> None:
    settings = {
        "rule-type": "table-settings",
        "rule-id": "2",
        "rule-name": "p",
        "object-locator": {"schema-name": "public", "table-name": "events"},
        "parallel-load": {
            "type": "ranges",
            "columns": ["id"],
            "boundaries": [["2000"], ["2001"], ["7000"]],
        },
    }
    store = _run(events, pg_target_db, tmp_path, _rules(settings))
    assert _source_rows(pg_target_db) == _source_rows(events)
    assert store.tables("ev")[0].full_load_rows == 9000


def test_arrow_path_keeps_native_and_array_types(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """An add-column rule forces the Arrow path; native types and arrays survive it."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
        conn.execute(
            "CREATE TABLE odd (id int PRIMARY KEY, moods mood[], ids uuid[], nums numeric[], "
            "docs jsonb[], free numeric, addr inet, cash money, tags text[])"
        )
        conn.execute(
            "INSERT INTO odd VALUES (1, '{sad,happy}', "
            "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{1.5,NaN,12345678901234567890.1}', "
            """ARRAY['{"a": 1}'::jsonb], 1e40, '10.0.0.1/8', 12.34, '{x,NULL,"y z"}'), """
            "(2, NULL, '{}', NULL, NULL, NULL, NULL, NULL, NULL)"
        )
    rule = {
        "rule-type": "transformation",
        "rule-id": "9",
        "rule-name": "x",
        "rule-target": "column",
        "object-locator": {"schema-name": "public", "table-name": "odd"},
        "rule-action": "add-column",
        "value": "two",
        "expression": "$id * 2",
        "data-type": {"type": "int4"},
    }
    sel = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "s",
        "object-locator": {"schema-name": "public", "table-name": "odd"},
        "rule-action": "include",
    }
    _run(pg_db, pg_target_db, tmp_path, {"rules": [sel, rule]})
    cols = (
        "id, moods::text, ids::text, nums::text, docs::text, free::text, addr::text, "
        "cash::text, tags::text"
    )
    with psycopg.connect(pg_db) as src, psycopg.connect(pg_target_db) as dst:
        want = src.execute(f"SELECT {cols} FROM odd ORDER BY id").fetchall()
        got = dst.execute(f"SELECT {cols} FROM odd ORDER BY id").fetchall()
        two = dst.execute("SELECT two FROM odd ORDER BY id").fetchall()
        types = dst.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'odd'::regclass AND attnum > 0 ORDER BY attnum"
        ).fetchall()
    assert got == want
    assert two == [(2,), (4,)]
    assert [t[0] for t in types] == [
        "integer",
        "mood[]",
        "uuid[]",
        "numeric[]",
        "jsonb[]",
        "numeric",
        "inet",
        "money",
        "text[]",
        "integer",
    ]


def test_reads_commit_rate_rows_per_batch(events: str) -> None:
    """The driver fetches some 13 MB per batch; the source hands them out in CommitRate
    rows (FullLoadSettings.CommitRate), every row once and in order."""
    from opendms.endpoints import open_source
    from opendms.model import ReadPlan, TableRef

    source = open_source(events)
    try:
        table = source.describe(TableRef("public", "events_m1"))
        plan = ReadPlan(table, ("id", "kind"), batch_rows=700)
        batches = list(source.read(plan, None))
    finally:
        source.close()
    with psycopg.connect(events) as conn:
        expected = conn.execute("SELECT id, kind FROM events_m1 ORDER BY id").fetchall()
    assert [b.num_rows for b in batches[:-1]] == [700] * (len(batches) - 1)
    assert 0 < batches[-1].num_rows <= 700
    got = [(r["id"], r["kind"]) for b in batches for r in b.to_pylist()]
    assert sorted(got) == expected
