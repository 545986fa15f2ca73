"""The one JSON error shape, and the handlers that give every failure that shape, so
no request ever sees HTML or a traceback."""

import http
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask import Flask, Response, jsonify, request
from flask_smorest import Api as BaseApi
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from .. import database
from .urls import API_PREFIX

log = logging.getLogger(__name__)


class ErrorSchema(ma.Schema):
    code = ma.fields.Integer(required=True, metadata={"description": "HTTP status code"})
    status = ma.fields.String(required=True, metadata={"description": "HTTP status name"})
    message = ma.fields.String(metadata={"description": "What went wrong"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        metadata={
            "description": "On 400: location (json, query) → field → messages",
        },
    )


def error_payload(
    code: int, message: str | None = None, errors: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"code": code, "status": http.HTTPStatus(code).phrase}
    if message:
        payload["message"] = message
    if errors:
        payload["errors"] = errors
    return payload


def error_response(
    code: int, message: str | None = None, errors: Mapping[str, Any] | None = None
) -> Response:
    response = jsonify(error_payload(code, message, errors))
    response.status_code = code
    return response


def default_message(error: HTTPException) -> str:
    """This service's words for a refusal raised without a message of its own (Werkzeug's
    descriptions speak of browsers and spelling)."""
    if error.code == 404:
        return (
            f"Nothing is at {request.path}. The API is under {API_PREFIX}/: its "
            f"documentation is at {API_PREFIX}/docs/, the OpenAPI document at "
            f"{API_PREFIX}/openapi.json."
        )
    if error.code == 405:
        allowed = dict(error.get_headers()).get("Allow", "")
        return f"{request.method} is not allowed on {request.path}; allowed: {allowed}."
    if error.code == 413:
        return f"The request body is too large: at most {request.max_content_length} bytes."
    if error.code == 412:
        return "The precondition you sent (If-Match, If-None-Match) does not hold."
    if error.code == 400:
        return "The request is malformed."
    return http.HTTPStatus(error.code or 500).phrase + "."


class Api(BaseApi):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(
        self, error: HTTPException
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        # flask-smorest builds a fresh response: keep the headers the exception
        # carries (Allow on 405, WWW-Authenticate on 401).
        headers = {
            key: value
            for key, value in error.get_headers()
            if key.lower() not in ("content-type", "content-length")
        }
        data = getattr(error, "data", None) or {}
        headers.update(data.get("headers") or {})
        errors = data.get("errors") or data.get("messages")
        message = data.get("message")
        if not message and errors:
            message = "The request is invalid: see errors."
        elif not message:  # (raised without one: Werkzeug's words, unless given its own)
            given = error.description != type(error).description
            message = error.description if given else default_message(error)
        assert error.code is not None  # (Flask hands error handlers only exceptions with a code)
        payload = error_payload(error.code, message, errors)
        return payload, error.code, headers


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DataError)
    @app.errorhandler(IntegrityError)
    def database_refused_value(error: DataError | IntegrityError) -> Response:
        # Validation rejects what it knows of; this catches whatever the database
        # still refuses, so a bad value is the caller's 400, never our 500.
        log.info("database refused a value: %s", error.orig)
        return error_response(
            400,
            "The database could not store a value of this request.",
            {"json": {"_schema": [str(error.orig).splitlines()[0]]}},
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    @app.errorhandler(sqlite3.OperationalError)  # (the SQLite change probe's: cache.py)
    def database_unavailable(error: Exception) -> Response:
        log.error("database unavailable: %s", error)
        response = error_response(503, "The database is unavailable; try again shortly.")
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(InternalError)
    def database_internal_error(error: InternalError) -> Response:
        # A read-only transaction (a standby met during a failover) refuses writes until
        # a connection reaches the primary again: unavailable for now, not our failure.
        if database.refuses_writes(error):
            return database_unavailable(error)
        return unexpected_error(error)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "An unexpected error occurred.")
