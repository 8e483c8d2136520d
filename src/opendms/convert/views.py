"""Views (in dependency order), materialized views and the code objects listed as manual."""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from opendms.convert.advice import code_advice
from opendms.convert.base import GeneratorBase, Phase
from opendms.convert.sqlx import Translation, translate
from opendms.endpoints.ddldialect import Comments, DdlDialect
from opendms.endpoints.schemaobjects import CodeObject, Item, ViewDef

_STRING_AGGREGATES = ("group_concat", "string_agg", "listagg")


def _references(view: ViewDef, source: DdlDialect) -> set[tuple[str, str]]:
    """The (schema, name) of every table or view the view's query reads."""
    try:
        tree = sqlglot.parse_one(view.definition, read=source.sqlglot)
    except SqlglotError:
        return set()
    return {(t.db or view.schema, t.name) for t in tree.find_all(exp.Table)}


def dependency_order(views: list[ViewDef], source: DdlDialect) -> list[ViewDef]:
    """``views`` ordered so that each comes after the views it reads (else source order)."""
    by_key = {(v.schema, v.name): v for v in views}
    out: list[ViewDef] = []
    seen: set[tuple[str, str]] = set()

    def visit(view: ViewDef) -> None:
        key = (view.schema, view.name)
        if key in seen:
            return
        seen.add(key)
        for ref in sorted(_references(view, source)):
            if ref in by_key:
                visit(by_key[ref])
        out.append(view)

    for view in views:
        visit(view)
    return out


class ViewRules(GeneratorBase):
    """Views, materialized views and code objects."""

    def views(self) -> None:
        blocked: dict[tuple[str, str], str] = {}  # views not created -> why
        for view in dependency_order(self.catalog.views, self.source):
            self.view(view, blocked)

    def view(self, view: ViewDef, blocked: dict[tuple[str, str], str]) -> None:
        item = self.item("views", view.schema, view.name)
        item.source_sql = view.definition
        why = self.not_created(view, item, blocked)
        if why:
            blocked[(view.schema, view.name)] = why
            return
        result = self.translate_view(view)
        if result.error:
            item.manual(
                f"the view could not be translated: {result.error}",
                "Rewrite the view's query in the target dialect.",
            )
            blocked[(view.schema, view.name)] = "it could not be translated"
            return
        udf = self.user_functions(view, result)
        if udf:
            self.calls_user_function(view, item, result, udf)
            blocked[(view.schema, view.name)] = f"it calls {udf[0].name}()"
            return
        for warning in result.warnings:
            item.warn(warning)
        if view.materialized and not self.target.materialized_views:
            self.materialized_elsewhere(view, item, result.sql)
            blocked[(view.schema, view.name)] = f"{self.target.name} has no materialized views"
            return
        self.create_view(view, item, result.sql)

    def translate_view(self, view: ViewDef) -> Translation:
        def rename(node: exp.Table) -> None:
            self.rename_table(node, view.schema)

        return translate(view.definition, self.source, self.target, rename)

    def not_created(self, view: ViewDef, item: Item, blocked: dict[tuple[str, str], str]) -> str:
        """Why ``view`` cannot be created: a view it reads is not created (or "")."""
        for ref in sorted(_references(view, self.source)):
            if ref in blocked:
                item.manual(
                    f"reads the view {ref[0]}.{ref[1]}, which is not created ({blocked[ref]})",
                    "Convert that view first, then create this one.",
                )
                return f"it reads {ref[0]}.{ref[1]}"
        return ""

    def create_view(self, view: ViewDef, item: Item, select: str) -> None:
        kind = "MATERIALIZED VIEW" if view.materialized else "VIEW"
        if view.materialized:
            item.warn(
                "materialized view: created from the tables as they are (empty before the "
                "load); run REFRESH MATERIALIZED VIEW after loading them"
            )
        self.emit(Phase.VIEWS, f"CREATE {kind} {self.view_name(view)} AS {select}", None, item)
        if view.comment and self.target.comments is Comments.STATEMENTS:
            text = self.target.string(view.comment)
            sql = f"COMMENT ON {kind} {self.view_name(view)} IS {text}"
            self.emit(Phase.COMMENTS, sql, None, item)
        elif view.comment:
            item.warn(f"view comment dropped ({self.target.name} has no view comments)")

    def materialized_elsewhere(self, view: ViewDef, item: Item, select: str) -> None:
        item.manual(
            f"materialized view: {self.target.name} has no materialized views",
            "Create a table from the query (in schema.sql, commented out) and refresh it on a "
            "schedule, or create it as a plain view.",
        )
        self.manual_note(item, f"materialized view {view.schema}.{view.name}", view, select)

    def user_functions(self, view: ViewDef, result: Translation) -> list[CodeObject]:
        """The source's own functions and aggregates the query calls."""
        return [
            code
            for code in self.catalog.code
            if code.kind == "functions"
            and code.name.lower() in result.functions
            and re.search(rf"(?<![\w$]){re.escape(code.name)}\s*\(", view.definition, re.I)
        ]

    def calls_user_function(
        self, view: ViewDef, item: Item, result: Translation, udfs: list[CodeObject]
    ) -> None:
        messages = [self.udf_message(code, result) for code in udfs]
        item.messages.extend(messages[1:])
        item.manual(
            messages[0],
            "Create the function on the target (or rewrite the call with a built-in, e.g. "
            "GROUP_CONCAT(x SEPARATOR ', ') / string_agg(x, ', ')), then create the view; "
            "the query is in schema.sql, commented out.",
        )
        select = view.definition if self.target is self.source else result.sql
        self.manual_note(item, f"view {view.schema}.{view.name}", view, select)

    def udf_message(self, code: CodeObject, result: Translation) -> str:
        what = "aggregate" if code.aggregate else "function"
        message = f"calls {code.name}(), a user-defined {what} of the source that is not converted"
        name = code.name.lower()
        if name in {u.lower() for u in result.unknown} or not self.target.builtins_shadow:
            return message
        message += f"; on {self.target.name} the name is a built-in with other results"
        if name in _STRING_AGGREGATES:
            message += " (its separator is ',', the source aggregate's may differ)"
        return message

    def manual_note(self, item: Item, what: str, view: ViewDef, select: str) -> None:
        sql = f"CREATE VIEW {self.view_name(view)} AS {select}"
        commented = "\n".join(f"-- {line}" for line in sql.splitlines())
        self.emit(Phase.MANUAL, f"-- MANUAL: {what}\n{commented}", None, item)

    def view_name(self, view: ViewDef) -> str:
        if not self.target.schema_keyword:
            return self.q(view.name)
        return self.qualify(view.schema, view.name)

    def rename_table(self, node: exp.Table, default_schema: str) -> None:
        """Points a table reference of a view at the converted table."""
        if not node.db and node.name in {c.alias_or_name for c in node.root().find_all(exp.CTE)}:
            return  # a WITH query's name
        schema = node.db or default_schema
        if node.args.get("catalog") is not None:
            node.set("catalog", None)
        if schema not in self.catalog.schemas and node.db:
            return  # a table outside the conversion: left as written
        target_schema, target_name = self.target_table(schema, node.name)
        if target_name != node.name:
            node.set("this", exp.to_identifier(target_name))
        if not self.target.schema_keyword or not target_schema:
            node.set("db", None)
        else:
            node.set("db", exp.to_identifier(target_schema))

    def code(self, code: CodeObject) -> None:
        name = f"{code.table}.{code.name}" if code.table else code.name
        item = self.item(code.kind, code.schema, name)
        item.source_sql = code.definition
        what = "aggregate" if code.aggregate else code.kind[:-1]
        where = f" on table {code.table}" if code.table else ""
        item.manual(f"{what}{where} needs manual conversion", code_advice(code.kind))
        commented = "\n".join(f"-- {line}" for line in code.definition.splitlines())
        header = f"-- MANUAL: {what} {code.schema}.{name}"
        self.emit(Phase.MANUAL, f"{header}\n{commented}", None, item)
