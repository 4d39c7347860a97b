"""Gunicorn settings for a gateway node's own API (the agency's side; docs/agency-it.md).

Run:  PLACELINK_NODE_SOURCE=police PLACELINK_NODE_INPUT=/srv/extract.csv ... \
      gunicorn -c deploy/gateway.gunicorn.conf.py 'gateway.app:app_from_environment()'
(or `placelink gateway serve`, which checks the settings first and runs the same).

The API is for the agency's own staff: it binds to loopback by default; put TLS and the
agency's network controls in front (a reverse proxy), or set certfile/keyfile here.
"""

import os

bind = os.environ.get("PLACELINK_BIND", "127.0.0.1:8090")
workers = int(os.environ.get("PLACELINK_WORKERS", "2"))
worker_class = "gthread"
threads = 4
# A publication is synchronous: encoding a large extract and uploading it can take minutes.
# Two workers never publish at once: publishing holds a lock file in the state folder.
timeout = 600
graceful_timeout = 30
accesslog = "-"
# Never log query strings or headers: they may carry tokens or record IDs (?record_id=).
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = "info"
