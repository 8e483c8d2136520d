"""Premigration assessment results (defined in :mod:`opendms.checks`, which the engines'
own checks use too)."""

from opendms.checks import Check, Status, passed, problem, skipped

__all__ = ["Check", "Status", "passed", "problem", "skipped"]
