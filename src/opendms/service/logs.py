"""Per-task log files in the style of AWS DMS task logs.

A task's process writes ``<state dir>/logs/<task>.log`` (rotated by size: 10 MiB, five
old files ``<task>.log.1`` .. ``.5``), one record a line::

    2026-12-04T10:00:00 [SOURCE_CAPTURE  ]I:  resuming task orders at 0/16B3748

with the time in UTC, the component (from the opendms logger that wrote it: see
:data:`COMPONENTS`), the level letter (E, W, I, D) and the message; a traceback follows
its record on lines of its own. Passwords are scrubbed: URLs show ``user:***@``, and
the task's own endpoint passwords never appear.

:func:`task_log` sets this up for one run; :func:`read_task_log` reads the records back
(newest last), filtered by level, component and text, for the API and the console.
The process's raw console output (tracebacks it could not log, ``kill -USR1`` stack
dumps) goes to ``<task>.out`` beside it.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from opendms.errors import ConfigError, StopRequested
from opendms.state.private import FILE_MODE, private_dir, private_file

if TYPE_CHECKING:
    from opendms.config import TaskSpec

__all__ = [
    "COMPONENTS",
    "LEVELS",
    "LogLine",
    "Scrubber",
    "TaskLogFormatter",
    "append_line",
    "component_of",
    "console_path",
    "log_path",
    "parse_lines",
    "read_task_log",
    "tail_reason",
    "task_log",
]

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
WIDTH = 16  # DMS pads the component name to this width
# opendms logger names (longest prefix first) -> DMS log components
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("opendms.lake.cdc", "TARGET_APPLY"),
    ("opendms.sqlite.capture", "SOURCE_CAPTURE"),
    ("opendms.postgres.ddl", "SOURCE_CAPTURE"),
    ("opendms.fullload", "TARGET_LOAD"),
    ("opendms.lake", "TARGET_LOAD"),
    ("opendms.isolate", "TARGET_LOAD"),
    ("opendms.transform", "SOURCE_UNLOAD"),
    ("opendms.endpoints", "SOURCE_UNLOAD"),
    ("opendms.replicate", "SOURCE_CAPTURE"),
    ("opendms.follow", "SOURCE_CAPTURE"),
    ("opendms.mysql", "TARGET_APPLY"),
    ("opendms.apply", "TARGET_APPLY"),
    ("opendms.cdc", "TARGET_APPLY"),
    ("opendms.validate", "VALIDATOR"),
)
DEFAULT_COMPONENT = "TASK_MANAGER"
LEVELS = {"E": logging.ERROR, "W": logging.WARNING, "I": logging.INFO, "D": logging.DEBUG}
_LEVEL_NAMES = {"ERROR": "E", "WARNING": "W", "WARN": "W", "INFO": "I", "DEBUG": "D"}
_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) \[([A-Z_]+) *\]([EWID]):  (.*)$")
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")
_KEY_VALUE = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)[^\s;&,'\"]+")


def log_path(state: Path, task: str) -> Path:
    """The log of ``task`` for the state store file ``state``."""
    return state.parent / "logs" / f"{task}.log"


def console_path(state: Path, task: str) -> Path:
    """Where a background task's process writes its raw stdout and stderr."""
    return state.parent / "logs" / f"{task}.out"


def component_of(logger: str) -> str:
    """The DMS component of the opendms logger named ``logger``."""
    for prefix, component in COMPONENTS:
        if logger == prefix or logger.startswith(prefix + "."):
            return component
    return DEFAULT_COMPONENT


class Scrubber:
    """Masks passwords in text: in URLs, in ``password=...`` pairs, and the known
    ``secrets`` wherever they appear."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _URL_PASSWORD.sub(r"\1:***@", text)
        return _KEY_VALUE.sub(r"\1\2***", text)

    @classmethod
    def of_spec(cls, spec: TaskSpec) -> Scrubber:
        """A scrubber for the passwords and secret settings of ``spec``'s endpoints."""
        found: list[str] = []
        for end in (spec.source, spec.target):
            password = urlsplit(end.url).password
            if password:
                found += [password, unquote(password)]
            for key, value in end.settings.items():
                if isinstance(value, str) and any(
                    w in key.lower() for w in ("password", "secret", "token")
                ):
                    found.append(value)
        return cls(found)


class TaskLogFormatter(logging.Formatter):
    """``<UTC time> [<COMPONENT>]<L>:  <message>``, secrets scrubbed."""

    def __init__(self, scrub: Scrubber | None = None) -> None:
        super().__init__()
        self.scrub = scrub or Scrubber()

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        letter = _letter(record.levelno)
        component = component_of(record.name).ljust(WIDTH)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return f"{when} [{component}]{letter}:  {self.scrub(text)}"


def _letter(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "E"
    if levelno >= logging.WARNING:
        return "W"
    if levelno >= logging.INFO:
        return "I"
    return "D"


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler whose files are readable by their owner only."""

    def _open(self):  # type: ignore[no-untyped-def]  # typeshed: returns a TextIOWrapper
        private_file(Path(self.baseFilename))
        os.chmod(self.baseFilename, FILE_MODE)
        return super()._open()


@contextlib.contextmanager
def task_log(state: Path, spec: TaskSpec, *, level: int = logging.INFO) -> Iterator[Path]:
    """Write the ``opendms`` loggers' records of this process (``level`` and above) to
    the task's log while the block runs; its first and last lines say the task started
    and how it ended (read from the store at ``state``). Yields the log's path."""
    path = log_path(state, spec.name)
    private_dir(path.parent)
    handler = _PrivateRotatingHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS)
    handler.setFormatter(TaskLogFormatter(Scrubber.of_spec(spec)))
    handler.setLevel(level)
    root = logging.getLogger("opendms")
    before, shown, propagate = root.level, root.getEffectiveLevel(), root.propagate
    forward = _Forward(shown)  # what reached the process's own handlers still does
    root.addHandler(handler)
    root.addHandler(forward)
    root.propagate = False
    root.setLevel(min(level, shown))
    manager = logging.getLogger("opendms.task")
    manager.info(
        "task %s starting (%s, pid %d): source %s, target %s",
        spec.name,
        spec.migration_type.value,
        os.getpid(),
        spec.source.url,
        spec.target.url,
    )
    try:
        yield path
    except StopRequested:
        _log_end(state, spec.name, manager)
        raise
    except BaseException as exc:
        manager.error("task %s ended: %s", spec.name, _describe(exc))
        raise
    else:
        _log_end(state, spec.name, manager)
    finally:
        root.removeHandler(handler)
        root.removeHandler(forward)
        root.propagate = propagate
        root.setLevel(before)
        handler.close()


class _Forward(logging.Handler):
    """Hands the records at ``level`` and above to the root logger's handlers (stderr,
    a test's capture), as if the ``opendms`` logger had kept its level."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.level:
            logging.getLogger().handle(record)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) or type(exc).__name__


def _log_end(state: Path, name: str, log: logging.Logger) -> None:
    """The run's end as the store recorded it (failed: an E line)."""
    from opendms.state import StateStore, TaskStatus

    store = StateStore(state)
    try:
        record = store.task(name)
    finally:
        store.close()
    if record is None:
        return
    how = record.status.value + (f" ({record.stop_reason})" if record.stop_reason else "")
    if record.status is TaskStatus.FAILED:
        log.error("task %s ended: %s", name, how)
    else:
        log.info("task %s ended: %s", name, how)


@dataclass(frozen=True)
class LogLine:
    """One record of a task log (``message`` holds its continuation lines too)."""

    time: str
    component: str
    level: str  # E, W, I or D
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "time": self.time,
            "component": self.component,
            "level": self.level,
            "message": self.message,
        }


def parse_lines(lines: Iterable[str]) -> list[LogLine]:
    """The records of task-log lines; a line that does not start a record continues the
    one before it (a traceback), and lines before the first record are dropped."""
    out: list[LogLine] = []
    for raw in lines:
        line = raw.rstrip("\n")
        match = _LINE.match(line)
        if match:
            out.append(LogLine(match[1], match[2], match[3], match[4]))
        elif out and line:
            last = out[-1]
            out[-1] = LogLine(last.time, last.component, last.level, f"{last.message}\n{line}")
    return out


def _level_floor(level: str | None) -> int:
    if level is None or not level.strip():
        return logging.NOTSET
    key = level.strip().upper()
    letter = key if key in LEVELS else _LEVEL_NAMES.get(key)
    if letter is None:
        raise ConfigError(
            f"log level {level!r} is not one of E, W, I, D (error, warning, info, debug)"
        )
    return LEVELS[letter]


def read_task_log(
    state: Path,
    task: str,
    *,
    level: str | None = None,
    search: str | None = None,
    component: str | None = None,
    limit: int = 500,
) -> list[LogLine]:
    """The last ``limit`` records of ``task``'s log (its rotated files included), newest
    last. ``level``: that level and more severe (E, W, I, D or error, warning, info,
    debug); ``search``: records containing the text (any case); ``component``: one
    component (SOURCE_CAPTURE, ...). No log yet: no records."""
    if limit < 1:
        raise ConfigError(f"log limit {limit} must be at least 1")
    floor = _level_floor(level)
    want = component.strip().upper() if component else None
    needle = search.lower() if search else None
    path = log_path(state, task)
    files = [path.with_name(f"{path.name}.{i}") for i in range(BACKUPS, 0, -1)] + [path]
    found: list[LogLine] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        for line in parse_lines(text.splitlines()):
            if LEVELS[line.level] < floor or (want is not None and line.component != want):
                continue
            if needle is not None and needle not in line.message.lower():
                continue
            found.append(line)
    return found[-limit:]


def tail_reason(state: Path, task: str, since: str | None = None, lines: int = 3) -> str:
    """Why a task's process ended, from its logs: its last error records (written at or
    after ``since``, an ISO time: the run's start), else the last lines of its console
    output ("" when neither says anything)."""
    errors = read_task_log(state, task, level="E", limit=lines)
    if since:
        errors = [e for e in errors if e.time >= since[:19]]
    if errors:
        return " | ".join(e.message.splitlines()[0] for e in errors)
    try:
        text = console_path(state, task).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    tail = [t for t in text.strip().splitlines() if t.strip()][-lines:]
    return Scrubber()(" | ".join(tail))


def append_line(state: Path, task: str, level: str, message: str) -> None:
    """Add one TASK_MANAGER record to ``task``'s log from outside its process (the
    server's supervisor and scheduler: what they did to the task)."""
    record = logging.LogRecord("opendms.task", LEVELS[level], __file__, 0, message, None, None)
    path = log_path(state, task)
    private_dir(path.parent)
    private_file(path)
    with path.open("a", encoding="utf-8") as out:
        out.write(TaskLogFormatter().format(record) + "\n")
