"""Metrics and traces of the initiator (metrics.py: Prometheus scrape endpoint; tracing.py: OpenTelemetry)."""
