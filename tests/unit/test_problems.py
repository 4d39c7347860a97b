"""The problem types both services answer with (policies/problems.py): every error class of
each service maps to the status and stable ``type`` its clients see (pinned here, as published),
no type is shadowed by an earlier, wider one, and the body and headers are RFC 9457's."""

from __future__ import annotations

import pytest
from flask import Flask, make_response

from gateway.app import PROBLEMS as NODE_PROBLEMS
from gateway.local_links import LinkageServiceError
from gateway.publications import PublicationInProgress
from gateway.staff_access import NotAuthenticated
from keys import errors
from linkage.app import PROBLEMS as SERVICE_PROBLEMS
from linkage.auth import Unauthenticated
from linkage.hotspot_desk import PrivacyBudgetSpent
from linkage.intake import ReplayError
from policies.problems import (
    PROBLEM_BASE,
    ProblemCatalogue,
    problem_body,
    problem_parts,
)

SERVICE_CHALLENGE = 'Bearer realm="placelink", error="invalid_token"'
# (error, status, slug, WWW-Authenticate) as the services have published them; each lists its
# own errors, then the common ones, and anything else is a 500 "error".
COMMON = [
    (errors.AccessError, 403, "forbidden", ""),
    (errors.PolicyError, 403, "policy-refused", ""),
    (errors.InputError, 422, "invalid-input", ""),
    (errors.StorageError, 503, "storage-unavailable", ""),
    (errors.ConfigError, 500, "configuration", ""),
    (errors.PlacelinkError, 500, "error", ""),
]
SERVICE = [
    (ReplayError, 409, "replay", ""),
    (PrivacyBudgetSpent, 403, "privacy-budget-spent", ""),
    (Unauthenticated, 401, "unauthenticated", SERVICE_CHALLENGE),
    (errors.KeyMaterialError, 401, "bad-signature", ""),
]
NODE = [
    (NotAuthenticated, 401, "unauthorized", 'Bearer realm="placelink-node"'),
    (PublicationInProgress, 409, "publication-in-progress", ""),
    (LinkageServiceError, 502, "linkage-service", ""),
    (errors.KeyMaterialError, 500, "key-material", ""),
]
CASES = [(SERVICE_PROBLEMS, *row) for row in SERVICE + COMMON]
CASES += [(NODE_PROBLEMS, *row) for row in NODE + COMMON]


@pytest.mark.parametrize(("catalogue", "error", "status", "slug", "challenge"), CASES)
def test_each_error_answers_its_published_type(
    catalogue: ProblemCatalogue, error: type[errors.PlacelinkError], status: int, slug: str,
    challenge: str,
) -> None:  # fmt: skip
    body, sent_status, headers = catalogue.parts(error("the message", fix="the fix"))
    assert sent_status == status == body["status"]
    assert body == {"type": PROBLEM_BASE + slug, "title": "the message", "status": status,
                    "detail": "the fix"}  # fmt: skip
    assert headers.get("WWW-Authenticate", "") == challenge
    assert headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("catalogue", [SERVICE_PROBLEMS, NODE_PROBLEMS])
def test_no_type_is_shadowed_by_a_wider_one_before_it(catalogue: ProblemCatalogue) -> None:
    """First match wins: a parent listed before its subclass would swallow the subclass."""
    types = list(catalogue.types)
    for index, later in enumerate(types):
        wider = [t.slug for t in types[:index] if issubclass(later.error, t.error)]
        assert wider == [], f"{later.slug} is shadowed by {wider}"


def test_the_flask_response_is_the_problem_as_built() -> None:
    """What both apps send: the body as JSON, the problem media type, extension members."""
    with Flask("t").app_context():
        response = make_response(
            problem_parts(502, "publication-failed", "t", "f", publication_id="p")
        )
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "WWW-Authenticate" not in response.headers
    assert response.get_json() == problem_body(502, "publication-failed", "t", "f",
                                               publication_id="p")  # fmt: skip
    assert response.get_json()["type"] == "https://placelink.example/problems/publication-failed"
