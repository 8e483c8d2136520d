"""Workflows: Amazon States Language state machines run by opendms (issue 14).

:mod:`opendms.workflows.definition` reads and checks a definition."""
