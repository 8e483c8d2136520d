"""Parallel ``Scan`` of one DynamoDB table: ``segments`` threads, each reading segment
``i`` of ``TotalSegments`` page by page (``LastEvaluatedKey``), pages handed to the
reader through a bounded queue (memory stays at a few pages per segment)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opendms.endpoints.dynamodb.calls import call
from opendms.endpoints.dynamodb.decode import Item

__all__ = ["ScanSpec", "scan_pages"]

_QUEUED_PER_SEGMENT = 2
_PUT_WAIT = 0.2  # seconds between checks whether the reader went away


@dataclass(frozen=True)
class ScanSpec:
    """What to scan: ``client`` (boto3 DynamoDB), ``table``, ``segments``, items per page
    (``limit``, 0: DynamoDB's 1 MB pages) and the top-level attributes to read (empty:
    all). ``where`` names the endpoint in errors. ``operation`` ``query`` reads one
    segment with ``Query`` instead (federated queries); ``expression`` adds arguments
    (``KeyConditionExpression``, ``FilterExpression`` with their names and values)."""

    client: Any
    where: str
    table: str
    segments: int = 1
    limit: int = 0
    attributes: tuple[str, ...] = ()
    consistent: bool = True
    operation: str = "scan"
    expression: Mapping[str, Any] = field(default_factory=dict)

    def request(self, segment: int) -> dict[str, Any]:
        """The ``Scan`` arguments of ``segment`` (without ``ExclusiveStartKey``)."""
        args: dict[str, Any] = {"TableName": self.table, "ConsistentRead": self.consistent}
        if self.segments > 1:
            args.update(Segment=segment, TotalSegments=self.segments)
        if self.limit > 0:
            args["Limit"] = self.limit
        if self.attributes:
            names = {f"#a{i}": name for i, name in enumerate(self.attributes)}
            args["ProjectionExpression"] = ", ".join(names)
            args["ExpressionAttributeNames"] = names
        for key, value in self.expression.items():
            args[key] = {**args.get(key, {}), **value} if isinstance(value, Mapping) else value
        return args


def pages(spec: ScanSpec, segment: int) -> Iterator[list[Item]]:
    """The pages of one segment, in order."""
    args = spec.request(segment)
    read = spec.client.query if spec.operation == "query" else spec.client.scan
    while True:
        page = call(spec.where, spec.table, read, **args)
        yield page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        args["ExclusiveStartKey"] = last


class _Done:
    """A segment's last message: its error, if it failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _run(spec: ScanSpec, segment: int, out: queue.Queue[Any], gone: threading.Event) -> None:
    """Put ``segment``'s pages on ``out`` until done or the reader is ``gone``."""
    done = _Done()
    try:
        for page in pages(spec, segment):
            while not gone.is_set():
                try:
                    out.put(page, timeout=_PUT_WAIT)
                    break
                except queue.Full:
                    continue
            if gone.is_set():
                return
    except BaseException as exc:  # handed to the reader, which raises it
        done = _Done(exc)
    out.put(done)


def scan_pages(spec: ScanSpec) -> Iterator[list[Item]]:
    """Every page of every segment (segments interleaved); a failed segment's error is
    raised once the pages before it were taken. Closing the iterator stops the threads."""
    out: queue.Queue[Any] = queue.Queue(maxsize=_QUEUED_PER_SEGMENT * spec.segments + 1)
    gone = threading.Event()
    threads = [
        threading.Thread(target=_run, args=(spec, i, out, gone), daemon=True, name=f"scan-{i}")
        for i in range(spec.segments)
    ]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            message = out.get()
            if isinstance(message, _Done):
                running -= 1
                if message.error is not None:
                    raise message.error
                continue
            yield message
    finally:
        gone.set()
        _drain(out, threads)


def _drain(out: queue.Queue[Any], threads: list[threading.Thread]) -> None:
    """Let threads blocked on a full queue finish."""
    while any(t.is_alive() for t in threads):
        with contextlib.suppress(queue.Empty):
            out.get(timeout=_PUT_WAIT)
