"""The ``opendms`` command line: a thin layer over the public API."""
