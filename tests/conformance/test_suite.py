"""The suite's own parametrization: every registered engine, and a clear failure for one
without a URL factory."""

from __future__ import annotations

import pytest

from opendms.endpoints import engines
from opendms.endpoints.engine import Engine
from tests.conformance.conftest import FACTORIES, Endpoint, engine_params


class _NewEngine(Engine):
    name = "brand-new"


def test_every_registered_engine_is_a_param() -> None:
    params = [p.values[0] for p in engine_params()]  # type: ignore[attr-defined]
    assert {e.engine.name for e in params} == {e.name for e in engines().values()}
    assert {e.variant for e in params} >= {v for f in FACTORIES.values() for v in f}


def test_an_engine_without_a_url_factory_fails_clearly(request: pytest.FixtureRequest) -> None:
    with pytest.raises(pytest.fail.Exception, match="add a URL factory for engine brand-new"):
        Endpoint(_NewEngine(), "brand-new").url(request, "target")
