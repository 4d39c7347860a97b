"""Hot-spot endpoints: a thin Flask layer over :mod:`linkage.hotspot_desk`.

Every endpoint needs an access token with the scope ``query:hotspots``, bound to the policy in
the path; the query is asked as the token's party (its role in the policy decides).
``POST .../hotspots`` answers in JSON, or in CSV (published figures only) with
``?format=csv`` or ``Accept: text/csv``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from keys.errors import InputError
from linkage.auth_routes import require_scope
from linkage.hotspot_desk import HotspotDesk
from linkage.query_log import analyst_id

QUERY = "query:hotspots"

hotspot_api = Blueprint("hotspot_api", __name__)


def _desk() -> HotspotDesk:
    desk: HotspotDesk = current_app.extensions["placelink-hotspots"]
    return desk


def _wants_csv() -> bool:
    if request.args.get("format") == "csv":
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv" and request.accept_mimetypes["application/json"] == 0


@hotspot_api.get("/v1/policies")
def get_policies() -> Response:
    """The policies the caller's token is bound to."""
    caller = require_scope(QUERY)
    desk = _desk()
    listed = [
        {"policy_id": p.policy_id, "version": p.version, "title": str(p.document.get("title", ""))}
        for p in desk.policies.values()
        if p.policy_id in caller.policies
    ]
    return jsonify({"policies": listed})


@hotspot_api.post("/v1/policies/<policy_id>/hotspots")
def post_hotspots(policy_id: str) -> Response:
    analyst = analyst_id(require_scope(QUERY, policy_id=policy_id).client_id)
    query = request.get_json(silent=True)
    if query is None and request.get_data(cache=True):
        raise InputError("the hot-spot query is not JSON", fix="send a JSON object")
    answer = _desk().answer(analyst, policy_id, {} if query is None else query)
    if _wants_csv():
        response = Response(answer.to_csv(), mimetype="text/csv")
        name = f"hotspots-{policy_id}-{answer.query.kind}-{answer.query_id}.csv"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    return jsonify(answer.to_json())


@hotspot_api.get("/v1/policies/<policy_id>/hotspots/options")
def get_hotspot_options(policy_id: str) -> Response:
    require_scope(QUERY, policy_id=policy_id)
    return jsonify(_desk().options(policy_id))


@hotspot_api.get("/v1/policies/<policy_id>/privacy-budget")
def get_privacy_budget(policy_id: str) -> Response:
    analyst = analyst_id(require_scope(QUERY, policy_id=policy_id).client_id)
    budget = _desk().budget(analyst, policy_id)
    return jsonify({"policy_id": policy_id, "analyst": analyst, "budget": budget})
