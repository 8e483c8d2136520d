"""The engine contract: what an endpoint package declares to the rest of opendms.

Each endpoint package (``opendms.endpoints.postgres``, ``.mysql``, ``.sqlite``, ``.lake``)
has one :class:`Engine` object, ``ENGINE`` in its ``engine`` module, and the registry
(:mod:`opendms.endpoints.registry`) lists those modules, one line each. The engine
layer, assessment, validation and conversion ask the engine object, never a module or
a URL scheme, what an endpoint can do:

* :class:`Capabilities` says which roles it plays (full-load source and target, CDC
  source and target) and which fast paths it offers;
* the ``open_*`` methods make its sources, targets, change sources and appliers, and
  :meth:`Engine.check` is DMS's "test connection";
* :meth:`Engine.same_database` and :meth:`Engine.table_identity` say where its tables
  live, so a task never copies a table onto itself;
* :meth:`Engine.ddl_dialect` and :meth:`Engine.source_catalog` are what schema
  conversion (:mod:`opendms.convert`) writes DDL in and reads a source's schema with.

Optional behaviour of the objects an engine makes is a ``runtime_checkable`` Protocol
below (:class:`RawCopySource`, :class:`DdlTarget`, ...): callers test ``isinstance``,
not attribute names. Engine modules import their drivers lazily, inside the methods, so
that listing the engines costs nothing and a missing extra fails only when it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from opendms.errors import UnknownSchemeError

if TYPE_CHECKING:
    from datetime import datetime

    import pyarrow as pa

    from opendms.changes import Applier, ApplyPlan, ChangeSource
    from opendms.checks import Check
    from opendms.endpoints.apply.policy import OnError
    from opendms.endpoints.base import EndpointURL, Source, Target
    from opendms.endpoints.ddldialect import DdlDialect
    from opendms.endpoints.query.sources import QuerySource, SourceOptions
    from opendms.endpoints.readback import TableRows
    from opendms.endpoints.schemaobjects import SourceCatalog
    from opendms.endpoints.settings import EndpointSettings
    from opendms.mapping.objectmap import ObjectMappingRule
    from opendms.model import ColumnType, Kind, ReadPlan, Table

__all__ = [
    "ApplyOptions",
    "ApplyPathReporting",
    "Capabilities",
    "ChecksumDialect",
    "DdlTarget",
    "Engine",
    "HeartbeatCapture",
    "LagReporting",
    "NamedCapture",
    "NewTableCapture",
    "ObjectMappingTarget",
    "QueryDialect",
    "RawCopySource",
    "RawCopyTarget",
    "RewindableCapture",
    "SameEngineTarget",
    "SqlReadSource",
    "StopFlag",
    "TaggingTarget",
    "TaskStartTarget",
]


@dataclass(frozen=True)
class Capabilities:
    """What an engine can be used for.

    ``source``/``target``: full-load reads and writes; ``cdc_source``: it captures
    changes (:meth:`Engine.change_source`); ``cdc_target``: it applies them
    (:meth:`Engine.applier`); ``raw_copy``: a source and target of this engine can
    pass rows through in the engine's own wire format (:class:`RawCopySource`,
    :class:`RawCopyTarget`); ``ddl_target``: it runs converted DDL
    (:class:`DdlTarget`); ``read_back``: validation can read the target's tables
    back, through :meth:`Engine.table_rows` when the engine gives it, else as a
    :class:`~opendms.endpoints.base.Source`;
    ``parallel_writers``: several writers may load one table at once
    (ParallelLoadThreads); ``parallel_apply``: its applier applies a batch with
    ParallelApplyThreads threads, ParallelApplyBufferSize changes each at a time;
    ``records_changes``: it keeps every change as a record (lake files) rather than
    holding the rows' current state; ``tablespaces``: table-settings tablespace rules
    act on it."""

    source: bool = False
    target: bool = False
    cdc_source: bool = False
    cdc_target: bool = False
    raw_copy: bool = False
    ddl_target: bool = False
    read_back: bool = False
    parallel_writers: bool = False
    parallel_apply: bool = False
    records_changes: bool = False
    tablespaces: bool = False


@dataclass(frozen=True)
class ChecksumDialect:
    """How an engine checksums rows in SQL for validation
    (:mod:`opendms.validate.checksum`): ``quote`` a name, ``expr`` a column as
    comparable text (or None when it cannot), ``part`` a length-prefixed text, ``join``
    the parts, ``hash`` the row text into an integer, ``div`` its integer division."""

    name: str
    quote: Callable[[str], str]
    expr: Callable[[str, ColumnType, ColumnType, pa.DataType | None], str | None]
    part: Callable[[str], str]
    join: Callable[[list[str]], str]
    hash: Callable[[str], str]
    div: str


@dataclass(frozen=True)
class QueryDialect:
    """How a federated query (:mod:`opendms.query`) pushes predicates down to an
    engine's SQL: ``sqlglot`` writes them; ``kinds`` are the column kinds whose
    comparisons with a literal of their class (number, text, boolean) the engine answers
    as DuckDB does, or with more rows (the query keeps every pushed predicate, so a
    source may send extra rows, never fewer); ``null_kinds`` those whose ``IS NULL``
    is true exactly where the value read is NULL."""

    sqlglot: Any
    kinds: frozenset[Kind]
    null_kinds: frozenset[Kind]


@dataclass(frozen=True)
class ApplyOptions:
    """``form``: of the values the changes carry ("pg-text" only PostgreSQL ->
    PostgreSQL); ``same``: source and target are one engine; ``policies``: the apply
    error policies per operation; ``on_error(table, op, key, message)``: a skipped change;
    ``threads``: TargetMetadata.ParallelApplyThreads (0 or 1: one), for an applier that
    writes in parallel (by key, keeping each row's changes in order); ``buffer``:
    TargetMetadata.ParallelApplyBufferSize, the changes each of those threads is given
    at a time."""

    form: str = "python"
    same: bool = False
    policies: dict[str, str] | None = None
    on_error: OnError | None = None
    threads: int = 1
    buffer: int = 100


class Engine:
    """One endpoint engine. Subclasses set the class attributes and override the
    methods of the roles their :attr:`capabilities` claim; the others raise a clear
    error naming the URL."""

    name: str = ""
    """The engine's own name (``postgres``, ``mysql``, ``sqlite``, ``lake``)."""
    title: str = ""
    """How messages name it (``PostgreSQL``, ``MySQL/MariaDB``, ...)."""
    schemes: tuple[str, ...] = ()
    """URL schemes that select it, the first one canonical."""
    capabilities: Capabilities = Capabilities()
    settings: type[EndpointSettings] | None = None
    """The model of the endpoint settings and URL parameters it takes (strict)."""
    default_port: int | None = None

    # -- roles ---------------------------------------------------------------

    def open_source(self, url: EndpointURL, settings: dict[str, Any]) -> Source:
        raise self._cannot(url, "be a source")

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        """A target on ``url``; ``task``: the task it serves, for engines that name what
        they write after it (a NATS stream per task), None outside a task."""
        raise self._cannot(url, "be a target")

    def change_source(self, url: EndpointURL, task: str, settings: dict[str, Any]) -> ChangeSource:
        raise self._cannot(url, "capture changes")

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        raise self._cannot(target.url, "apply changes")

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        """DMS "test connection": a one-line success description, or an EndpointError."""
        raise self._cannot(url, "be checked")

    # -- hooks of assessment ---------------------------------------------------

    def source_checks(
        self, url: EndpointURL, tables: list[Table], cdc: bool, settings: dict[str, Any]
    ) -> list[Check]:
        """The engine's own premigration checks of a source (``cdc``: the task captures
        changes)."""
        return []

    def target_checks(
        self, url: EndpointURL, settings: dict[str, Any], existing: list[str]
    ) -> list[Check]:
        """The engine's own premigration checks of a target (``existing``: the task's
        target tables that are already there)."""
        return []

    def lossy(self, ctype: ColumnType) -> str | None:
        """Why values of canonical type ``ctype`` change form or may not fit in this
        engine's tables (None: they arrive exactly)."""
        return None

    def domains(self, url: EndpointURL) -> dict[str, str]:
        """Source domain types by name -> their base type (engines with domains)."""
        return {}

    # -- hooks of validation ---------------------------------------------------

    folds_names: bool = False
    """Whether the engine compares column names without case (MySQL, SQLite)."""

    def checksum_dialect(self) -> ChecksumDialect | None:
        """How validation checksums rows in this engine's SQL (None: it cannot, rows
        are compared one by one)."""
        return None

    def connect(self, url: EndpointURL) -> Any:
        """A DB-API connection (validation's checksum queries, workflows' SQL)."""
        raise self._cannot(url, "run SQL statements")

    def file_store(self, url: EndpointURL) -> FileStore:
        """Whole files under the endpoint's root (workflows' export and import)."""
        raise self._cannot(url, "hold files")

    def query_dialect(self) -> QueryDialect | None:
        """How federated queries push predicates to this engine's SQL (None: they push
        none); an engine with one makes sources that are :class:`SqlReadSource`."""
        return None

    def query_source(self, url: EndpointURL, options: SourceOptions) -> QuerySource | None:
        """How federated queries read this engine's tables when it has a way of its own
        (a lake's files folded, DynamoDB's ``Query``); None: through its source."""
        return None

    # -- hooks of schema conversion --------------------------------------------

    def ddl_dialect(self) -> DdlDialect | None:
        """How converted DDL is written in this engine's SQL, and how its own SQL is read
        as a conversion source (None: it takes no part in schema conversion)."""
        return None

    def source_catalog(self, url: EndpointURL, schemas: Sequence[str]) -> SourceCatalog | None:
        """Everything schema conversion reads from ``schemas`` of ``url`` (every user
        schema when none is named); None: it cannot be a conversion source. An engine
        with a source catalog has a :meth:`ddl_dialect`, which parses the catalog's SQL."""
        return None

    def table_rows(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> TableRows | None:
        """How validation reads back the tables of a target of this engine: an engine
        that cannot be opened as a source (a lake's files), or one whose targets are
        written in another shape than its source reads (DynamoDB's mapped items); None:
        it cannot (an engine that is a ``source`` is then read back as one). ``task`` as
        for :meth:`open_target`."""
        return None

    @property
    def reads_back_whole(self) -> bool:
        """Validation reads this engine's targets through :meth:`table_rows` (the engine
        overrides it), not as a source."""
        return type(self).table_rows is not Engine.table_rows

    def capture_left_behind(self, task: str) -> list[str]:
        """What change capture for task ``task`` leaves on a source of this engine when
        the task is deleted without its task file to connect with, and how to drop it
        (one warning per item; default: nothing)."""
        return []

    # -- where tables live ----------------------------------------------------

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        """Whether two URLs of this engine can hold the same tables (default: the same
        server and database)."""
        return (*self.server(a), a.database) == (*self.server(b), b.database)

    def table_identity(self, url: EndpointURL, schema: str, name: str) -> tuple[str, ...]:
        """Where table ``schema.name`` lives on ``url``, normalised as the engine
        resolves names (default: ``(schema, name)``)."""
        return (schema, name)

    def server(self, url: EndpointURL) -> tuple[str, int | None]:
        """The server a URL names, with local host names and the default port folded."""
        host = "localhost" if url.host in _LOCAL_HOSTS else url.host.lower()
        return host, url.port or self.default_port

    def _cannot(self, url: EndpointURL, what: str) -> UnknownSchemeError:
        return UnknownSchemeError(str(url), f"{url.scheme}:// endpoints cannot {what}")


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})


# -- optional behaviour of sources, targets and change sources ---------------------------


class FileStore(Protocol):
    """Whole files under an endpoint's root, by key (``folder/name.csv``)."""

    def put(self, key: str, data: bytes) -> str:
        """Write the file (whole, or not at all); its location for messages."""
        ...

    def get(self, key: str) -> bytes: ...


class StopFlag(Protocol):
    """A stop request a long copy checks between chunks (a ``threading.Event``, or a
    ``multiprocessing`` event in another process)."""

    def is_set(self) -> bool: ...


@runtime_checkable
class RawCopySource(Protocol):
    """A source that describes a read for a same-engine target to pull raw."""

    def copy_spec(self, plan: ReadPlan, snapshot: str | None) -> Any: ...


@runtime_checkable
class SqlReadSource(Protocol):
    """A source that reads with one SQL statement, which federated queries show."""

    def read_sql(self, plan: ReadPlan) -> str:
        """The statement :meth:`~opendms.endpoints.base.Source.read` sends for ``plan``
        (its ``where`` predicates and ``limit`` included)."""
        ...


@runtime_checkable
class SameEngineTarget(Protocol):
    """A target that keeps a same-engine source's own column types (the task sets
    ``same_engine`` when the source is of its engine)."""

    same_engine: bool


@runtime_checkable
class RawCopyTarget(SameEngineTarget, Protocol):
    """A target that pulls a same-engine source's rows in the engine's wire format.
    ``created_empty``: this target created ``table`` in this load (so one writer may load
    it in the transaction that empties it: ``fresh`` in ``copy_from``)."""

    def created_empty(self, table: Table) -> bool: ...

    def copy_from(
        self,
        table: Table,
        spec: Any,
        on_rows: Callable[[int], None],
        stop: StopFlag,
        fresh: bool,
    ) -> int: ...


@runtime_checkable
class DdlTarget(Protocol):
    """A target that runs converted DDL statements."""

    def run_ddl(self, table: Table, statements: list[str]) -> None: ...


@runtime_checkable
class TaggingTarget(Protocol):
    """A target whose objects take tags (S3 post-processing ``add-tag`` rules): the
    tag set by (schema, table) of the source table; ``quiet``: the task was told already
    when the tags have no effect (a full-load unit's own target)."""

    def set_object_tags(
        self, tags: dict[tuple[str, str], dict[str, str]], quiet: bool = False
    ) -> None: ...


@runtime_checkable
class ObjectMappingTarget(Protocol):
    """A target whose tables are shaped by ``object-mapping`` rules (DynamoDB items):
    the rule of each target table by (target schema, target name), None where no rule
    matches; ``quiet`` as for :class:`TaggingTarget`."""

    def set_object_mappings(
        self, mappings: dict[tuple[str, str], ObjectMappingRule | None], quiet: bool = False
    ) -> None: ...


@runtime_checkable
class TaskStartTarget(Protocol):
    """A target that may stamp full-load rows with the time its task started (lake
    ``UseTaskStartTimeForFullLoadTimestamp``): a full-load unit's own target is given
    the task's."""

    started: datetime


@runtime_checkable
class RewindableCapture(Protocol):
    """A change source that says whether it can stream from before the earliest
    position it holds (a PostgreSQL slot cannot)."""

    can_rewind: bool


@runtime_checkable
class NamedCapture(Protocol):
    """A change source that names the source object holding its position (a slot)."""

    label: str


@runtime_checkable
class ApplyPathReporting(Protocol):
    """An applier that counts how its batches were applied (PostgreSQL's fast paths)."""

    def apply_paths(self) -> dict[str, float]: ...


@runtime_checkable
class TextValueCapture(Protocol):
    """A change source whose values are the source's own text (``value_form`` other than
    "python"): it turns a column's text into Python form when another engine or the
    mapping rules need that."""

    def text_converter(self, ctype: ColumnType) -> Callable[[str], Any]: ...


@runtime_checkable
class LagReporting(Protocol):
    """A change source that reports how far the source is ahead of it, in bytes."""

    def lag_bytes(self) -> int: ...


@runtime_checkable
class HeartbeatCapture(Protocol):
    """A change source that keeps its position moving while no table changes."""

    def heartbeat(self) -> None: ...


@runtime_checkable
class NewTableCapture(Protocol):
    """A change source that also captures tables created while it runs."""

    def select_new_tables(self, rules: Iterable[tuple[str, str, bool]]) -> None: ...
