"""The engine registry: registering an engine from outside the product, and which
engines can be opened as sources."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from opendms.endpoints import _REGISTERED, ENGINES, engine_for, engines, register
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.engine import Capabilities, Engine
from opendms.errors import UnknownSchemeError


class _ReadBack(Engine):
    name = "readback-only"
    schemes = ("readback",)
    capabilities = Capabilities(target=True, read_back=True)


@pytest.fixture
def registered() -> Iterator[str]:
    """A throwaway engine module, registered for one test."""
    module = types.ModuleType("tests_unit_readback_engine")
    module.ENGINE = _ReadBack()  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    register(module.__name__)
    yield module.__name__
    _REGISTERED.remove(module.__name__)
    engines.cache_clear()
    del sys.modules[module.__name__]


def test_register_adds_an_engine_and_keeps_the_product_list(registered: str) -> None:
    assert isinstance(engines()["readback"], _ReadBack)
    assert registered not in ENGINES
    register(registered)  # twice: once
    assert _REGISTERED.count(registered) == 1


def test_an_engine_read_back_whole_is_no_source(registered: str) -> None:
    """Validation reads such a target through Engine.table_rows, never as a source."""
    with pytest.raises(UnknownSchemeError, match="readback:// endpoints can only be targets"):
        engine_for(EndpointURL.parse("readback:///x"), "source")


def test_a_target_only_engine_is_refused_as_a_source() -> None:
    with pytest.raises(UnknownSchemeError, match="file:// endpoints can only be targets"):
        engine_for(EndpointURL.parse("file:///tmp/lake"), "source")
