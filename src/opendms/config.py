"""Typed task definitions: the YAML task file and the DMS task settings.

Validation errors carry the file and the JSON path of the bad field. Unknown
keys are rejected, never ignored.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opendms.errors import ConfigError, UnknownSchemeError
from opendms.handlersettings import HandlerSpec, duplicate_label
from opendms.tasksettings import DataErrorPolicyKind, ErrorBehaviorSection, TaskSettings

__all__ = ["DataErrorPolicyKind", "ErrorBehaviorSection", "TaskSettings", "TaskSpec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class MigrationType(enum.StrEnum):
    FULL_LOAD = "full-load"
    CDC = "cdc"
    FULL_LOAD_AND_CDC = "full-load-and-cdc"


class ScheduleType(enum.StrEnum):
    """What a scheduled start of a task does (DMS StartReplicationTaskType)."""

    RELOAD_TARGET = "reload-target"
    START_REPLICATION = "start-replication"


class EndpointSpec(_Strict):
    """An endpoint: a URL plus optional settings (a dict or ``k=v;k=v``)."""

    url: str
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("settings", mode="before")
    @classmethod
    def _parse_eca(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_extra_connection_attributes(value)
        return value


class TaskSpec(_Strict):
    """One migration task as written in a YAML task file."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,254}$")
    source: EndpointSpec
    target: EndpointSpec
    migration_type: MigrationType = MigrationType.FULL_LOAD
    table_mappings: Any = None
    task_settings: TaskSettings = TaskSettings()
    state: str | None = None
    # DMS start-replication parameters: where a ``cdc`` task starts reading ("now", an
    # LSN, a binlog file:pos or GTID) and where any CDC task stops (a position, or
    # ``commit_time:2026-01-31T12:00:00`` / ``server_time:...`` in UTC).
    cdc_start_position: str | None = Field(None, alias="CdcStartPosition")
    cdc_stop_position: str | None = Field(None, alias="CdcStopPosition")
    # DROP_AND_CREATE creates target tables from ``opendms convert``'s DDL (defaults,
    # unique and check constraints, indexes, comments, enums) instead of columns only.
    convert_schema: bool = False
    # ``opendms serve`` starts the task on this cron schedule (five fields, server's
    # local time): ``reload-target`` (default) a fresh full load each time (a nightly
    # refresh), ``start-replication`` its first start, then a resume.
    schedule: str | None = None
    schedule_type: ScheduleType = ScheduleType.RELOAD_TARGET
    # Python functions that receive the task's change records (docs/handlers.md).
    handlers: tuple[HandlerSpec, ...] = ()

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter  # type: ignore[import-untyped]

        text = " ".join(value.split())
        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError(
                f"{value!r} is not a cron expression (five fields: minute hour "
                "day-of-month month day-of-week, e.g. '0 2 * * *')"
            )
        return text

    @field_validator("source", "target", mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


def parse_extra_connection_attributes(text: str) -> dict[str, str]:
    """Parse DMS extra connection attributes ``k=v;k=v`` (keys keep their case)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"extra connection attribute {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def json_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a JSON path (``$.a.b[2]``)."""
    path = "$"
    for item in loc:
        path += f"[{item}]" if isinstance(item, int) else f".{item}"
    return path


def raise_config_error(exc: ValidationError, where: str) -> None:
    """Turn the first pydantic error into a ConfigError with its JSON path."""
    err = exc.errors()[0]
    loc = tuple(x for x in err["loc"] if not str(x).startswith("function-"))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    raise ConfigError(msg, where=where, path=json_path(loc)) from None


def load_task_file(path: str | Path) -> TaskSpec:
    """Read and validate a task YAML (or JSON) file."""
    file = Path(path)
    where = str(file)
    text = _read_text(file, where, "")
    try:
        data = yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", where=where) from exc
    except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
        reason = str(exc).split(";")[0]
        raise ConfigError(f"YAML that cannot be read: {reason}", where=where) from None
    if not isinstance(data, dict):
        raise ConfigError("a task file must hold a mapping", where=where, path="$")
    return task_from_dict(data, where=where, base=file.parent)


def task_from_dict(data: dict[str, Any], where: str, base: Path | None = None) -> TaskSpec:
    """Validate a task given as a dict; resolves table_mappings file references."""
    data = dict(data)
    mappings = data.get("table_mappings")
    if isinstance(mappings, str) and not mappings.lstrip().startswith(("{", "[")):
        data["table_mappings"] = _read_mapping_file(mappings, base, where)
    if isinstance(data.get("task_settings"), str):
        data["task_settings"] = _read_settings(data["task_settings"], base, where)
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise_config_error(exc, where)
        raise AssertionError("unreachable") from None
    _check_mappings(spec, where)
    _check_schemes(spec, where)
    _check_lobs(spec, where)
    _check_handlers(spec, where)
    return spec


def _check_handlers(spec: TaskSpec, where: str) -> None:
    """Handlers receive change records: only a CDC task has them; names are unique."""
    if spec.handlers and spec.migration_type is MigrationType.FULL_LOAD:
        raise ConfigError(
            "handlers receive change records: set migration_type to cdc or full-load-and-cdc",
            where=where,
            path="$.handlers",
        )
    index = duplicate_label(list(spec.handlers))
    if index is not None:
        label = spec.handlers[index].label
        raise ConfigError(
            f"a second handler named {label!r}: give each handler its own name",
            where=where,
            path=f"$.handlers[{index}].name",
        )


def _check_lobs(spec: TaskSpec, where: str) -> None:
    """The LOB settings make sense (a LobMaxSize of 0 in limited LOB mode does not)."""
    from opendms.mapping.lobs import lob_policy

    lob_policy(spec.task_settings.TargetMetadata, where=where)


def _check_schemes(spec: TaskSpec, where: str) -> None:
    """Endpoint URLs parse and name a known engine (no connection is made)."""
    from opendms.endpoints import engine_for
    from opendms.endpoints.base import EndpointURL

    for role in ("source", "target"):
        endpoint: EndpointSpec = getattr(spec, role)
        try:
            engine_for(EndpointURL.parse(endpoint.url), role)
        except ConfigError as exc:
            raise ConfigError(exc.message, where=where, path=f"$.{role}") from None
        except UnknownSchemeError as exc:
            raise ConfigError(exc.message, where=where, path=f"$.{role}.url") from None


def _check_mappings(spec: TaskSpec, where: str) -> None:
    """Table mappings are checked with the file, before any connection: a typo is one
    ConfigError with its JSON path (``where: table_mappings: $.rules[0]...``)."""
    from opendms.mapping import parse_table_mappings

    if spec.table_mappings is not None:
        parse_table_mappings(spec.table_mappings, where=f"{where}: table_mappings")


def _read_text(file: Path, where: str, path: str) -> str:
    """A UTF-8 text file, or a ConfigError saying why it cannot be read."""
    what = "task file" if not path else f"file {str(file)!r}"
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", where=where, path=path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8",
            where=where,
            path=path,
        ) from None


def _read_mapping_file(name: str, base: Path | None, where: str) -> Any:
    """A table-mapping file, parsed strictly (a key given twice is an error, as inline)."""
    from opendms.mapping._reader import load_document

    file = _resolve(name, base)
    text = _read_text(file, where, "$.table_mappings")
    try:
        return load_document(text, where="")
    except ConfigError as exc:
        message = f"table mappings file {str(file)!r}: {exc.message}"
        raise ConfigError(message, where=where, path="$.table_mappings") from None


def _read_settings(value: str, base: Path | None, where: str) -> Any:
    """``task_settings`` given as JSON text or as the name of a JSON or YAML file (a DMS
    task-settings document as the DMS console or CLI saves it)."""
    if value.lstrip().startswith("{"):
        return _parse_settings(value, where, "inline JSON")
    file = _resolve(value, base)
    text = _read_text(file, where, "$.task_settings")
    return _parse_settings(text, where, f"task settings file {str(file)!r}")


def _parse_settings(text: str, where: str, what: str) -> Any:
    try:
        data = yaml.load(text, Loader=StrictLoader)  # JSON is YAML; duplicate keys fail
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid JSON or YAML: {exc}", where=where) from None
    except (ValueError, RecursionError) as exc:
        reason = str(exc).split(";")[0]
        raise ConfigError(f"{what} cannot be read: {reason}", where=where) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must hold an object", where=where, path="$.task_settings")
    return data


def _resolve(name: str, base: Path | None) -> Path:
    file = Path(name)
    if not file.is_absolute() and base is not None:
        file = base / file
    return file


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the
    last silently), so a task file and the JSON documents in it read as strictly as
    the table-mapping reader reads JSON."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given more than once (line {mark.line + 1})", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
