"""The handler process: ``python -m opendms.handlers.worker package.module:function``.

It imports the function, says ``{"ready": true}`` (or ``{"fatal": "..."}``), then reads
batches on stdin, each an 8-byte big-endian length and a pickle from the task's process:
(outbox chunks by first seq, :data:`opendms.handlers.outbox.Wire` values). It makes the
change records (:class:`opendms.handlers.outbox.Records`), calls the function with them
(``list[ChangeRecord]``) and answers one line: ``{"ok": true}``, ``{"error": "..."}``,
or ``{"missing": [seq, ...]}`` when a record's chunk was not sent to it. The replies go
to the original stdout; the function's own prints go to stderr (the task's log). It
ends when stdin closes or the task's process is gone, and ignores Ctrl-C (the task stops
it when its batch is done).
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from opendms.envelope import ChangeRecord
from opendms.handlers.outbox import Records

Function = Callable[[list[ChangeRecord]], Any]


def resolve(path: str) -> Function:
    """The function ``package.module:attr.attr`` names (ImportError, AttributeError,
    TypeError when it does not name a callable)."""
    module_name, _, attrs = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for attr in attrs.split("."):
        found = getattr(found, attr)
    if not callable(found):
        raise TypeError(f"{path} is a {type(found).__name__}, not a function")
    return found  # type: ignore[no-any-return]


def _reply(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def _error_text(exc: BaseException) -> str:
    """The exception and the innermost frame of the traceback (where it was raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _watch_parent(parent: int) -> None:
    """End this process when the task's process is gone (a hung function too)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def batches(source: BinaryIO) -> Iterator[bytes]:
    """The batches written on ``source`` until it closes."""
    while len(head := source.read(8)) == 8:
        body = source.read(int.from_bytes(head, "big"))
        if not body:
            return
        yield body


def serve(function: Function, source: BinaryIO, out: BinaryIO) -> None:
    """Call ``function`` with each batch read from ``source``; answer on ``out``."""
    held = Records()
    for body in batches(source):
        try:
            chunks, wires = pickle.loads(body)
            held.add(chunks)
            if missing := held.missing(wires):
                _reply(out, {"missing": missing})
                continue
            function([held.record(wire) for wire in wires])
        except Exception as exc:  # the function's failure is the answer, not ours
            _reply(out, {"error": _error_text(exc)})
            continue
        _reply(out, {"ok": True})


def main(argv: list[str]) -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the function's prints go to the log, not into the replies
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    sys.path.insert(0, os.getcwd())
    try:
        function = resolve(argv[0])
    except Exception as exc:
        _reply(out, {"fatal": f"cannot import {argv[0]}: {_error_text(exc)}"})
        return 2
    _reply(out, {"ready": True})
    serve(function, sys.stdin.buffer, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
