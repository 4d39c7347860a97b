"""Gunicorn settings for the linkage service.

Run:  PLACELINK_DATABASE_URL=postgresql+psycopg://... \
      PLACELINK_POLICIES=/etc/placelink/policy.yaml \
      PLACELINK_CLIENTS=/etc/placelink/clients.yaml \
      PLACELINK_OAUTH_SIGNING_KEY=/etc/placelink/oauth-signing.pem \
      gunicorn -c deploy/gunicorn.conf.py 'linkage.app:app_from_environment()'

TLS belongs at a reverse proxy in front, or set certfile/keyfile here. Workers
(PLACELINK_WORKERS), JSON logs (PLACELINK_LOG_LEVEL) and multi-process metrics
(PROMETHEUS_MULTIPROC_DIR) are the settings both services share: policies/gunicorn_settings.py.
"""

import os

from policies.gunicorn_settings import *  # noqa: F403 (workers, logs, metrics hooks)

bind = os.environ.get("PLACELINK_BIND", "127.0.0.1:8080")
# Uploads are streamed bodies; request lines and headers stay small (the manifest is ~1 kB).
limit_request_field_size = 16384
