"""The web console, at ``/`` of the engine's HTTP listener (``engine.http.listen``, ``grctl engine
--http``): runs, one run (its timeline and live history), workers; and the actions of the command line
(cancel, terminate, send an event, start, in bulk too), done through the same ``Client`` API.

``settings`` (who may do what, where it is served), ``access`` (credentials, roles and CSRF),
``routes`` and ``app`` (the routes, and what the pages share), ``pages`` and ``actions`` (what they
answer), ``timeline`` (a run's history as bars).
"""
