"""Operating grctl: Prometheus metrics, the health endpoints and the HTTP listener that serves them.

``metrics`` holds every counter, gauge and histogram of the worker and the engine (off until
``metrics.enable()``); ``http`` serves ``/metrics``, ``/healthz`` and ``/readyz``; ``multiproc`` lets
grctld's worker processes count into one directory that the supervisor reads at scrape time.
"""
