"""app_proxy's endpoints: every method, forwarded to the application's backend by the
transfer APP_PROXY_TRANSFER chose; and each application's public signing keys."""

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Response, request
from flask.views import MethodView
from webargs.flaskparser import abort

from .. import database
from ..api import API_PREFIX, Blueprint
from ..applications.service import proxy_target
from ..auth.authentication import authenticated_user
from ..observability import current_request_id
from ..runtime import current_settings
from . import keys, transfer
from .forwarding import URL_PREFIX, Caller, Inbound, Refused, plan, refuse

blp = Blueprint(
    "app_proxy",
    __name__,
    url_prefix=URL_PREFIX,
    description="Forwards authenticated calls to an application's backend (config.web_url).",
)


def caller(user_id: int) -> Caller:
    """This request's caller. The request target is the raw one the server kept
    (RAW_URI, REQUEST_URI); a server that keeps none: the decoded one, encoded again."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        query = request.query_string.decode("latin-1")
        raw = quote(request.path, safe="/;=,:@!$&'()*+~") + (f"?{query}" if query else "")
    return Caller(
        user_id=user_id,
        method=request.method,
        target=raw,
        headers=request.headers,
        remote_addr=request.remote_addr or "",
        host=request.host,
        scheme=request.scheme,
        request_id=current_request_id() or "",
        content_length=request.content_length,
    )


def inbound() -> Inbound:
    return Inbound(request.stream, request.environ)


def proxied_method(method: str, summary: str) -> Callable[..., Any]:
    """One HTTP method of the proxy, documented in OpenAPI: the backend's own answer,
    or this service's errors. `path` only routes; the raw target is what is forwarded."""

    def view(self: MethodView, app_id: int, path: str) -> Response:
        web_url = proxy_target(app_id)
        try:
            upstream = plan(
                caller(authenticated_user().id),
                app_id,
                web_url,
                current_settings(),
                keys.signing_keys,
            )
        except Refused as refused:
            refuse(app_id, refused)
        database.release()  # however the token and target were found: a slow backend holds none
        return transfer.current().forward(upstream, inbound())

    view.__name__ = method
    view.__doc__ = summary
    view = blp.documents_errors(400, 401, 404, 502, 503, 504)(view)
    documented: Callable[..., Any] = blp.response(
        200, description="The backend's own answer: any status, headers and body, streamed."
    )(view)
    return documented


# OpenAPI 3.0 has no allowReserved for path parameters: generated clients that encode
# "/" (openapi-python-client sends orders%2F7) reach the backend at orders%2F7.
PROXIED_PATH = {
    "in": "path",
    "name": "path",
    "required": True,
    "schema": {"type": "string"},
    "example": "orders/7",
    "description": "The path under the application's web_url, sent as it is: `/` "
    "unencoded (orders/7); percent-encodings reach the backend unchanged.",
}


@blp.route("/<id:app_id>/", defaults={"path": ""})
@blp.route("/<id:app_id>/<path:path>", parameters=[PROXIED_PATH])
class AppProxy(MethodView):
    get = proxied_method("get", "Forward a GET to the application's backend")
    head = proxied_method("head", "Forward a HEAD to the application's backend")
    post = proxied_method("post", "Forward a POST to the application's backend (body streamed)")
    put = proxied_method("put", "Forward a PUT to the application's backend (body streamed)")
    patch = proxied_method("patch", "Forward a PATCH to the application's backend (body streamed)")
    delete = proxied_method("delete", "Forward a DELETE to the application's backend")
    options = proxied_method("options", "Forward an OPTIONS to the application's backend")


keys_blp = Blueprint(
    "app_proxy_keys",
    __name__,
    url_prefix=f"{API_PREFIX}/app_proxy_keys",
    description="The public keys an application's backend verifies app_proxy's ed25519 "
    "signatures with.",
)


@keys_blp.route("/<id:app_id>/")
class PublicKeys(MethodView):
    @keys_blp.doc(security=[], operationId="retrieveAppProxyKeys")
    @keys_blp.response(
        200,
        description="A JSON Web Key Set (RFC 7517), `application/jwk-set+json`: the "
        "application's ed25519 keys that sign or will sign, `kid` the signature's keyid "
        "(HMAC keys are never published). Cacheable for 5 minutes, with an ETag.",
    )
    @keys_blp.documents_errors(404)
    def get(self, app_id: int) -> Response:
        """An application's public signing keys (JWKS, no authentication)"""
        if not keys.exists(app_id):
            abort(404, message=f"Application {app_id} does not exist.")
        response = Response(keys.jwks(app_id), mimetype="application/jwk-set+json")
        response.set_etag(keys.etag(response.get_data()))
        response.cache_control.public = True
        response.cache_control.max_age = keys.JWKS_MAX_AGE
        response.make_conditional(request)  # (a 304 for an If-None-Match naming it)
        return response
