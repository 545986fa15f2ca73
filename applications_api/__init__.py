"""Applications registry and app proxy service."""

import logging
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .settings import INSTANCE_DIR, load_settings

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(env=None):
    """Build the WSGI app from environment variables (or the `env` mapping, in tests)."""
    settings = load_settings(env)
    app = Flask(__name__, static_folder=None, instance_path=str(INSTANCE_DIR))
    app.config.update(_flask_config(settings))
    app.config["SETTINGS"] = settings
    app.json.sort_keys = False
    _configure_logging(settings)

    from . import observability
    from .cache import ChangeFeed, FreshCache
    from .docs import OperationIds
    from .docs import assets as docs_assets
    from .errors import register_error_handlers
    from .extensions import Api, db, end_reads, install_sqlite_pragmas, migrate

    if settings.database_url.startswith("sqlite"):
        Path(app.instance_path).mkdir(exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    app.teardown_appcontext(end_reads)
    with app.app_context():
        install_sqlite_pragmas(db.engine)
    app.url_map.strict_slashes = False  # /applications/2 is /applications/2/, no redirect
    app.url_map.merge_slashes = False  # /api/v1//applications/ is a 404, not a redirect
    api = Api(app, spec_kwargs={"extra_plugins": [OperationIds()]})
    register_error_handlers(app)
    observability.init_app(app)
    if settings.trusted_proxies:
        # X-Forwarded-* are believed only as far as the proxies we run set them.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)
    changes = ChangeFeed(settings.database_url, settings.database_connect_timeout)
    app.extensions["token_cache"] = FreshCache(changes, "auth", settings.auth_cache_seconds)
    app.extensions["app_proxy_targets"] = FreshCache(
        changes, "applications", settings.proxy_cache_seconds
    )

    from .app_proxy.cli import commands as app_proxy_commands
    from .app_proxy.views import blp as app_proxy_blp
    from .app_proxy.views import init_transfer
    from .applications.cli import commands as application_commands
    from .applications.views import blp as applications_blp
    from .auth.cli import commands as auth_commands
    from .health.views import blp as health_blp

    api.register_blueprint(applications_blp)
    api.register_blueprint(app_proxy_blp)
    init_transfer(app, settings)
    api.register_blueprint(health_blp)
    app.register_blueprint(docs_assets)
    app.register_blueprint(auth_commands)
    app.register_blueprint(application_commands)
    app.register_blueprint(app_proxy_commands)
    return app


def _flask_config(settings):
    from .docs import SWAGGER_UI_ASSETS_URL
    from .extensions import engine_options

    return {
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(settings),
        "MAX_BODY_BYTES": settings.max_body_bytes,
        "API_TITLE": "Applications",
        "API_VERSION": "1",
        "OPENAPI_VERSION": "3.1.0",  # (apispec writes nullable fields as 3.1 type lists)
        "OPENAPI_URL_PREFIX": "/api/v1",
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


def _configure_logging(settings):
    """The service's logs, request lines included, as JSON lines on stderr."""
    from .observability import JsonFormatter

    logger = logging.getLogger(__name__)
    logger.setLevel(settings.log_level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
