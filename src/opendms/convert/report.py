"""The conversion report: ``report.json`` and a self-contained ``report.html``."""

from __future__ import annotations

import html
import json
from typing import Any

from opendms.convert.ddl import Conversion, counts
from opendms.endpoints.schemaobjects import KINDS, Item, Status, singular


def report_data(conversion: Conversion, source: str, schemas: list[str]) -> dict[str, Any]:
    """The JSON-ready report."""
    summary = counts(conversion.items)
    totals = {s.value: sum(c[s.value] for c in summary.values()) for s in Status}
    return {
        "source": source,
        "source_engine": conversion.source,
        "target_engine": conversion.target,
        "schemas": schemas,
        "summary": summary,
        "totals": totals,
        "items": [_item(i) for i in conversion.items],
    }


def _item(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": item.kind,
        "schema": item.schema,
        "name": item.name,
        "status": item.status.value,
        "messages": item.messages,
    }
    if item.remediation:
        out["remediation"] = item.remediation
    if item.sql:
        out["sql"] = item.sql
    if item.source_sql:
        out["source_sql"] = item.source_sql
    return out


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #bbb;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#eee}
.converted{color:#176b2c}.warning{color:#8a5a00}.manual{color:#a11}.failed{color:#a11;font-weight:bold}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;max-height:20em;overflow:auto}
li{margin-bottom:1em}
"""

_CLASS = {
    Status.CONVERTED.value: "converted",
    Status.WARNING.value: "warning",
    Status.MANUAL.value: "manual",
    Status.FAILED.value: "failed",
}
_URGENCY = {Status.FAILED.value: 0, Status.MANUAL.value: 1}


def to_html(data: dict[str, Any]) -> str:
    """A self-contained HTML page: summary table, then the action items."""
    e = html.escape
    title = f"opendms conversion: {data['source_engine']} to {data['target_engine']}"
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1>",
        f"<p>Source: <code>{e(data['source'])}</code>; schemas: "
        f"{e(', '.join(data['schemas']))}</p>",
        _summary_html(data),
        _actions_html(data),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _summary_html(data: dict[str, Any]) -> str:
    statuses = [s.value for s in Status]
    head = "".join(f"<th class='{_CLASS[s]}'>{html.escape(s)}</th>" for s in statuses)
    rows = []
    for kind in KINDS:
        cells = "".join(f"<td>{data['summary'][kind][s]}</td>" for s in statuses)
        rows.append(f"<tr><td>{kind}</td>{cells}</tr>")
    total = "".join(f"<td><b>{data['totals'][s]}</b></td>" for s in statuses)
    rows.append(f"<tr><td><b>total</b></td>{total}</tr>")
    return f"<h2>Summary</h2><table><tr><th>object</th>{head}</tr>{''.join(rows)}</table>"


def _actions_html(data: dict[str, Any]) -> str:
    actions = [i for i in data["items"] if i["status"] != Status.CONVERTED.value]
    if not actions:
        return "<h2>Action items</h2><p>None: every object was converted automatically.</p>"
    actions.sort(key=lambda i: (_URGENCY.get(i["status"], 2), i["kind"], i["name"]))
    return "<h2>Action items</h2><ol>" + "".join(map(_action_html, actions)) + "</ol>"


def _action_html(item: dict[str, Any]) -> str:
    e = html.escape
    name = f"{item['schema']}.{item['name']}" if item["schema"] else item["name"]
    parts = [
        f"<li><span class='{_CLASS[item['status']]}'><b>{e(item['status'])}</b></span> "
        f"{e(singular(item['kind']))} <code>{e(name)}</code><ul>"
    ]
    parts += [f"<li>{e(m)}</li>" for m in item["messages"]]
    parts.append("</ul>")
    if item.get("remediation"):
        parts.append(f"<p><b>Remediation:</b> {e(item['remediation'])}</p>")
    if item.get("source_sql"):
        parts.append(f"<details><summary>source</summary><pre>{e(item['source_sql'])}</pre>")
        parts.append("</details>")
    return "".join(parts) + "</li>"
