"""The MySQL/MariaDB binlog decoder (no I/O), one module per concern.

Layers, each importing only those before it: ``events`` (event framing, type
codes, character sets, readers) -> ``tablemap`` (TABLE_MAP events) -> ``runtime``
(what generated decoders call) -> ``codegen`` (the generator's machinery) ->
``jsonb`` (MySQL binary JSON) -> ``colcode`` (each column type's decoder) ->
``rowcode`` (the walker of a rows event) -> ``decoder`` (:class:`BinlogDecoder`,
with ``statements`` for QUERY events and ``gtid`` for the GTID position).
"""
