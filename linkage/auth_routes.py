"""The token endpoint and the scope check: a thin Flask layer over :mod:`linkage.auth`.

``POST /v1/oauth/token`` is Authlib's OAuth 2.0 authorization server with the
client-credentials grant only (RFC 6749 section 4.4). A client authenticates with its secret
(``client_secret_basic`` or ``client_secret_post``) or with a JWT it signs with its Ed25519 key
(``private_key_jwt``, RFC 7523; ``alg: Ed25519``, audience this endpoint's URL or the issuer,
lifetime at most 5 minutes, ``jti`` used once). Its errors are RFC 6749 JSON
(``{"error": "invalid_client"}``), as OAuth clients expect; every other endpoint answers
problem details. :func:`require_scope` is the one gate every other data endpoint calls.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Blueprint, Flask, Response, current_app, g, request
from joserfc import jwt
from joserfc.errors import JoseError

from keys.errors import AccessError
from linkage.auth import OWN_ALGORITHMS, Caller, TokenAuthority, Unauthenticated, bearer_token
from linkage.auth import okp_public_jwk as _jwk
from linkage.clients import Client

TOKEN_PATH = "/v1/oauth/token"  # noqa: S105 (a path, not a secret)
PRIVATE_KEY_JWT = "private_key_jwt"
MAX_ASSERTION_S = 300
auth_api = Blueprint("auth_api", __name__)


class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A registered client as Authlib's server sees it."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        asked = set((scope or "").split()) or set(self.client.scopes)
        return " ".join(sorted(asked & self.client.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client.uses_private_key_jwt:
            return method == PRIVATE_KEY_JWT
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [  # noqa: RUF012 (Authlib's interface)
        "client_secret_basic",
        "client_secret_post",
        PRIVATE_KEY_JWT,
    ]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        asked = set((self.request.payload.scope or "").split())
        if not asked <= self.request.client.client.scopes:
            raise InvalidScopeError(description="a requested scope is not granted to the client")


class _PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, authority: TokenAuthority) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.authority = authority

    def get_audiences(self) -> list[str]:
        return [request.base_url, self.authority.issuer]

    def resolve_client_public_key(self, client: OAuthClient) -> dict[str, Any]:
        if not client.client.uses_private_key_jwt:
            raise InvalidClientError(description="this client authenticates with a secret")
        jwk: dict[str, Any] = _jwk(client.client.public_key).as_dict(private=False)
        return jwk

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=OWN_ALGORITHMS)
        except JoseError:
            raise InvalidClientError(description="the client assertion does not verify") from None
        claims: dict[str, Any] = token.claims
        self.verify_claims(claims)
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int) or not isinstance(expires, int):
            raise InvalidClientError(description="the client assertion needs iat and exp")
        if expires - issued > MAX_ASSERTION_S:
            raise InvalidClientError(description="the client assertion lives too long")
        return claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        return self.authority.first_use_of_assertion(str(jti), float(claims["exp"]))


def _authority() -> TokenAuthority | None:
    authority: TokenAuthority | None = current_app.extensions.get("placelink-auth")
    return authority


def install_auth(app: Flask, authority: TokenAuthority | None) -> None:
    """Wire the token endpoint and the gate into ``app``. ``None``: no client can get a
    token and every gated endpoint denies (fail closed)."""
    app.extensions["placelink-auth"] = authority
    if authority is not None and authority.issues_tokens:
        clients = authority.clients

        def query_client(client_id: str) -> OAuthClient | None:
            found = clients.get(client_id)
            return OAuthClient(found) if found else None

        def generate(grant_type: str, client: OAuthClient, **kwargs: Any) -> dict[str, Any]:
            granted = client.get_allowed_scope(kwargs.get("scope") or "")
            return authority.issue(client.client, frozenset(granted.split()))

        server = AuthorizationServer(app, query_client=query_client, save_token=_no_storage)
        server.register_token_generator("client_credentials", generate)
        server.register_client_auth_method(PRIVATE_KEY_JWT, _PrivateKeyJWT(authority))
        server.register_grant(_ClientCredentials)
        app.extensions["placelink-oauth-server"] = server
    app.register_blueprint(auth_api)


def _no_storage(token: dict[str, Any], oauth_request: Any) -> None:
    """Access tokens are self-contained JWTs; nothing is stored."""


@auth_api.post(TOKEN_PATH)
def post_token() -> Response:
    """The OAuth 2.0 token endpoint (client credentials only)."""
    server: AuthorizationServer | None = current_app.extensions.get("placelink-oauth-server")
    if server is None:
        raise Unauthenticated(
            "this service issues no tokens",
            fix="configure PLACELINK_CLIENTS and PLACELINK_OAUTH_SIGNING_KEY, or use the "
            "external issuer's token endpoint",
        )
    response: Response = server.create_token_response()
    if response.status_code == 401 and "Authorization" not in request.headers:
        # RFC 6749 5.2: 401 with a Basic challenge only answers a client that tried HTTP Basic;
        # to others (client_secret_post, private_key_jwt) invalid_client is a 400. A browser
        # (the dashboard) would otherwise open a password dialog.
        response.status_code = 400
        del response.headers["WWW-Authenticate"]
    return response


def require_caller() -> Caller:
    """The verified caller, whatever its scopes (for what any registered client may read,
    such as the audit log's signed checkpoints); else 401."""
    authority = _authority()
    if authority is None:
        raise Unauthenticated(
            "this service has no OAuth clients configured",
            fix="set PLACELINK_CLIENTS and PLACELINK_OAUTH_SIGNING_KEY (docs/operator.md)",
        )
    caller = authority.verify(bearer_token(request.headers.get("Authorization")))
    g.placelink_caller = caller
    return caller


def require_scope(scope: str, *, policy_id: str | None = None) -> Caller:
    """The verified caller, when its token carries ``scope`` and (where a policy is named) is
    bound to ``policy_id``; else 401 (no valid token) or 403 (not allowed). Every data
    endpoint calls this first: an endpoint that does not is refused by the test that walks
    the app's URL map."""
    return require_caller().require(scope, policy_id=policy_id)


def require_party(caller: Caller, party: str) -> None:
    """403 unless the caller acts for ``party`` (a provider reading its own records)."""
    if caller.party != party:
        raise AccessError(
            "this token acts for another party",
            fix="a provider may read only its own records' links, with its own client",
        )
