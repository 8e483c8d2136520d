"""Bad input and CLI conventions: one clear line, exit 2 for usage and configuration
errors, nothing created or half-written, private files (issue 8, section 8)."""

from __future__ import annotations

import json
import logging
import sqlite3
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from opendms.cli.main import cli
from opendms.demo import build_retail


@pytest.fixture
def retail(tmp_path: Path) -> Path:
    db = tmp_path / "retail.db"
    build_retail(db, orders=200)
    return db


def _invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--state", str(tmp_path / "state.db"), *args])
    return result.exit_code, result.output


def _task(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def _one_error_line(out: str) -> str:
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out
    return errors[0]


def test_non_utf8_task_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        "name: caf\xe9\nsource: sqlite:///a.db\ntarget: sqlite:///b.db\n".encode("latin-1")
    )
    code, out = _invoke(tmp_path, "task", "run", str(path))
    assert code == 2
    line = _one_error_line(out)
    assert "latin1.yaml" in line and "not UTF-8" in line and "0xe9" in line


def test_non_utf8_mapping_file_is_a_config_error(retail: Path, tmp_path: Path) -> None:
    (tmp_path / "map.json").write_bytes(b'{"rules": [], "note": "\xff"}')
    task = _task(
        tmp_path,
        name="t",
        source=f"sqlite:///{retail}",
        target=f"sqlite:///{tmp_path / 'c.db'}",
        table_mappings="map.json",
    )
    code, out = _invoke(tmp_path, "task", "run", str(task))
    assert code == 2
    line = _one_error_line(out)
    assert "$.table_mappings" in line and "not UTF-8" in line


def test_demo_orders_zero_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "demo", "--orders", "0", "--dir", str(tmp_path / "demo"))
    assert code == 2 and "--orders" in out and "Traceback" not in out
    assert not (tmp_path / "demo").exists()


def test_mapping_typo_is_one_line_with_its_json_path_before_any_connection(
    tmp_path: Path,
) -> None:
    """The source does not exist: had opendms connected, the error would say so."""
    rules = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "a",
                "object-locator": {"schema-name": "main", "tabel-name": "%"},
                "rule-action": "include",
            }
        ]
    }
    task = _task(
        tmp_path,
        name="t",
        source="postgresql://u:pw@127.0.0.1:1/nowhere",
        target=f"sqlite:///{tmp_path / 'c.db'}",
        table_mappings=json.dumps(rules),
    )
    for command in (["task", "run"], ["assess"], ["validate"]):
        code, out = _invoke(tmp_path, *command, str(task))
        assert code == 2, (command, out)
        line = _one_error_line(out)
        assert "$.rules[0].object-locator.tabel-name" in line and "unknown key" in line
        assert "assessment" not in out.lower() and "127.0.0.1" not in out


@pytest.mark.parametrize(
    ("url", "settings", "message"),
    [
        ("postgresql://u@127.0.0.1:1/db", "CaptureDdls=N;SlotNmae=x", "'SlotNmae'"),
        ("postgresql://u@127.0.0.1:1/db?sslmod=require", "", "'sslmod'"),
        ("postgresql://u@127.0.0.1:1/db", "CaptureDdls=perhaps", "CaptureDdls"),
        ("mysql://u@127.0.0.1:1/db?ssl=true", "", "'ssl'"),
        (
            "mysql://u@127.0.0.1:1/db",
            "serverTimezone=UTC;eventsPolInterval=5",
            "'eventsPolInterval'",
        ),
        ("sqlite:///x.db?mode=ro", "", "'mode'"),
    ],
)
def test_unknown_endpoint_settings_and_url_parameters_are_errors(
    tmp_path: Path, url: str, settings: str, message: str
) -> None:
    """Checked before connecting: the servers named here do not exist."""
    code, out = _invoke(tmp_path, "endpoint", "test", url, "--settings", settings)
    assert code == 2, out
    line = _one_error_line(out)
    assert message in line and ("known:" in line or "expected true or false" in line)


def test_dms_settings_not_applied_are_accepted_with_one_warning(
    retail: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.settings import EndpointSettings, Whole

    class Spec(EndpointSettings):
        engine = "Test"
        not_applied = frozenset({"ExecuteTimeout"})
        A: Whole = 0

    with caplog.at_level(logging.WARNING):
        got = Spec.resolve(EndpointURL.parse("sqlite:///x.db"), {"a": "5", "executeTimeout": "9"})
        Spec.resolve(EndpointURL.parse("sqlite:///x.db"), {"EXECUTETIMEOUT": "9"})
    assert got.A == 5
    warnings = [r.getMessage() for r in caplog.records if "ExecuteTimeout" in r.getMessage()]
    assert warnings == [
        "Test endpoint setting ExecuteTimeout is accepted but not applied by opendms"
    ]


def _removal_task(tmp_path: Path, retail: Path, column: str) -> Path:
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "main", "table-name": "%"},
            "rule-action": "include",
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "pii",
            "rule-target": "column",
            "object-locator": {
                "schema-name": "main",
                "table-name": "customers",
                "column-name": column,
            },
            "rule-action": "remove-column",
        },
    ]
    return _task(
        tmp_path,
        name="t",
        source=f"sqlite:///{retail}",
        target=f"sqlite:///{tmp_path / 'copy.db'}",
        table_mappings={"rules": rules},
    )


def test_remove_column_of_a_missing_column_is_an_error(retail: Path, tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "task", "run", str(_removal_task(tmp_path, retail, "Phone")))
    assert code == 2, out
    line = _one_error_line(out)
    assert "$.rules[1].object-locator.column-name" in line and "'Phone'" in line
    assert not (tmp_path / "copy.db").exists() or _columns(tmp_path / "copy.db") == set()
    code, out = _invoke(tmp_path, "task", "run", str(_removal_task(tmp_path, retail, "phone")))
    assert code == 0, out
    assert "phone" not in _columns(tmp_path / "copy.db") and "email" in _columns(
        tmp_path / "copy.db"
    )


def _columns(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[1] for r in conn.execute("PRAGMA table_info(customers)")}


def test_skip_assessment_never_creates_a_refused_lake_folder(retail: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "lake"
    task = _task(tmp_path, name="t", source=f"sqlite:///{retail}", target=f"file://{missing}")
    code, out = _invoke(tmp_path, "task", "run", "--skip-assessment", str(task))
    assert code == 1 and "does not exist" in _one_error_line(out)
    assert not (tmp_path / "no").exists()


def test_json_status_tables_and_errors(retail: Path, tmp_path: Path) -> None:
    with sqlite3.connect(retail) as conn:  # a value the lake's INT column cannot hold
        conn.execute("UPDATE products SET stock_quantity = 'many' WHERE product_id = 105")
    lake = tmp_path / "lake"
    task = _task(tmp_path, name="t", source=f"sqlite:///{retail}", target=f"file://{lake}")
    assert _invoke(tmp_path, "task", "run", str(task))[0] == 0
    code, out = _invoke(tmp_path, "task", "status", "--json", "t")
    status = json.loads(out)
    assert code == 0 and status["status"] == "stopped" and status["progress_percent"] == 100
    assert status["stop_reason"] == "FULL_LOAD_ONLY_FINISHED" and status["tables"] == 4
    code, out = _invoke(tmp_path, "task", "tables", "--json", "t")
    tables = {t["TableName"]: t for t in json.loads(out)}
    with sqlite3.connect(retail) as conn:
        products = conn.execute("SELECT count(*) FROM products").fetchone()[0]
    assert tables["products"]["FullLoadRows"] == products - 1
    assert (
        tables["products"]["ErrorRows"] == 1
        and tables["products"]["TableState"] == "Table completed"
    )
    code, out = _invoke(tmp_path, "task", "errors", "--json", "t")
    errors = json.loads(out)
    assert code == 0 and len(errors) == 1
    assert errors[0]["table"] == "main.products" and "105" in errors[0]["key"]
    assert errors[0]["column"] == "stock_quantity"
    code, out = _invoke(tmp_path, "task", "errors", "t", "--table", "main.nope")
    assert code == 2 and "no table 'main.nope'" in out


def test_tables_are_readable_at_80_columns(retail: Path, tmp_path: Path) -> None:
    from rich.console import Console

    from opendms.cli.ui import stats_table, task_table
    from opendms.state import StateStore

    task = _task(
        tmp_path, name="t", source=f"sqlite:///{retail}", target=f"sqlite:///{tmp_path / 'c.db'}"
    )
    assert _invoke(tmp_path, "task", "run", str(task))[0] == 0
    store = StateStore(tmp_path / "state.db")
    record = store.task("t")
    assert record is not None
    narrow = Console(width=80, record=True)
    narrow.print(stats_table("t", store.tables("t")))
    narrow.print(task_table([(record, store.tables("t"), "")]))
    text = narrow.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    # every value on one line: nothing folded mid-word
    for value in ("main.order_items", "Table completed", "FULL_LOAD_ONLY_FINISHED", "full-load"):
        assert value in text, text


def test_state_store_logs_and_reports_are_private(retail: Path, tmp_path: Path) -> None:
    task = _task(
        tmp_path, name="t", source=f"sqlite:///{retail}", target=f"sqlite:///{tmp_path / 'c.db'}"
    )
    assert _invoke(tmp_path, "task", "run", str(task))[0] == 0
    report = tmp_path / "diff.json"
    code, out = _invoke(tmp_path, "validate", str(task), "--report", str(report))
    assert code == 0, out
    for path in (tmp_path / "state.db", report):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
