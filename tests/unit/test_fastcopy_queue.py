"""The raw-copy hand-off between the COPY reader and writer (no server)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from opendms.endpoints.postgres.fastcopy import _DONE, _chunks, rows_in_sample


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
