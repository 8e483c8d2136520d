"""A test-only engine: a folder of JSON-lines files, one per table.

It proves the seam of issue 11: adding an engine is one package (this one) plus one
registry line (:func:`opendms.endpoints.register` in ``tests/conformance/conftest.py``).
The conformance suite runs it by the capabilities it declares (target, CDC target, read
back), with the URL factory in :mod:`.conformance`.
"""
