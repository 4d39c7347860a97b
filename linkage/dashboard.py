"""The dashboard's routes: a thin Flask layer over :mod:`linkage.dashboard_page`.

The page and its assets hold no data and need no token; every figure on it comes from the
hot-spot API, which denies anyone without an access token carrying ``query:hotspots``. The
analyst signs in with their OAuth client id and secret: the page trades them at this
service's token endpoint for a short-lived access token kept in session storage (the secret
is not kept). A strict Content-Security-Policy
lets the page load only its own script and talk only to this service.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort

from linkage.dashboard_page import ASSET_TYPES, asset, content_security_policy, live_page

dashboard = Blueprint("dashboard", __name__)


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@dashboard.get("/dashboard")
def get_dashboard() -> Response:
    return _secured(Response(live_page("/dashboard/assets"), mimetype="text/html"))


@dashboard.get("/dashboard/assets/<name>")
def get_asset(name: str) -> Response:
    if name not in ASSET_TYPES:
        abort(404)
    return _secured(Response(asset(name), mimetype=ASSET_TYPES[name]))
