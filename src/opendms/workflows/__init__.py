"""Workflows: Amazon States Language state machines run by opendms (docs/workflows.md).

:mod:`opendms.workflows.definition` reads and checks a definition, :mod:`.run` runs it,
:mod:`.store` keeps executions, :mod:`.actions` has the ``opendms:`` Task resources. A
``python:`` Task function with ``HeartbeatSeconds`` calls :func:`heartbeat`."""

from opendms.workflows.run import heartbeat

__all__ = ["heartbeat"]
