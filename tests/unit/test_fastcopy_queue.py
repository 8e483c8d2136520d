"""The raw-copy hand-off between the COPY reader and writer (no server): asyncpg's queue,
psycopg's blocks, the driver switch."""

from __future__ import annotations

import asyncio
import threading

import pytest

from opendms.endpoints.postgres.fastcopy import (
    _BLOCK,
    _DONE,
    DRIVER_ENV,
    _blocks,
    _chunks,
    driver,
    rows_in_sample,
)
from opendms.errors import ConfigError, StopRequested


async def _consume(fail_after: int | None, chunks: int = 20) -> list[bytes]:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2)

    async def reader() -> None:
        for i in range(chunks):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("source went away")
            await queue.put(bytes([i]))
        await queue.put(_DONE)

    task = asyncio.create_task(reader())
    got = []
    async for chunk in _chunks(queue, task, lambda c: None, threading.Event()):
        await asyncio.sleep(0.001)  # a slower writer keeps the queue full
        got.append(chunk)
    return got


def test_every_chunk_arrives_even_when_the_queue_is_full_at_the_end() -> None:
    assert asyncio.run(_consume(None)) == [bytes([i]) for i in range(20)]


def test_a_failing_reader_aborts_the_writer() -> None:
    with pytest.raises(RuntimeError, match="source went away"):
        asyncio.run(_consume(3))


def test_rows_in_sample_counts_complete_binary_rows() -> None:
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    row = b"\x00\x01" + b"\x00\x00\x00\x04" + b"\x00\x00\x00\x07"
    rows, size = rows_in_sample(header + row * 3 + row[:5])
    assert (rows, size) == (3, len(row) * 3)


def test_psycopg_rows_are_joined_into_blocks_that_keep_every_byte() -> None:
    rows = [bytes([i % 251]) * 1000 for i in range(300)]  # 300 KB: two full blocks + rest
    seen: list[int] = []
    blocks = list(_blocks(iter(rows), lambda b: seen.append(len(b)), threading.Event()))
    assert b"".join(blocks) == b"".join(rows)
    assert [len(b) >= _BLOCK for b in blocks] == [True, True, False]
    assert seen == [len(b) for b in blocks]


def test_psycopg_blocks_stop_when_asked() -> None:
    stop = threading.Event()
    rows = (b"x" * 1000 for _ in range(1000))
    blocks = _blocks(rows, lambda b: stop.set(), stop)
    next(blocks)
    with pytest.raises(StopRequested):
        next(blocks)


def test_the_driver_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DRIVER_ENV, raising=False)
    assert driver() == "asyncpg"
    monkeypatch.setenv(DRIVER_ENV, " Psycopg ")
    assert driver() == "psycopg"
    monkeypatch.setenv(DRIVER_ENV, "pg8000")
    with pytest.raises(ConfigError, match="unknown driver 'pg8000'"):
        driver()
