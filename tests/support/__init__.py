"""Helpers for opendms tests and benchmarks (private throw-away servers, ...)."""
