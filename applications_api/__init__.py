"""Applications registry and app proxy service."""

import logging
from collections.abc import Callable, Mapping
from functools import lru_cache
from inspect import iscoroutinefunction
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .settings import INSTANCE_DIR, Settings, SettingsError, load_settings

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the WSGI app from environment variables (or the `env` mapping, in tests)."""
    settings = load_settings(env)
    app = _Flask(__name__, static_folder=None, instance_path=str(INSTANCE_DIR))
    app.config.update(_flask_config())
    app.json.sort_keys = False  # type: ignore[attr-defined]
    _configure_logging(settings)

    from . import api, database, observability, runtime
    from .app_proxy import transfer as app_proxy_transfer
    from .app_proxy import views as app_proxy
    from .app_proxy.cli import commands as app_proxy_commands
    from .applications.cli import commands as application_commands
    from .applications.views import blp as applications_blp
    from .auth import authentication
    from .auth.cli import commands as auth_commands
    from .cache import ChangeFeed, FeedIsDeaf, FreshCache
    from .docs import OperationIds
    from .docs import assets as docs_assets
    from .docs import index as docs_index
    from .health.views import blp as health_blp

    if settings.database_url.startswith("sqlite"):
        Path(app.instance_path).mkdir(exist_ok=True)
    database.init_app(app, settings, MIGRATIONS_DIR)
    changes = ChangeFeed(
        settings.database_url, settings.database_listen_url, settings.database_connect_timeout
    )
    try:
        changes.check_hearing()
    except FeedIsDeaf as error:
        raise SettingsError(f"DATABASE_LISTEN_URL: {error}") from None
    runtime.init_app(
        app,
        runtime.Runtime(
            settings=settings,
            token_cache=FreshCache(changes, "auth", settings.auth_cache_seconds),
            proxy_targets=FreshCache(changes, "applications", settings.proxy_cache_seconds),
            proxy_keys=FreshCache(changes, "applications", settings.proxy_cache_seconds),
        ),
    )
    rest = api.init_app(app, spec_kwargs={"extra_plugins": [OperationIds()]})
    observability.init_app(app)  # (first: every answer, a 401 too, has its request id)
    authentication.init_app(app)
    if settings.trusted_proxies:
        # X-Forwarded-* are believed only as far as the proxies we run set them.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )

    rest.register_blueprint(applications_blp)
    rest.register_blueprint(app_proxy.blp)
    rest.register_blueprint(app_proxy.keys_blp)
    app_proxy_transfer.init_app(app, settings)
    rest.register_blueprint(health_blp)
    app.register_blueprint(docs_assets)
    app.register_blueprint(docs_index)
    app.register_blueprint(auth_commands)
    app.register_blueprint(application_commands)
    app.register_blueprint(app_proxy_commands)
    return app


class _Flask(Flask):
    """Flask asks whether each hook and each of flask-smorest's wrappers of a view is a
    coroutine, about sixteen inspections a request; the answer for a function is kept."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # (a bound method is new on every request; its function is not)
        if _is_coroutine(getattr(func, "__func__", func)):
            return self.async_to_sync(func)
        return func


# Bounded: a function made per request (after_this_request) must not pile up here.
_is_coroutine = lru_cache(maxsize=1024)(iscoroutinefunction)


def _flask_config() -> dict[str, Any]:
    from .api import API_PREFIX
    from .docs import SWAGGER_UI_ASSETS_URL

    return {
        "API_TITLE": "Applications",
        "API_VERSION": "1",
        "OPENAPI_VERSION": "3.1.0",  # (apispec writes nullable fields as 3.1 type lists)
        "OPENAPI_URL_PREFIX": API_PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs/",
        "OPENAPI_SWAGGER_UI_URL": SWAGGER_UI_ASSETS_URL,
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Register the applications that plug into the platform, "
                "and reach their backends through app_proxy.",
            },
            "components": {
                "securitySchemes": {
                    "Token": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "Authorization",
                        "description": "`Token <key>` (the bare key is accepted too). "
                        "Create one with `flask --app wsgi create-token USERNAME [--staff]`.",
                    }
                }
            },
            "security": [{"Token": []}],
        },
    }


def _configure_logging(settings: Settings) -> None:
    """The service's logs, request lines included, as JSON lines on stderr."""
    from .observability import JsonFormatter

    # No caller lookup per record (a walk up the stack): no line here prints a source
    # file or line (logging's documented optimization).
    logging._srcfile = None
    logger = logging.getLogger(__name__)
    logger.setLevel(settings.log_level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
