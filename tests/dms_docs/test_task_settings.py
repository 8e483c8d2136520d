"""The DMS user guide's task-settings documents load unchanged and behave as documented.

Guide pages: "Task settings example" (CHAP_Tasks.CustomizingTasks.TaskSettings, the full
example document, ``guide/task-settings-example.json``) and "Saving task settings"
(CHAP_Tasks.CustomizingTasks.TaskSettings.Saving, the settings saved from a task,
``guide/task-settings-saved.json``). Both files are the guide's text byte for byte.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from opendms.config import load_task_file, task_from_dict
from opendms.engine import task as task_module
from opendms.errors import ConfigError
from opendms.service.run import run_task
from opendms.state import StateStore
from opendms.tasksettings import NO_EFFECT, TaskSettings, settings_without_effect

GUIDE = Path(__file__).parent / "guide"
EXAMPLE = GUIDE / "task-settings-example.json"
SAVED = GUIDE / "task-settings-saved.json"
README = Path(__file__).parents[2] / "README.md"


def _task_file(tmp_path: Path, settings: Any) -> Path:
    task = tmp_path / "task.yaml"
    body = {"name": "t", "source": "sqlite:///src.db", "target": "sqlite:///dst.db"}
    task.write_text(yaml.safe_dump({**body, "task_settings": settings}), encoding="utf-8")
    return task


@pytest.mark.parametrize("document", [EXAMPLE, SAVED], ids=["example", "saved"])
def test_guide_document_loads_as_a_json_file_a_yaml_file_and_inline(
    document: Path, tmp_path: Path
) -> None:
    data = json.loads(document.read_text(encoding="utf-8"))
    as_yaml = tmp_path / "settings.yaml"
    as_yaml.write_text(yaml.safe_dump(data), encoding="utf-8")
    loaded = [
        load_task_file(_task_file(tmp_path, str(document))).task_settings,
        load_task_file(_task_file(tmp_path, as_yaml.name)).task_settings,
        load_task_file(_task_file(tmp_path, data)).task_settings,
        load_task_file(_task_file(tmp_path, document.read_text(encoding="utf-8"))).task_settings,
    ]
    assert all(s == loaded[0] for s in loaded)
    _values_as_written(data, loaded[0])


def _values_as_written(data: dict[str, Any], settings: TaskSettings) -> None:
    """Every scalar of the document is the value of its key in the loaded settings
    (``null`` sections are the defaults)."""
    for section, body in data.items():
        if not isinstance(body, dict):
            value = getattr(settings, section)
            assert value == body or (body is None and value == getattr(TaskSettings(), section))
            continue
        model = getattr(settings, section)
        for key, value in body.items():
            got = getattr(model, key)
            if isinstance(value, dict):
                assert got.model_dump() == {**got.model_dump(), **value}, (section, key)
            elif isinstance(value, list):
                assert [v.model_dump() for v in got] == value, (section, key)
            else:
                assert got == value, (section, key)


def test_example_values_reach_the_settings_opendms_acts_on(tmp_path: Path) -> None:
    settings = load_task_file(_task_file(tmp_path, str(EXAMPLE))).task_settings
    assert settings.FullLoadSettings.TargetTablePrepMode.value == "DO_NOTHING"
    assert settings.ErrorBehavior.DataErrorEscalationCount == 50
    assert settings.ErrorBehavior.RecoverableErrorCount == 0
    assert settings.ErrorBehavior.TableErrorEscalationCount == 50
    assert settings.ValidationSettings.FailureMaxCount == 1000
    assert settings.ChangeProcessingTuning.BatchApplyTimeoutMax == 30


def test_saved_document_null_sections_are_the_defaults(tmp_path: Path) -> None:
    settings = load_task_file(_task_file(tmp_path, str(SAVED))).task_settings
    default = TaskSettings()
    for section in ("CharacterSetSettings", "LoopbackPreventionSettings", "BeforeImageSettings"):
        assert getattr(settings, section) == getattr(default, section)
    assert [c.Id for c in settings.Logging.LogComponents][:2] == ["TRANSFORMATION", "SOURCE_UNLOAD"]


def test_the_example_names_the_settings_without_effect(tmp_path: Path) -> None:
    settings = load_task_file(_task_file(tmp_path, str(EXAMPLE))).task_settings
    named = dict(settings_without_effect(settings))
    # The keys the example sets away from DMS's defaults that opendms does not act on.
    assert set(named) == {
        "TTSettings",
        "LoopbackPreventionSettings",
        "CharacterSetSettings",
        "ValidationSettings.RecordFailureDelayLimitInMinutes",
    }
    assert settings_without_effect(TaskSettings()) == []


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"ErrorBehavior": {"DataErrorPolicyy": "LOG_ERROR"}}, "$.task_settings.ErrorBehavior"),
        ({"TTSettings": {"TTS3Settings": {"Bucket": "x"}}}, "$.task_settings.TTSettings"),
        ({"Logging": {"LogComponents": [{"Id": "TARGET_LOADD"}]}}, "LogComponents[0].Id"),
        ({"ValidationSettings": {"ValidationMode": "SAMPLE"}}, "ValidationMode"),
        ({"Loging": {}}, "$.task_settings.Loging"),
    ],
)
def test_a_typo_is_still_an_error_naming_its_path(
    settings: dict[str, Any], path: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        load_task_file(_task_file(tmp_path, settings))
    assert path in str(info.value)


def test_a_key_given_twice_is_an_error_in_a_settings_file_and_in_the_task_file(
    tmp_path: Path,
) -> None:
    twice = '{"FullLoadSettings": {"CommitRate": 5, "CommitRate": 6}}'
    (tmp_path / "s.json").write_text(twice, encoding="utf-8")
    with pytest.raises(ConfigError, match="'CommitRate' given more than once"):
        load_task_file(_task_file(tmp_path, "s.json"))
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nname: u\nsource: sqlite:///a.db\ntarget: sqlite:///b.db\n")
    with pytest.raises(ConfigError, match="'name' given more than once"):
        load_task_file(task)


def test_a_missing_settings_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$\.task_settings: cannot read file .*nope\.json"):
        load_task_file(_task_file(tmp_path, "nope.json"))


def test_a_run_with_the_saved_document_warns_once_per_setting_without_effect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_module, "_warned_settings", set())  # as in a new process
    source, target = tmp_path / "src.db", tmp_path / "dst.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a'), (2, NULL)")
    settings = json.loads(SAVED.read_text(encoding="utf-8"))
    settings["Logging"]["EnableLogging"] = True
    spec = task_from_dict(
        {
            "name": "saved",
            "source": f"sqlite:///{source}",
            "target": f"sqlite:///{target}",
            "task_settings": settings,
        },
        where="test",
    )
    again = spec.model_copy(
        update={
            "name": "again",
            "target": spec.target.model_copy(update={"url": f"sqlite:///{tmp_path / 'again.db'}"}),
        }
    )
    with caplog.at_level(logging.WARNING, logger="opendms.task"):
        run_task(spec, StateStore(tmp_path / "state.db"))
        run_task(again, StateStore(tmp_path / "state.db"))
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT id, v FROM t ORDER BY id").fetchall() == [(1, "a"), (2, None)]
    warned = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert sorted(w.split()[2] for w in warned) == sorted(
        p for p, _ in settings_without_effect(spec.task_settings)
    )
    assert any(w.startswith("task setting Logging has no effect") for w in warned)


def test_every_setting_without_effect_is_in_the_readme_table() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("### Task settings with no effect here") :]
    cells = re.findall(r"^\| ((?:`[A-Za-z.]+`(?:, )?)+) \|", table, re.M)
    listed = [key for cell in cells for key in re.findall(r"`([A-Za-z.]+)`", cell)]
    assert sorted(listed) == sorted(NO_EFFECT)


def _fields(model: type[Any], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        inner = info.annotation
        if isinstance(inner, type) and hasattr(inner, "model_fields") and prefix == "":
            out += _fields(inner, f"{path}.")
        else:
            out.append(path)
    return out


# The keys opendms acts on; every other key of the document is in NO_EFFECT (by itself or
# by its section), so no key is accepted and silently ignored.
ACTS = {
    "ErrorBehavior.DataTruncationErrorPolicy",
    "TargetMetadata.TargetSchema",
    "TargetMetadata.SupportLobs",
    "TargetMetadata.FullLobMode",
    "TargetMetadata.LimitedSizeLobMode",
    "TargetMetadata.LobMaxSize",
    "FullLoadSettings.TargetTablePrepMode",
    "FullLoadSettings.MaxFullLoadSubTasks",
    "FullLoadSettings.CommitRate",
    "FullLoadSettings.StopTaskCachedChangesApplied",
    "FullLoadSettings.StopTaskCachedChangesNotApplied",
    "TargetMetadata.ParallelLoadThreads",
    "ChangeProcessingTuning.BatchApplyTimeoutMin",
    "ChangeProcessingTuning.BatchApplyTimeoutMax",
    "ChangeProcessingTuning.BatchSplitSize",
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped",
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated",
    "ValidationSettings.EnableValidation",
    "ValidationSettings.ValidationOnly",
    "ValidationSettings.FailureMaxCount",
    "ValidationSettings.TableFailureMaxCount",
    "ValidationSettings.ValidationMode",
    "ValidationSettings.InDatabaseChecksums",
    *(
        f"ErrorBehavior.{k}"
        for k in [
            "DataErrorPolicy",
            "DataErrorEscalationPolicy",
            "DataErrorEscalationCount",
            "TableErrorPolicy",
            "TableErrorEscalationPolicy",
            "TableErrorEscalationCount",
            "RecoverableErrorCount",
            "RecoverableErrorInterval",
            "RecoverableErrorThrottling",
            "RecoverableErrorThrottlingMax",
            "RecoverableErrorStopRetryAfterThrottlingMax",
            "ApplyErrorInsertPolicy",
            "ApplyErrorUpdatePolicy",
            "ApplyErrorDeletePolicy",
            "ApplyErrorFailOnTruncationDdl",
            "ApplyErrorEscalationPolicy",
            "ApplyErrorEscalationCount",
            "FailOnNoTablesCaptured",
        ]
    ),
}


def test_every_key_acts_or_is_listed_without_effect() -> None:
    for path in _fields(TaskSettings):
        section = path.split(".")[0]
        assert (path in ACTS) != (path in NO_EFFECT or section in NO_EFFECT), path


def test_keys_that_act_are_read_by_the_engine() -> None:
    src = Path(__file__).parents[2] / "src" / "opendms"
    code = "\n".join(
        p.read_text(encoding="utf-8")
        for p in src.rglob("*.py")
        if p.name not in ("tasksettings.py", "config.py")
    )
    for path in ACTS - {"ValidationSettings.ValidationMode"}:  # ROW_LEVEL, DMS's only mode
        key = path.split(".")[1]
        assert re.search(rf"\b{key}\b", code), f"{path} is read nowhere"


# The section pages print fragments (INVENTORY.md 2.2); each is wrapped in { } here, with
# the guide's ellipses, placeholders and trailing commas removed, as the test says.
FRAGMENTS: list[tuple[str, dict[str, Any], set[str]]] = [
    (
        "logging-1",
        {
            "Logging": {
                "EnableLogging": True,
                "LogComponents": [
                    {"Id": "TARGET_LOAD", "Severity": "LOGGER_SEVERITY_INFO"},
                    {"Id": "TASK_MANAGER", "Severity": "LOGGER_SEVERITY_DEBUG"},
                    {"Id": "VALIDATOR", "Severity": "LOGGER_SEVERITY_DEFAULT"},
                ],
                "CloudWatchLogGroup": None,
                "CloudWatchLogStream": None,
            }
        },
        {"Logging"},
    ),
    (
        "changeprocessingtuning-1",
        {
            "ChangeProcessingTuning": {
                "BatchApplyPreserveTransaction": True,
                "BatchApplyTimeoutMin": 1,
                "BatchApplyTimeoutMax": 30,
                "BatchApplyMemoryLimit": 500,
                "BatchSplitSize": 0,
                "MinTransactionSize": 1000,
                "CommitTimeout": 1,
                "MemoryLimitTotal": 1024,
                "MemoryKeepTime": 60,
                "StatementCacheSize": 50,
            }
        },
        set(),  # DMS's defaults: nothing to warn about
    ),
    (
        "ddlhandling-1",
        {
            "ChangeProcessingDdlHandlingPolicy": {
                "HandleSourceTableDropped": True,
                "HandleSourceTableTruncated": True,
                "HandleSourceTableAltered": True,
            }
        },
        set(),
    ),
    (
        "validation-1",
        {
            "ValidationSettings": {
                "EnableValidation": True,
                "ThreadCount": 10,
                "HandleCollationDiff": True,
                "RecordFailureDelayLimitInMinutes": 30,
            }
        },
        {
            "ValidationSettings.ThreadCount",
            "ValidationSettings.HandleCollationDiff",
            "ValidationSettings.RecordFailureDelayLimitInMinutes",
        },
    ),
    (
        "charset-1",
        {
            "CharacterSetSettings": {
                "CharacterReplacements": [
                    {"SourceCharacterCodePoint": 62, "TargetCharacterCodePoint": 61},
                    {"SourceCharacterCodePoint": 42, "TargetCharacterCodePoint": 41},
                ]
            }
        },
        {"CharacterSetSettings"},
    ),
    (
        "charset-2",
        {
            "CharacterSetSettings": {
                "CharacterSetSupport": {
                    "CharacterSet": "UTF16_PlatformEndian",
                    "ReplaceWithCharacterCodePoint": 0,
                }
            }
        },
        {"CharacterSetSettings"},
    ),
    (
        "beforeimage-1",
        {
            "BeforeImageSettings": {
                "EnableBeforeImage": True,
                "FieldName": "before-image",
                "ColumnFilter": "pk-only",
            }
        },
        {"BeforeImageSettings"},
    ),
    (
        "loopback-2",
        {
            "LoopbackPreventionSettings": {
                "EnableLoopbackPrevention": True,
                "SourceSchema": "LOOP-DATA",
                "TargetSchema": "loop-data",
            }
        },
        {"LoopbackPreventionSettings"},
    ),
    (
        "loopback-3",
        {
            "LoopbackPreventionSettings": {
                "EnableLoopbackPrevention": True,
                "SourceSchema": "loop-data",
                "TargetSchema": "LOOP-DATA",
            }
        },
        {"LoopbackPreventionSettings"},
    ),
    # loopback-1 is a template (Boolean / String placeholders) and timetravel-1 the
    # TTSettings of the example document, printed unclosed: both load as part of
    # task-settings-example.json above.
    (
        "targetmetadata-inline-lob-1",
        {
            "TargetMetadata": {
                "TargetSchema": "",
                "SupportLobs": True,
                "FullLobMode": True,
                "LobChunkSize": 64,
                "LimitedSizeLobMode": False,
                "LobMaxSize": 32,
                "InlineLobMaxSize": 5,
                "LoadMaxFileSize": 0,
                "ParallelLoadThreads": 0,
                "ParallelLoadBufferSize": 0,
                "BatchApplyEnabled": False,
                "TaskRecoveryTableEnabled": False,
            }
        },
        {"TargetMetadata.InlineLobMaxSize"},  # full LOB mode acts: LOBs are copied whole
    ),
]


@pytest.mark.parametrize(
    ("fragment", "no_effect"),
    [(f, n) for _, f, n in FRAGMENTS],
    ids=[i for i, _, _ in FRAGMENTS],
)
def test_guide_section_fragments_load_and_name_what_does_nothing(
    fragment: dict[str, Any], no_effect: set[str], tmp_path: Path
) -> None:
    settings = load_task_file(_task_file(tmp_path, fragment)).task_settings
    _values_as_written(json.loads(json.dumps(fragment)), settings)
    assert {path for path, _ in settings_without_effect(settings)} == no_effect


def test_lob_settings_of_a_table_settings_rule_apply_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table's lob-settings act (README, "LOB settings"): ``t`` is cut at its 16 KB,
    ``u`` (no rule, no task LOB settings) keeps its LOB whole; nothing warns."""
    monkeypatch.setattr(task_module, "_warned_settings", set())
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        for table in ("t", "u"):
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, doc TEXT)")
            conn.execute(f"INSERT INTO {table} VALUES (1, ?)", ("x" * 100_000,))
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "1",
            "object-locator": {"schema-name": "%", "table-name": "%"},
            "rule-action": "include",
        },
        {
            "rule-type": "table-settings",
            "rule-id": "2",
            "rule-name": "2",
            "object-locator": {"schema-name": "main", "table-name": "t"},
            "lob-settings": {"mode": "limited", "bulk-max-size": "16"},
        },
    ]
    spec = task_from_dict(
        {
            "name": "lobs",
            "source": f"sqlite:///{source}",
            "target": f"sqlite:///{tmp_path / 'dst.db'}",
            "table_mappings": {"rules": rules},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    with caplog.at_level(logging.WARNING, logger="opendms.task"):
        run_task(spec, store)
    assert [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()] == []
    with sqlite3.connect(tmp_path / "dst.db") as conn:
        assert conn.execute("SELECT length(doc) FROM t").fetchall() == [(16 * 1024,)]
        assert conn.execute("SELECT length(doc) FROM u").fetchall() == [(100_000,)]
    assert store.data_errors("lobs") == [
        (
            "main.t",
            "id=1",
            "doc",
            "LOB value truncated to 16384 bytes (lob-settings bulk-max-size 16 KB) "
            "(DataTruncationErrorPolicy LOG_ERROR)",
        )
    ]
