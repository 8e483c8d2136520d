"""``POST /api/v1/query``: a federated query over the server's endpoints (by identifier)
and URLs given in the body, with what each source was asked and read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx


def _db(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC)")
    conn.executemany("INSERT INTO items VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def test_a_query_joins_a_server_endpoint_with_a_given_url(
    rest: httpx.Client, tmp_path: Path
) -> None:
    shop = _db(tmp_path / "shop.db", [(1, "pen", "1.50"), (2, "ink", "20")])
    stock = _db(tmp_path / "stock.db", [(1, "pen", "7"), (2, "ink", "0")])
    made = rest.post(
        "/endpoints",
        json={
            "identifier": "shop",
            "endpoint_type": "source",
            "engine_name": "sqlite",
            "database_name": str(shop),
        },
    )
    assert made.status_code == 201, made.text
    sql = (
        "SELECT s.name, s.price, k.price AS stock FROM shop.main.items s"
        " JOIN stock.main.items k ON k.id = s.id WHERE s.id = 1"
    )
    body = {"sql": sql, "endpoints": {"stock": f"sqlite:///{stock}"}}
    got = rest.post("/query", json=body)
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["columns"] == ["name", "price", "stock"]
    # exact decimals as text, whole ones too (SQLite NUMERIC is an unconstrained decimal)
    assert answer["rows"] == [["pen", "1.5", "7"]] and answer["row_count"] == 1
    assert sorted((s["endpoint"], s["rows"]) for s in answer["sources"]) == [
        ("shop", 1),
        ("stock", 1),
    ]
    assert any("WHERE" in s["request"] for s in answer["sources"])
    planned = rest.post("/query", json={**body, "explain": True}).json()
    assert planned["rows"] == [] and all(s["rows"] == 0 for s in planned["sources"])
    capped = rest.post("/query", json={"sql": "SELECT * FROM shop.main.items", "max_rows": 1})
    assert capped.json()["truncated"] is True and len(capped.json()["rows"]) == 1
    bad = rest.post("/query", json={"sql": "SELECT * FROM nope.main.items"})
    assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]
