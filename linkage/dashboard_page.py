"""The dashboard page, free of any web framework: the live shell the service serves, and the
self-contained snapshot ``placelink demo`` writes (assets inlined, published answers embedded).

Assets ship as package data (``linkage/static``, ``linkage/templates``); the page fetches
nothing from anywhere but the service it came from, and a snapshot fetches nothing at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from typing import Any

ASSETS = ("dashboard.js", "dashboard.css")
ASSET_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def asset(name: str) -> str:
    """The text of one bundled asset (only the names in ASSETS exist)."""
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files("linkage").joinpath("static", name).read_text(encoding="utf-8")


def _template() -> str:
    return resources.files("linkage").joinpath("templates", "dashboard.html").read_text("utf-8")


def style_hash() -> str:
    """The CSP source for the page's inline stylesheet."""
    digest = hashlib.sha256(asset("dashboard.css").encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def content_security_policy() -> str:
    return (
        "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' blob: data:; "
        f"style-src {style_hash()}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def live_page(assets_path: str) -> str:
    """The shell: sign-in form and empty figures; every figure comes from the API."""
    page = _template().replace("__CSS__", asset("dashboard.css")).replace("__SNAPSHOT__", "")
    return page.replace("__ASSETS__", assets_path)


def _embedded_json(data: Any) -> str:
    text = json.dumps(data, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script id="snapshot" type="application/json">{text}</script>'


def snapshot_page(answers: dict[str, Any]) -> str:
    """A static page showing ``answers`` ({"table", "trend", "cooccurrence"}: the API's JSON
    answers, published figures only), with the script inlined."""
    page = _template().replace("__CSS__", asset("dashboard.css"))
    page = page.replace("__SNAPSHOT__", _embedded_json(answers))
    script = asset("dashboard.js").replace("</", "<\\/")
    return page.replace(
        '<script src="__ASSETS__/dashboard.js"></script>', f"<script>{script}</script>"
    )
