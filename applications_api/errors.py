"""The one JSON error shape, for every status, and the handlers that produce it.

HTTP errors raised with flask-smorest's `abort` are shaped by `Api.handle_http_exception`
(extensions.py); the handlers here turn everything else into the same shape, so no
request ever sees HTML or a traceback.
"""

import http
import logging

import marshmallow as ma
from flask import jsonify
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

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


def error_payload(code, message=None, errors=None):
    payload = {"code": code, "status": http.HTTPStatus(code).phrase}
    if message:
        payload["message"] = message
    if errors:
        payload["errors"] = errors
    return payload


def error_response(code, message=None, errors=None):
    response = jsonify(error_payload(code, message, errors))
    response.status_code = code
    return response


def register_error_handlers(app):
    from .extensions import db

    @app.errorhandler(DataError)
    @app.errorhandler(IntegrityError)
    def database_refused_value(error):
        # Validation rejects what it knows of; this catches whatever the database
        # still refuses, so a bad value is the caller's 400, never our 500.
        db.session.rollback()
        log.info("database refused a value: %s", error.orig)
        return error_response(
            400,
            "The database could not store a value of this request.",
            {"json": {"_schema": [str(error.orig).splitlines()[0]]}},
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    def database_unavailable(error):
        db.session.rollback()
        log.error("database unavailable: %s", error)
        return error_response(503, "The database is unavailable; try again shortly.")

    @app.errorhandler(Exception)
    def unexpected_error(error):
        db.session.rollback()
        log.exception("unhandled error")
        return error_response(500, "An unexpected error occurred.")
