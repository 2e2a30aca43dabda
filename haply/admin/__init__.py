"""Operator surfaces: stats snapshot, CSV/JSON/HTML stats, Prometheus, runtime API."""
