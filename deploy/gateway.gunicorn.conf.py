"""Gunicorn settings for a gateway node's own API (the agency's side; docs/agency-it.md).

Run:  PLACELINK_NODE_SOURCE=police PLACELINK_NODE_INPUT=/srv/extract.csv ... \
      gunicorn -c deploy/gateway.gunicorn.conf.py 'gateway.app:app_from_environment()'
(or `placelink gateway serve`, which checks the settings first and runs the same).

The API is for the agency's own staff: it binds to loopback by default; put TLS and the
agency's network controls in front (a reverse proxy), or set certfile/keyfile here. Logs are
JSON lines on stderr (policies/log_lines.py); gunicorn's access log is off: the app logs each
request with its route template, never the query string (it may carry ?record_id=) or headers.
Metrics: each worker writes its samples under PROMETHEUS_MULTIPROC_DIR (a fresh temporary
folder unless set; emptied at start), so /metrics on any worker answers for all of them.
"""

import os
import tempfile

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="placelink-metrics-"))

# Imported after the metrics folder is set: prometheus_client reads it on import.
from policies.log_lines import logconfig_dict as json_logconfig
from policies.telemetry import prepare_multiprocess_directory, worker_exited

bind = os.environ.get("PLACELINK_BIND", "127.0.0.1:8090")
workers = int(os.environ.get("PLACELINK_WORKERS", "2"))
worker_class = "gthread"
threads = 4
# A publication is synchronous: encoding a large extract and uploading it can take minutes.
# Two workers never publish at once: publishing holds a lock file in the state folder.
timeout = 600
graceful_timeout = 30
accesslog = None
errorlog = "-"
loglevel = os.environ.get("PLACELINK_LOG_LEVEL", "info")
logconfig_dict = json_logconfig(loglevel)


def on_starting(server: object) -> None:
    prepare_multiprocess_directory(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server: object, worker: object) -> None:
    worker_exited(int(getattr(worker, "pid", 0)))
