"""The HTTP contract every endpoint shares, built on flask-smorest along its own seams:
where the API is and its id converter (urls), argument parsing (arguments), pagination,
conditional requests (etag), the Blueprint that combines them, and the one JSON error
shape (errors)."""

from typing import Any

from flask import Flask

from .blueprint import Blueprint
from .errors import Api, error_payload, error_response, register_error_handlers
from .pagination import PagedArgsSchema
from .urls import API_PREFIX, MAX_ID, IdConverter, id_schema

__all__ = [
    "API_PREFIX",
    "MAX_ID",
    "Api",
    "Blueprint",
    "PagedArgsSchema",
    "error_payload",
    "error_response",
    "init_app",
]


def init_app(app: Flask, **api_kwargs: Any) -> Api:
    """The app's Api, its id converter and its error handlers. Call before registering
    blueprints (their routes use the converter)."""
    app.url_map.converters["id"] = IdConverter
    app.url_map.strict_slashes = False  # /applications/2 is /applications/2/, no redirect
    app.url_map.merge_slashes = False  # /api/v1//applications/ is a 404, not a redirect
    api = Api(app, **api_kwargs)
    api.register_converter(IdConverter, id_schema)
    register_error_handlers(app)
    return api
