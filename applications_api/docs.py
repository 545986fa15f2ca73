"""The API's documentation: where it is (`/` and `/api/v1/`), Swagger UI 5's assets
(from the swagger-ui-py package), served by this app so the docs work without internet,
its favicon, and the operation ids client generators name their functions after."""

from pathlib import Path
from typing import Any

import swagger_ui
from apispec import BasePlugin
from flask import Blueprint, Response, jsonify, send_from_directory

from .api import API_PREFIX
from .app_proxy.forwarding import URL_PREFIX

SWAGGER_UI_ASSETS_URL = f"{API_PREFIX}/docs/assets/"
SWAGGER_UI_DIR = Path(swagger_ui.__file__).parent / "static"

assets = Blueprint("swagger_ui_assets", __name__)
index = Blueprint("index", __name__)


@index.route("/")
@index.route(f"{API_PREFIX}/")
def where_things_are() -> Response:
    """Where a newcomer's first request lands: what is here and where its docs are."""
    return jsonify(
        {
            "title": "Applications API",
            "api": f"{API_PREFIX}/",
            "documentation": f"{API_PREFIX}/docs/",
            "openapi": f"{API_PREFIX}/openapi.json",
            "healthcheck": f"{API_PREFIX}/healthcheck/",
            "authentication": "Authorization: Token <key> "
            "(flask --app wsgi create-token USERNAME [--staff])",
        }
    )


@assets.route(f"{SWAGGER_UI_ASSETS_URL}<path:filename>")
def swagger_ui_asset(filename: str) -> Response:
    return send_from_directory(SWAGGER_UI_DIR, filename, max_age=86400)


@assets.route("/favicon.ico")
def favicon() -> Response:
    return send_from_directory(
        SWAGGER_UI_DIR, "favicon-32x32.png", max_age=86400, mimetype="image/png"
    )


class OperationIds(BasePlugin):
    """Every operation has an id, declared on its view (`@blp.doc(operationId=...)`);
    app_proxy's are `proxyGet`, `proxyPost`, … (`proxyGetBase`, … for the application's
    base URL, the route without {path}: one view serves both)."""

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        assert path is not None and operations is not None
        for method, operation in operations.items():
            if path.startswith(f"{URL_PREFIX}/"):
                base = "" if path.endswith("{path}") else "Base"
                operation["operationId"] = f"proxy{method.capitalize()}{base}"
            elif "operationId" not in operation:
                raise ValueError(
                    f"{method.upper()} {path} declares no operationId: give its view "
                    "@blp.doc(operationId=...), the name client generators use"
                )
