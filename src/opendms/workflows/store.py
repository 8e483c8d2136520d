"""Workflow executions in the state store (the task state file, its own connection).

* ``workflow_executions``: one row per execution: its machine's definition and input
  (enough to resume it), status (``RUNNING``, ``SUCCEEDED``, ``FAILED``, as Step
  Functions names them), output or error, times, and the pid running it.
* ``workflow_events``: the history, numbered from 1 per execution.
* ``workflow_machines``: the state machines the server keeps (Step Functions'
  ``CreateStateMachine``), with an optional cron ``schedule`` and the input it runs with.
* ``workflow_journal``: what a resumed execution replays instead of running again: each
  state's exit (output and next state), each Task/Parallel/Map attempt's outcome, each
  Wait's end time (:class:`opendms.workflows.run.Journal`). A row is committed before
  the execution goes on, so a killed execution loses at most the state it was in.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opendms.errors import ConfigError
from opendms.state.lock import pid_alive
from opendms.state.store import SideStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS workflow_executions (
    name TEXT PRIMARY KEY,
    machine TEXT NOT NULL,
    definition TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    error TEXT NOT NULL DEFAULT '',
    cause TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    stopped_at TEXT,
    pid INTEGER,
    cwd TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS workflow_events (
    execution TEXT NOT NULL,
    id INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (execution, id)
);
CREATE TABLE IF NOT EXISTS workflow_machines (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    role_arn TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    schedule TEXT NOT NULL DEFAULT '',
    schedule_input TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS workflow_journal (
    execution TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (execution, key)
);
"""

RUNNING, SUCCEEDED, FAILED, ABORTED = "RUNNING", "SUCCEEDED", "FAILED", "ABORTED"


@dataclass(frozen=True)
class MachineRecord:
    """A state machine the server keeps."""

    name: str
    definition: str
    role_arn: str
    created_at: str
    schedule: str
    schedule_input: str


@dataclass(frozen=True)
class ExecutionRecord:
    """One execution as the store keeps it (``input``/``output`` as JSON values)."""

    name: str
    machine: str
    definition: str
    input: Any
    status: str
    output: Any
    error: str
    cause: str
    started_at: str
    stopped_at: str | None
    pid: int | None
    cwd: str

    @property
    def interrupted(self) -> bool:
        """RUNNING, but the process that ran it is gone (``workflow resume`` goes on)."""
        return self.status == RUNNING and not pid_alive(self.pid)

    def summary(self) -> dict[str, Any]:
        """The execution as ``workflow describe`` prints it."""
        out: dict[str, Any] = {
            "name": self.name,
            "stateMachine": self.machine,
            "status": self.status,
            "startDate": self.started_at,
            "stopDate": self.stopped_at,
            "input": self.input,
        }
        if self.status == SUCCEEDED:
            out["output"] = self.output
        if self.status == FAILED:
            out.update(error=self.error, cause=self.cause)
        if self.interrupted:
            out["interrupted"] = True
        return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WorkflowStore(SideStore):
    """The workflow tables of the state file at ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    # -- executions ----------------------------------------------------------------------

    def create(
        self,
        name: str,
        machine: str,
        definition: str,
        data: Any,
        cwd: str,
        pid: int | None = None,
    ) -> None:
        """A new RUNNING execution, run by ``pid`` (default: this process; a server that
        hands it to a child names itself); ConfigError when the name is taken."""
        try:
            with self._tx() as conn:
                conn.execute(
                    "INSERT INTO workflow_executions (name, machine, definition, input, status,"
                    " started_at, pid, cwd) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        machine,
                        definition,
                        json.dumps(data),
                        RUNNING,
                        _now(),
                        pid or os.getpid(),
                        cwd,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"an execution named {name!r} exists already "
                f"(resume it with `opendms workflow resume {name}`, or pick another --name)"
            ) from None

    def take_over(self, name: str) -> ExecutionRecord:
        """An interrupted execution, now this process's to go on with."""
        record = self.execution(name)
        if record.status != RUNNING:
            raise ConfigError(f"execution {name!r} has ended ({record.status}): nothing to resume")
        if not record.interrupted and record.pid != os.getppid():  # a server hands it over
            raise ConfigError(f"execution {name!r} is running (pid {record.pid})")
        with self._tx() as conn:
            conn.execute(
                "UPDATE workflow_executions SET pid = ? WHERE name = ?", (os.getpid(), name)
            )
        return record

    def finish(
        self, name: str, output: Any = None, error: str = "", cause: str = "", status: str = ""
    ) -> None:
        """The execution's end (a RUNNING one only: an aborted execution stays so)."""
        status = status or (FAILED if error else SUCCEEDED)
        with self._tx() as conn:
            conn.execute(
                "UPDATE workflow_executions SET status = ?, output = ?, error = ?, cause = ?,"
                " stopped_at = ?, pid = NULL WHERE name = ? AND status = ?",
                (status, json.dumps(output, default=str), error, cause, _now(), name, RUNNING),
            )

    # -- state machines ------------------------------------------------------------------

    def put_machine(self, record: MachineRecord, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        fields = (
            record.name,
            record.definition,
            record.role_arn,
            record.created_at,
            record.schedule,
            record.schedule_input,
        )
        try:
            with self._tx() as conn:
                conn.execute(
                    f"{verb} INTO workflow_machines (name, definition, role_arn, created_at,"
                    " schedule, schedule_input) VALUES (?, ?, ?, ?, ?, ?)",
                    fields,
                )
        except sqlite3.IntegrityError:
            raise ConfigError(f"a state machine named {record.name!r} exists already") from None

    def machine(self, name: str) -> MachineRecord | None:
        found = [m for m in self.machines() if m.name == name]
        return found[0] if found else None

    def machines(self) -> list[MachineRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT name, definition, role_arn, created_at, schedule, schedule_input"
                " FROM workflow_machines ORDER BY created_at, name"
            ).fetchall()
        return [MachineRecord(*r) for r in rows]

    def delete_machine(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM workflow_machines WHERE name = ?", (name,))

    def execution(self, name: str) -> ExecutionRecord:
        rows = self._select("WHERE name = ?", (name,))
        if not rows:
            raise ConfigError(f"no workflow execution named {name!r} in {self.path}")
        return rows[0]

    def executions(self, machine: str | None = None) -> list[ExecutionRecord]:
        if machine is not None:
            return self._select("WHERE machine = ? ORDER BY started_at, name", (machine,))
        return self._select("ORDER BY started_at, name", ())

    def _select(self, where: str, args: tuple[Any, ...]) -> list[ExecutionRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT name, machine, definition, input, status, output, error, cause,"
                f" started_at, stopped_at, pid, cwd FROM workflow_executions {where}",
                args,
            ).fetchall()
        return [
            ExecutionRecord(
                r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5] or "null"), *r[6:]
            )
            for r in rows
        ]

    # -- history and journal -------------------------------------------------------------

    def add_event(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        """Append an event; it gets its ``id`` (1, 2, ...)."""
        with self._tx() as conn:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM workflow_events WHERE execution = ?", (name,)
            ).fetchone()
            event = {"id": last + 1, **event}
            conn.execute(
                "INSERT INTO workflow_events (execution, id, body) VALUES (?, ?, ?)",
                (name, last + 1, json.dumps(event, default=str)),
            )
        return event

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT body FROM workflow_events WHERE execution = ? ORDER BY id", (name,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def journal(self, name: str) -> StoreJournal:
        return StoreJournal(self, name)


class StoreJournal:
    """An execution's journal in the store, read once and written through."""

    def __init__(self, store: WorkflowStore, name: str) -> None:
        self.store, self.name = store, name
        with store._tx() as conn:
            rows = conn.execute(
                "SELECT key, value FROM workflow_journal WHERE execution = ?", (name,)
            ).fetchall()
        self.values: dict[str, Any] = {key: json.loads(value) for key, value in rows}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def put(self, key: str, value: Any) -> Any:
        text = json.dumps(value, default=str)
        with self.store._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workflow_journal (execution, key, value) VALUES (?, ?, ?)",
                (self.name, key, text),
            )
        self.values[key] = kept = json.loads(text)
        return kept
