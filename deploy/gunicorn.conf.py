"""Gunicorn settings for the linkage service.

Run:  PLACELINK_DATABASE_URL=postgresql+psycopg://... \
      PLACELINK_POLICIES=/etc/placelink/policy.yaml \
      PLACELINK_CLIENTS=/etc/placelink/clients.yaml \
      PLACELINK_OAUTH_SIGNING_KEY=/etc/placelink/oauth-signing.pem \
      gunicorn -c deploy/gunicorn.conf.py 'linkage.app:app_from_environment()'

TLS belongs at a reverse proxy in front, or set certfile/keyfile here.
"""

import os

bind = os.environ.get("PLACELINK_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("PLACELINK_WORKERS", "2"))
worker_class = "gthread"
threads = 4
# Link runs over a whole policy can take minutes at scale.
timeout = 600
graceful_timeout = 30
# Uploads are streamed bodies; request lines and headers stay small (the manifest is ~1 kB).
limit_request_field_size = 16384
accesslog = "-"
# Never log query strings or headers: they may carry tokens.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = "info"
