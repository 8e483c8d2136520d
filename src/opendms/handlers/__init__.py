"""Handler functions: Python functions a task names to receive its change records.

The task's CDC loop hands each batch to :class:`~opendms.handlers.runtime.HandlerRuntime`
(the outbox), a dispatcher per handler delivers the records to the function in a process
of its own (:mod:`opendms.handlers.process`, :mod:`opendms.handlers.worker`) with
retries, bisection and a dead-letter store (:mod:`opendms.handlers.delivery`,
:mod:`opendms.handlers.store`); :mod:`opendms.handlers.admin` reports and replays.
See docs/handlers.md.
"""
