"""Raw COPY TO STDOUT at libpq level, read in a thread and handed on in ~1 MB chunks.

PostgreSQL sends one CopyData message per row; going through psycopg's
``Copy`` iterator costs a Python generator step per row. Reading the messages
straight from the libpq connection in a worker thread, and joining them into
large chunks, keeps the Python work per row to one call and lets the target
write while the next chunk is read.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

CHUNK = 1 << 20
_DONE = object()


class _Reader(threading.Thread):
    def __init__(self, conn: Any, sql: str) -> None:
        super().__init__(name="copy-out", daemon=True)
        self.conn = conn
        self.sql = sql
        self.out: queue.Queue[object] = queue.Queue(maxsize=8)
        self.stop = threading.Event()

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            self._copy()
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _copy(self) -> None:
        from psycopg import pq

        pgconn = self.conn.pgconn
        pgconn.send_query(self.sql.encode())
        result = pgconn.get_result()
        if result.status != pq.ExecStatus.COPY_OUT:
            raise RuntimeError((result.error_message or b"COPY failed").decode(errors="replace"))
        parts: list[bytes] = []
        size = 0
        while not self.stop.is_set():
            nbytes, data = pgconn.get_copy_data(0)
            if nbytes < 0:
                break
            parts.append(data)
            size += nbytes
            if size >= CHUNK:
                if not self._put((b"".join(parts), len(parts))):
                    return
                parts, size = [], 0
        self._finish(pgconn, parts)

    def _finish(self, pgconn: Any, parts: list[bytes]) -> None:
        from psycopg import pq

        if parts:
            self._put((b"".join(parts), len(parts)))
        while (result := pgconn.get_result()) is not None:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise RuntimeError((result.error_message or b"").decode(errors="replace"))


def copy_chunks(conn: Any, sql: str) -> Iterator[tuple[bytes, int]]:
    """Yield the output of ``sql`` (a COPY ... TO STDOUT) as (chunk, messages) pairs.

    For a binary COPY every message after the first (which carries the header
    with the first row) is one row, so ``messages`` counts rows.
    """
    reader = _Reader(conn, sql)
    reader.start()
    try:
        while True:
            item = reader.out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, tuple)
            yield item
    finally:
        reader.stop.set()
        if reader.is_alive():
            with contextlib.suppress(Exception):
                conn.cancel()  # a consumer that stopped early: end the server's COPY
        reader.join(timeout=10)
