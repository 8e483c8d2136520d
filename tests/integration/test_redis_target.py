"""SQLite → Redis Streams, full load and CDC, the task SIGKILLed mid-stream twice: the
stream, read with redis-py's XRANGE, holds every change once, in order per key (a
batch's XADDs and its checkpoint are one MULTI/EXEC)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from tests.integration.brokercdc import body, check_records, run_with_kills
from tests.support.brokers import RedisServer


def _entries(server: RedisServer, key: str) -> list[dict[str, Any]]:
    client = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(key, "-", "+")  # type: ignore[assignment]
    finally:
        client.close()
    return [_entry(fields) for _, fields in entries]


def _entry(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """An entry's record and its ``id`` field (None: a full-load record has none)."""
    msg_id = fields.get(b"id")
    return {"id": msg_id.decode() if msg_id else None, "record": body(fields[b"record"])}


def test_sqlite_to_redis_with_kills_loses_and_repeats_nothing(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    writer = run_with_kills(tmp_path, redis_url)
    prefix = redis_url.rsplit("/", 1)[1]
    check_records(_entries(redis_server, f"{prefix}:main.orders"), writer)
