"""The gunicorn settings and server hooks both services share: a gunicorn config module.

Used as it is by ``placelink gateway serve`` (``gunicorn -c python:policies.gunicorn_settings``,
its ``--bind`` and ``--workers`` on the command line, which gunicorn lets win over a config
file), and star-imported by ``deploy/gunicorn.conf.py`` (linkage service) and
``deploy/gateway.gunicorn.conf.py`` (gateway node), which add their address and limits.

- Workers: PLACELINK_WORKERS (default 2) gthread workers of 4 threads; a 600 s timeout (a link
  run over a whole policy, or a synchronous publication of a large extract, takes minutes).
- Logs: JSON lines on stderr at PLACELINK_LOG_LEVEL (default ``info``; :mod:`policies.log_lines`);
  gunicorn's access log is off: the apps log each request themselves with its route template,
  never the raw path, query string (it may carry ``?record_id=``) or headers.
- Metrics: each worker writes its samples under PROMETHEUS_MULTIPROC_DIR (a fresh temporary
  folder unless set; emptied at start, a dead worker's live gauges dropped), so ``/metrics`` on
  any worker answers for all of them (:func:`policies.telemetry.metrics_exposition`).
"""

import os
import tempfile

# Set before prometheus_client is imported (below): it picks its value class on import.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="placelink-metrics-"))

from policies.log_lines import logconfig_dict as json_logconfig
from policies.telemetry import MULTIPROC_VARIABLE, prepare_multiprocess_directory, worker_exited

__all__ = [
    "accesslog",
    "child_exit",
    "errorlog",
    "graceful_timeout",
    "logconfig_dict",
    "loglevel",
    "on_starting",
    "threads",
    "timeout",
    "worker_class",
    "workers",
]

workers = int(os.environ.get("PLACELINK_WORKERS", "2"))
worker_class = "gthread"
threads = 4
timeout = 600
graceful_timeout = 30
accesslog: str | None = None
errorlog = "-"
loglevel = os.environ.get("PLACELINK_LOG_LEVEL", "info")
logconfig_dict = json_logconfig(loglevel)


def on_starting(server: object) -> None:
    """Gunicorn's master, before any worker: no stale samples from an earlier server."""
    prepare_multiprocess_directory(os.environ[MULTIPROC_VARIABLE])


def child_exit(server: object, worker: object) -> None:
    """Gunicorn's master, after a worker exits: its live gauges stop counting."""
    worker_exited(int(getattr(worker, "pid", 0)))
