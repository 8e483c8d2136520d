"""The task's side of a handler process (:mod:`opendms.handlers.worker`).

:class:`HandlerProcess` starts the process, sends it batches and waits for each answer
at most the handler's ``timeout_s``. A process that dies, answers garbage or runs out
of time is killed; that batch is a function error and the next one starts a new
process, so a handler that crashes or hangs never stops the change stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opendms.errors import ConfigError
from opendms.handlers.outbox import Records, Wire

if TYPE_CHECKING:
    from opendms.handlers.delivery import Deliverable

START_TIMEOUT = 120.0  # seconds a handler process may take to import its function


class HandlerProcess:
    """One handler function in a process of its own."""

    def __init__(self, function: str, timeout_s: float, env: dict[str, str]) -> None:
        self.function = function
        self.timeout_s = timeout_s
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""
        self.started = 0  # processes started (a restart after a failure counts)
        self.sent = set[int]()

    def start(self) -> None:
        """Start the process and wait until it has imported the function; ConfigError
        when it cannot (the message says why)."""
        self.launch()
        self.ready()

    def launch(self) -> None:
        """Start the process (:meth:`ready` waits for it to import the function)."""
        self.close()
        args = [sys.executable, "-m", "opendms.handlers.worker", self.function]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **self.env},
            start_new_session=True,  # Ctrl-C in a terminal is for the task, not for it
        )
        self.started += 1
        self.buffer = b""
        self.sent = set[int]()  # the outbox chunks this process was sent

    def ready(self) -> None:
        """Wait until the launched process has imported the function (ConfigError:
        it could not)."""
        try:
            answer = self._answer(START_TIMEOUT)
        except _BrokenError as exc:
            answer = {"fatal": f"{self.function}: {exc}"}
        if answer.get("ready") is not True:
            why = answer.get("fatal") or answer.get("error") or "it did not start"
            self.close()
            raise ConfigError(str(why))

    def invoke(self, records: Sequence[Deliverable]) -> str:
        """Call the function with ``records``: "" when it returned, else why not (its
        exception, its death, or the timeout). The outbox chunks they are in go along
        once per process (the process keeps them decoded; it asks again for one it
        let go)."""
        if self.proc is None or self.proc.poll() is not None:
            try:
                self.start()
            except ConfigError as exc:  # its code broke since the task started
                return exc.message
        wires = [r.wire() for r in records]
        chunks = {c[0]: c[1] for r in records if (c := r.chunk) is not None}
        answer = self._call({f: b for f, b in chunks.items() if f not in self.sent}, wires)
        if isinstance(answer, dict) and "missing" in answer:
            self.sent.difference_update(answer["missing"])
            again = {f: chunks[f] for f in answer["missing"] if f in chunks}
            answer = self._call(again, wires)
        if isinstance(answer, str):
            return answer
        if answer.get("ok") is True:
            return ""
        return str(answer.get("error") or f"unexpected answer {answer!r}")

    def _call(self, bodies: dict[int, bytes], wires: list[Wire]) -> dict[str, Any] | str:
        """Send one batch; the process's answer, or why there is none."""
        assert self.proc is not None and self.proc.stdin is not None
        body = pickle.dumps((bodies, wires), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(len(body).to_bytes(8, "big") + body)
            self.proc.stdin.flush()
            answer = self._answer(self.timeout_s)
        except _BrokenError as exc:
            self.kill()
            return str(exc)
        except OSError:  # a broken pipe: it ended before it read the batch
            return self._death()
        self.sent.update(bodies)
        if len(self.sent) > 2 * Records.KEPT:
            self.sent = set(sorted(self.sent)[-Records.KEPT :])
        return answer

    def _answer(self, timeout: float) -> dict[str, Any]:
        """The next line the process writes, parsed; _BrokenError on death or timeout."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise _BrokenError(
                    f"timed out after {timeout:g} s (the handler process was killed)"
                )
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise _BrokenError(self._death())
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            raise _BrokenError(f"the handler process answered {line[:200]!r}") from None
        return answer if isinstance(answer, dict) else {"error": f"answer {answer!r}"}

    def _death(self) -> str:
        """Why the process ended, once it has."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the handler process stopped answering (killed)"
        self._close_pipes()
        self.proc = None
        if code < 0:
            return f"the handler process was killed by {signal.Signals(-code).name}"
        return f"the handler process exited with status {code}"

    def interrupt(self) -> None:
        """Kill the process from another thread (a stop that cannot wait any longer):
        the call waiting for it returns a function error."""
        proc = self.proc
        if proc is not None:
            proc.kill()

    def kill(self) -> None:
        """Kill the process now (a timeout, a broken pipe): the next call restarts it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close_pipes()
        self.proc = None

    def close(self) -> None:
        """End the process: stdin closed, a moment to finish, then killed."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()
        self.proc = None

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class _BrokenError(Exception):
    """The process cannot answer (dead, garbage, timed out): a function error."""
