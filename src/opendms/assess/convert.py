"""Assessment of a ``convert_schema`` task: its converted DDL is run on the target in
throwaway schemas (a rolled-back transaction on PostgreSQL, dropped databases on MySQL,
memory on SQLite), and what the conversion changes or leaves to do is listed."""

from __future__ import annotations

from opendms.assess.model import Check, passed, problem, skipped
from opendms.config import TaskSpec
from opendms.convert import Status
from opendms.convert.apply import trial
from opendms.convert.base import Conversion, Naming, Phase
from opendms.convert.task import task_conversion
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.schemaobjects import singular
from opendms.errors import OpenDMSError
from opendms.mapping import TablePlan


def convert_checks(spec: TaskSpec, target: EndpointURL, plans: list[TablePlan]) -> list[Check]:
    """``convert-schema-ddl`` (failed: what the target refuses) and
    ``convert-schema-changes`` (warning: what the conversion changes or leaves manual)."""
    try:
        converted = task_conversion(spec, target, plans)
    except OpenDMSError as exc:
        return [
            problem(
                "convert-schema-ddl",
                True,
                f"cannot convert the task's tables: {exc}",
                "fix the cause, or run the task with convert_schema: false",
            )
        ]
    if converted is None:
        why = "convert_schema applies with TargetTablePrepMode DROP_AND_CREATE only"
        return [skipped("convert-schema-ddl", why)]

    def build(naming: Naming | None = None) -> Conversion:
        out = converted.generate(naming)  # the task adds no foreign keys
        out.statements = [s for s in out.statements if s.phase is not Phase.FOREIGN_KEYS]
        return out

    conversion = build()
    try:
        trial(conversion, build, converted.naming, converted.catalog.schemas, str(target.raw))
    except OpenDMSError as exc:
        return [
            problem(
                "convert-schema-ddl",
                False,
                f"the converted DDL could not be tried: {exc}",
                "grant the task's user CREATE on the target (a schema, or a database on MySQL) "
                "so that assess can try the DDL, or check it with opendms convert --check",
            ),
            _changes(conversion),
        ]
    return [_refused(conversion), _changes(conversion)]


def _refused(conversion: Conversion) -> Check:
    failed = [i for i in conversion.items if i.status is Status.FAILED]
    if not failed:
        count = sum(1 for i in conversion.items if i.kind == "tables")
        return passed(
            "convert-schema-ddl",
            f"the converted DDL of {count} table(s) runs on the target (tried in throwaway "
            "schemas)",
        )
    return problem(
        "convert-schema-ddl",
        True,
        f"the target refuses the converted DDL of {len(failed)} object(s): "
        f"{singular(failed[0].kind)} {failed[0].qualified}: {failed[0].messages[-1]}",
        "change the source table or the task's rules (e.g. a change-data-type rule), or "
        "create the table on the target by hand and run with convert_schema: false",
        tuple(f"{singular(i.kind)} {i.qualified}: {i.messages[-1]}" for i in failed),
    )


def _changes(conversion: Conversion) -> Check:
    notes = tuple(
        f"{singular(i.kind)} {i.qualified}: {message}"
        for i in conversion.items
        if i.status in (Status.WARNING, Status.MANUAL)
        for message in i.messages
    )
    if not notes:
        return passed("convert-schema-changes", "every object converts without a change")
    return problem(
        "convert-schema-changes",
        False,
        f"{len(notes)} change(s) the schema conversion makes or leaves to do by hand",
        "check each listed object (opendms convert writes the same as a report)",
        notes,
    )
