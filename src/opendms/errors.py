"""The one exception root of opendms.

Every error a user can see derives from :class:`OpenDMSError`. The tree::

    OpenDMSError
    ├── ConfigError            bad task file, table mapping or setting (fatal)
    ├── MissingExtraError      an optional driver is not installed (fatal)
    ├── EndpointError          something about one endpoint
    │   ├── UnknownSchemeError     URL scheme nobody registered
    │   ├── ConnectError           host unreachable / refused / connection lost (retryable)
    │   ├── ResourceError          the server is out of disk, memory or connections (retryable)
    │   ├── ConflictError          a deadlock, lock timeout or serialization failure (retryable)
    │   ├── AuthenticationError    wrong user or password
    │   ├── DatabaseMissingError   database, bucket or directory does not exist
    │   └── PrivilegeError         connected, but not allowed to do the job
    ├── DataError              a value cannot be represented on the target (one record)
    ├── TableError             one table's data or metadata cannot be processed
    ├── NotComparableError     a table cannot be validated (its columns differ, ...)
    ├── TaskError              the task cannot go on (a table failed, no tables captured)
    │   ├── TaskLockedError        another process is running the task
    │   └── DecodeError            a change-stream message (pgoutput, binlog) is malformed
    └── StopRequested          the task was asked to stop (raised inside workers)

Command-line exit codes follow the tree (:func:`exit_code`): 2 for a usage or
configuration error (ConfigError, UnknownSchemeError, MissingExtraError), 1 for
everything else (the task, an endpoint or the data failed), 0 when done.

``retryable`` is part of the type: only errors that say so are retried; unknown
exceptions are fatal. Driver exceptions are translated once, at the endpoint,
with ``raise ... from exc``.
"""

from __future__ import annotations


class OpenDMSError(Exception):
    """Root of every error opendms raises on purpose."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(OpenDMSError):
    """A task file, table mapping or setting is malformed.

    ``where`` names the file and ``path`` the JSON path of the bad field.
    """

    def __init__(self, message: str, *, where: str = "", path: str = "") -> None:
        self.where = where
        self.path = path
        prefix = ": ".join(p for p in (where, path) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class MissingExtraError(OpenDMSError):
    """An optional dependency is missing; the message names the pip extra."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"the Python module {module!r} is not installed; "
            f"install it with: pip install 'opendms[{extra}]'"
        )


class EndpointError(OpenDMSError):
    """Something went wrong talking to one endpoint (named in the message)."""

    def __init__(self, endpoint: str, message: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: {message}")


class UnknownSchemeError(EndpointError):
    """The URL scheme is not one opendms knows."""


class ConnectError(EndpointError):
    """The server could not be reached."""

    retryable = True


class ResourceError(EndpointError):
    """The server ran out of something (disk space, memory, connections) for now."""

    retryable = True


class ConflictError(EndpointError):
    """The server rolled the transaction back for a conflict with another session (a
    deadlock, a lock wait that timed out, a serialization failure): running it again
    may succeed."""

    retryable = True


class AuthenticationError(EndpointError):
    """The server refused the credentials."""


class DatabaseMissingError(EndpointError):
    """The database, bucket or directory does not exist."""


class PrivilegeError(EndpointError):
    """The user lacks a privilege the task needs."""


class DataError(OpenDMSError):
    """A value cannot be represented on the target without altering it."""

    def __init__(self, table: str, message: str, row: str = "", column: str = "") -> None:
        self.table = table
        self.row = row
        self.column = column
        detail = f" (row {row})" if row else ""
        super().__init__(f"table {table}: {message}{detail}")


class TableError(OpenDMSError):
    """One table cannot be processed (its target table or column is missing, a statement
    on it is refused): not about one record. ``TableErrorPolicy`` decides."""

    def __init__(self, table: str, message: str) -> None:
        self.table = table
        super().__init__(f"table {table}: {message}" if table else message)


class NotComparableError(OpenDMSError):
    """A table cannot be validated: its source and target columns differ, or its rows
    cannot be matched (the message says which and why)."""

    def __init__(self, table: str, message: str) -> None:
        self.table = table
        super().__init__(f"table {table}: {message}")


class TaskError(OpenDMSError):
    """The task cannot go on."""


class TaskLockedError(TaskError):
    """Another live process holds the task's run lock (one run of a task at a time)."""


class DecodeError(TaskError):
    """A message of a change stream (a pgoutput message, a binlog event) is malformed:
    truncated, inconsistent with what came before, or not the format at all."""


class StopRequested(OpenDMSError):  # noqa: N818 - a stop signal, not a failure
    """The task was asked to stop; workers unwind with this."""

    def __init__(self) -> None:
        super().__init__("stop requested")


def exit_code(exc: OpenDMSError) -> int:
    """The command-line exit code of an error: 2 usage/configuration, 1 anything else."""
    return 2 if isinstance(exc, ConfigError | UnknownSchemeError | MissingExtraError) else 1
