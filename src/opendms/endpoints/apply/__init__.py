"""The CDC apply layer shared by the targets.

- :mod:`~opendms.endpoints.apply.policy`: the apply error policies and the typed
  ``OnError``, for every applier;
- :mod:`~opendms.endpoints.apply.runs`: runs, rows, segments, DDL ordering, value casts;
- :mod:`~opendms.endpoints.apply.session`: the engine hooks (SQL dialect, session,
  checkpoint store);
- :mod:`~opendms.endpoints.apply.rows`: ``RowApplier``, the row-by-row applier of the
  SQL targets (MySQL/MariaDB, SQLite).

A table's source/target pair is the change model's ``ApplyPlan``; column changes move it
on with ``ApplyPlan.after`` (:mod:`opendms.evolve`).
"""
