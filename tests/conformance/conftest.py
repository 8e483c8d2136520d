"""Endpoints for the conformance suite: one URL factory per registered engine.

Every test here is parametrized over :func:`engine_params`, i.e. over the registered
engines (:func:`opendms.endpoints.engines`), each with the URL variants its factory
in :data:`FACTORIES` gives (the lake: a ``file://`` folder and an ``s3://`` bucket), or
that a ``conformance`` module in the engine's own package gives (its ``FACTORIES``).
A newly registered engine is collected automatically and fails with a clear message
until it has a factory.

The suite also runs a test-only engine, registered on the first line below: a package of
its own (``jsonl_engine``) plus that one line, as adding an engine should be.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from opendms.endpoints import engines, register
from opendms.endpoints.engine import Engine
from opendms.model import Kind
from tests.conformance import dynamodb_source
from tests.integration import everything
from tests.integration.everything import create_mysql, create_pg, create_sqlite
from tests.oracles.rows import run_sql, sqlite_path

register("tests.conformance.jsonl_engine.engine")

Factory = Callable[[pytest.FixtureRequest, str], str]
"""(request, role "source" or "target") -> the URL of a private, empty endpoint."""


def _postgres(request: pytest.FixtureRequest, role: str) -> str:
    return str(request.getfixturevalue("pg_db" if role == "source" else "pg_target_db"))


def _mysql(request: pytest.FixtureRequest, role: str) -> str:
    return str(request.getfixturevalue("mysql_db" if role == "source" else "mysql_target_db"))


def _sqlite(request: pytest.FixtureRequest, role: str) -> str:
    path = request.getfixturevalue("tmp_path") / f"{role}.db"
    if role == "source":
        path.touch()  # a source endpoint must exist; a target is created on first use
    return f"sqlite:///{path}"


def _lake_file(request: pytest.FixtureRequest, role: str) -> str:
    return f"file://{request.getfixturevalue('tmp_path')}/lake"


def _lake_s3(request: pytest.FixtureRequest, role: str) -> str:
    return str(request.getfixturevalue("s3_url"))


def _dynamodb(fixture: str) -> Factory:
    """A DynamoDB URL of the session's server, its tables named with a prefix of their own
    (the server is shared by the session's tests)."""

    def url(request: pytest.FixtureRequest, role: str) -> str:
        prefix = f"t{uuid.uuid4().hex[:10]}_"
        return f"{request.getfixturevalue(fixture)}&table_prefix={prefix}"

    return url


def _nats(request: pytest.FixtureRequest, role: str) -> str:
    return str(request.getfixturevalue("nats_url"))


def _redis(request: pytest.FixtureRequest, role: str) -> str:
    return str(request.getfixturevalue("redis_url"))


FACTORIES: dict[str, dict[str, Factory]] = {
    "postgres": {"postgres": _postgres},
    "mysql": {"mysql": _mysql},
    "sqlite": {"sqlite": _sqlite},
    "lake": {"file": _lake_file, "s3": _lake_s3},
    "dynamodb": {"dynalite": _dynamodb("dynalite_url"), "moto": _dynamodb("moto_url")},
    "nats": {"nats": _nats},
    "redis": {"redis": _redis},
}
"""URL factories by engine name, then by variant (the test id)."""

VARIANT_LACKS: dict[str, set[str]] = {"dynalite": {"cdc_source"}}
"""Capabilities an engine declares that one way of reaching it lacks (dynalite, a
DynamoDB emulator, has no DynamoDB Streams): those tests are deselected for it."""


def factories(engine: Engine) -> dict[str, Factory]:
    """The URL factories of ``engine``: in :data:`FACTORIES`, or the ``FACTORIES`` of a
    ``conformance`` module beside its engine module (none: empty)."""
    if engine.name in FACTORIES:
        return FACTORIES[engine.name]
    module = type(engine).__module__.rpartition(".")[0] + ".conformance"
    if importlib.util.find_spec(module) is None:
        return {}
    found: dict[str, Factory] = importlib.import_module(module).FACTORIES
    return found


def _sqlite_everything(url: str) -> None:
    create_sqlite(sqlite_path(url))


EVERYTHING: dict[str, tuple[str, Callable[[str], None]]] = {
    "postgres": ("pg", create_pg),
    "mysql": ("mysql", create_mysql),
    "sqlite": ("sqlite", _sqlite_everything),
}
"""By source engine name: its column in :mod:`tests.integration.everything` and how the
"every type" table is created natively on a source URL."""


@dataclass(frozen=True)
class Everything:
    """The "every type" table as its source reads it: column names, kinds, rows."""

    columns: list[str]
    kinds: dict[str, tuple[Kind, Kind | None]]
    rows: list[dict[str, Any]]


def _by_spec(spec: str) -> Everything:
    columns = [c.name for c in everything.columns_for(spec)]
    return Everything(columns, everything.kinds(spec), everything.expected(spec))


@dataclass(frozen=True)
class NativeSource:
    """How the source tests make their tables on an engine without SQL: the "every
    type" table, the ``kv`` table (``id`` number key, ``v`` text) and the insert, update
    and delete of its item 1 (``v`` 'a', then 'b')."""

    everything: Callable[[str], Everything]
    create_kv: Callable[[str], None]
    change_kv: Callable[[str], None]


def _dynamodb_everything(url: str) -> Everything:
    dynamodb_source.create_everything(url)
    kinds = dynamodb_source.KINDS
    return Everything(list(kinds), kinds, dynamodb_source.EXPECTED)


SOURCE_HOOKS: dict[str, NativeSource] = {
    "dynamodb": NativeSource(
        _dynamodb_everything, dynamodb_source.create_kv, dynamodb_source.change_kv
    ),
}
"""By source engine name, for engines without SQL (the others: :data:`EVERYTHING` and
the SQL in :data:`KV_SQL`)."""

KV_SQL = {
    "create": ["CREATE TABLE kv (id INTEGER PRIMARY KEY, v VARCHAR(20))"],
    "change": [
        "INSERT INTO kv VALUES (1, 'a')",
        "UPDATE kv SET v = 'b' WHERE id = 1",
        "DELETE FROM kv WHERE id = 1",
    ],
}


@dataclass(frozen=True)
class Endpoint:
    """A registered engine and one way of reaching a private endpoint of it."""

    engine: Engine
    variant: str

    def url(self, request: pytest.FixtureRequest, role: str) -> str:
        found = factories(self.engine)
        if not found:
            pytest.fail(
                f"add a URL factory for engine {self.engine.name} in tests/conformance/conftest.py"
                " or a conformance module in its package"
            )
        return found[self.variant](request, role)

    def create_everything(self, url: str) -> Everything:
        """Create the native "every type" table on ``url``; what a source reads of it."""
        hooks = SOURCE_HOOKS.get(self.engine.name)
        if hooks is not None:
            return hooks.everything(url)
        found = EVERYTHING.get(self.engine.name)
        if found is None:
            pytest.fail(
                f"add the native 'every type' table of source engine {self.engine.name} "
                "to EVERYTHING in tests/conformance/conftest.py"
            )
        found[1](url)
        return _by_spec(found[0])

    def kv(self, url: str, step: str) -> None:
        """``create`` the ``kv`` table on ``url``, or ``change`` its item 1."""
        hooks = SOURCE_HOOKS.get(self.engine.name)
        if hooks is None:
            run_sql(url, KV_SQL[step])
        else:
            (hooks.create_kv if step == "create" else hooks.change_kv)(url)


def engine_params() -> list[object]:
    """One pytest param per registered engine and URL variant."""
    out: list[object] = []
    for engine in dict.fromkeys(engines().values()):
        for variant in factories(engine) or [engine.name]:
            out.append(pytest.param(Endpoint(engine, variant), id=variant))
    return out


@pytest.fixture(params=engine_params())
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    """The engine under test (``endpoint.engine``) and its URL factory."""
    param: Endpoint = request.param
    return param


@pytest.fixture
def target_url(endpoint: Endpoint, request: pytest.FixtureRequest) -> str:
    """A private, empty endpoint of the engine to write to."""
    return endpoint.url(request, "target")


@pytest.fixture
def source_url(endpoint: Endpoint, request: pytest.FixtureRequest) -> str:
    """A private endpoint of the engine to read from (a SQLite file exists, empty)."""
    return endpoint.url(request, "source")


def needs(capability: str) -> pytest.MarkDecorator:
    """Mark a test as applying only to engines that declare ``capability`` (a
    :class:`Capabilities` field; ``typed_setting``: an endpoint setting of type bool or
    int; ``read_back_whole``: validation reads its tables by ``Engine.table_rows``). Other
    engines' parameters are deselected when collecting, not skipped."""
    return pytest.mark.conformance_needs(capability)


def typed_settings(endpoint: Endpoint) -> list[str]:
    """The engine's endpoint settings of type bool or int."""
    model = endpoint.engine.settings
    fields = model.model_fields.items() if model is not None else []
    return [name for name, field in fields if field.annotation in (bool, int)]


def _applies(endpoint: Endpoint, capability: str) -> bool:
    caps = endpoint.engine.capabilities
    if capability in VARIANT_LACKS.get(endpoint.variant, set()):
        return False
    if capability == "typed_setting":
        return bool(typed_settings(endpoint))
    if capability == "read_back_whole":  # read back by Engine.table_rows, not as a source
        return caps.read_back and endpoint.engine.reads_back_whole
    return bool(getattr(caps, capability))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance_needs(capability): only for engines declaring it"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop (deselect) the parameters of engines a test does not apply to."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        mark = item.get_closest_marker("conformance_needs")
        callspec = getattr(item, "callspec", None)
        endpoint = callspec.params.get("endpoint") if callspec is not None else None
        applies = mark is None or endpoint is None or _applies(endpoint, mark.args[0])
        (keep if applies else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
