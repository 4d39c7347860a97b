"""Gunicorn settings for the linkage service (and, with its own entry point, the gateway node).

Run:  PLACELINK_DATABASE_URL=postgresql+psycopg://... \
      PLACELINK_POLICIES=/etc/placelink/policy.yaml \
      PLACELINK_CLIENTS=/etc/placelink/clients.yaml \
      PLACELINK_OAUTH_SIGNING_KEY=/etc/placelink/oauth-signing.pem \
      gunicorn -c deploy/gunicorn.conf.py 'linkage.app:app_from_environment()'

TLS belongs at a reverse proxy in front, or set certfile/keyfile here. Logs are JSON lines on
stderr (policies/log_lines.py); gunicorn's own access log is off: the app logs each request
itself with its route template, never the raw path, query string or headers. Metrics: each
worker writes its samples under PROMETHEUS_MULTIPROC_DIR (a fresh temporary folder unless set;
emptied at start) and /metrics on any worker answers for all of them.
"""

import os
import tempfile

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="placelink-metrics-"))

# Imported after the metrics folder is set: prometheus_client reads it on import.
from policies.log_lines import logconfig_dict as json_logconfig
from policies.telemetry import prepare_multiprocess_directory, worker_exited

bind = os.environ.get("PLACELINK_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("PLACELINK_WORKERS", "2"))
worker_class = "gthread"
threads = 4
# Link runs over a whole policy can take minutes at scale.
timeout = 600
graceful_timeout = 30
# Uploads are streamed bodies; request lines and headers stay small (the manifest is ~1 kB).
limit_request_field_size = 16384
accesslog = None
errorlog = "-"
loglevel = os.environ.get("PLACELINK_LOG_LEVEL", "info")
logconfig_dict = json_logconfig(loglevel)


def on_starting(server: object) -> None:
    prepare_multiprocess_directory(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server: object, worker: object) -> None:
    worker_exited(int(getattr(worker, "pid", 0)))
