from flask import current_app, g
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import bindparam, select

from ..applications.models import Application
from ..applications.schemas import is_web_url
from ..applications.service import MAX_ID
from ..auth.authentication import require_token
from ..extensions import Blueprint, end_reads, reads
from .forwarding import URL_PREFIX, plan
from .nginx_transfer import NginxTransfer
from .python_transfer import PythonTransfer

blp = Blueprint(
    "app_proxy",
    __name__,
    url_prefix=URL_PREFIX,
    description="Forwards authenticated calls to an application's backend (config.web_url).",
)
blp.before_request(require_token)


def init_transfer(app, settings):
    """The transfer APP_PROXY_TRANSFER chose: this process, or nginx."""
    transfer = (NginxTransfer if settings.proxy_transfer == "nginx" else PythonTransfer)(settings)
    transfer.init_app(app)
    app.extensions["app_proxy_transfer"] = transfer


PROXIED_CONFIG = select(Application.config).where(
    Application.id == bindparam("app_id"),
    Application.is_active.is_(True),
    Application.is_proxy_available.is_(True),
)


def proxied_web_url(app_id):
    """The application's web_url, or 404 unless it exists, is active, proxy-available
    and has a valid web_url.

    At most one query, none while the answer is cached: a found web_url is kept until
    an application changes (cache.py: every worker hears of it at once) or
    APP_PROXY_CACHE_SECONDS pass.
    """
    cache = current_app.extensions["app_proxy_targets"]
    web_url = cache.get(app_id)
    if web_url:
        return web_url
    generation = cache.generation()
    row = None
    if app_id <= MAX_ID:
        row = reads().execute(PROXIED_CONFIG, {"app_id": app_id}).first()
    web_url = (row.config or {}).get("web_url") if row else None
    if not is_web_url(web_url):
        abort(404, message=f"Application {app_id} is not available through app_proxy.")
    cache.put(app_id, web_url, generation)
    return web_url


def proxied_method(method, summary):
    """One HTTP method of the proxy, documented in OpenAPI: the backend's own answer,
    or this service's errors. `path` only routes; the raw target is what is forwarded."""

    def view(self, app_id, path):
        target = plan(app_id, proxied_web_url(app_id), g.user.id)
        end_reads()  # however the token and target were found: a slow backend holds none
        return current_app.extensions["app_proxy_transfer"].forward(app_id, target)

    view.__name__ = method
    view.__doc__ = summary
    view = blp.documents_errors(400, 401, 404, 502, 503, 504)(view)
    return blp.response(
        200, description="The backend's own answer: any status, headers and body, streamed."
    )(view)


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


@blp.route("/<int:app_id>/", defaults={"path": ""})
@blp.route("/<int:app_id>/<path:path>", parameters=[PROXIED_PATH])
class AppProxy(MethodView):
    get = proxied_method("get", "Forward a GET to the application's backend")
    head = proxied_method("head", "Forward a HEAD to the application's backend")
    post = proxied_method("post", "Forward a POST to the application's backend (body streamed)")
    put = proxied_method("put", "Forward a PUT to the application's backend (body streamed)")
    patch = proxied_method("patch", "Forward a PATCH to the application's backend (body streamed)")
    delete = proxied_method("delete", "Forward a DELETE to the application's backend")
    options = proxied_method("options", "Forward an OPTIONS to the application's backend")
