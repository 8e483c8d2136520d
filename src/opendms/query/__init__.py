"""Federated SQL across endpoints (``opendms query``): see :mod:`opendms.query.run`."""
