"""Observability: the pipeline's counters (metrics.py), the Prometheus
``/metrics`` endpoint (exporter.py) and ``mailhost status`` (cli/status.py)."""
