"""The fuzz targets run in the suite, briefly: each for SECONDS (coverage-guided with
atheris when it is installed, else random mutations of the seeds), so a change that
makes a parser crash, hang or blow up on odd input fails here. Longer runs:
``python tests/fuzz/run.py --seconds 600``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.run import run_target
from tests.fuzz.targets import TARGETS, seeds

SECONDS = 6  # per target; five targets stay under a minute


@pytest.mark.parametrize("name", list(TARGETS))
def test_seeds_parse_within_the_contract(name: str) -> None:
    """Every committed seed runs through its target (a value or a typed error)."""
    found = seeds(name)
    assert found, f"no seeds in tests/fuzz/corpus/{name}"
    for data in found:
        TARGETS[name](data)


@pytest.mark.timeout(SECONDS + 150)
@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_target(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = run_target(name, SECONDS, seed=1, out=tmp_path)
    report = capsys.readouterr()
    assert clean, f"fuzz target {name} failed:\n{report.err[-4000:]}"
