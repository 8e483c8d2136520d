"""How the conformance suite reaches a private ``jsonl://`` endpoint."""

from __future__ import annotations

import pytest


def _folder(request: pytest.FixtureRequest, role: str) -> str:
    return f"jsonl://{request.getfixturevalue('tmp_path')}/{role}"


FACTORIES = {"jsonl": _folder}
"""URL factories by variant (the test id), as ``tests/conformance/conftest.py`` takes them."""
