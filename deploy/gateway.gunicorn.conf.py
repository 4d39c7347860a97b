"""Gunicorn settings for a gateway node's own API (the agency's side; docs/agency-it.md).

Run:  PLACELINK_NODE_SOURCE=police PLACELINK_NODE_INPUT=/srv/extract.csv ... \
      gunicorn -c deploy/gateway.gunicorn.conf.py 'gateway.app:app_from_environment()'
(or `placelink gateway serve`, which checks the settings first and runs the same settings).

The API is for the agency's own staff: it binds to loopback by default; put TLS and the
agency's network controls in front (a reverse proxy), or set certfile/keyfile here. Two
workers never publish at once: publishing holds a lock file in the state folder. Workers
(PLACELINK_WORKERS), JSON logs (PLACELINK_LOG_LEVEL) and multi-process metrics
(PROMETHEUS_MULTIPROC_DIR) are the settings both services share: policies/gunicorn_settings.py.
"""

import os

from policies.gunicorn_settings import *  # noqa: F403 (workers, logs, metrics hooks)

bind = os.environ.get("PLACELINK_BIND", "127.0.0.1:8090")
