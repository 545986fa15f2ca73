"""Flask extensions and the project-wide API behaviour built on flask-smorest.

The Api, Blueprint and parser subclasses here are the single place that decides how
every endpoint parses arguments (400, not 422), paginates (page/limit) and reports errors.
"""

import http
import json
from contextlib import contextmanager
from copy import deepcopy
from functools import wraps
from urllib.parse import urlencode

import marshmallow as ma
from flask import current_app, g, request
from flask_migrate import Migrate
from flask_smorest import Api as BaseApi
from flask_smorest import Blueprint as BaseBlueprint
from flask_smorest import abort
from flask_smorest.pagination import PaginationParameters
from flask_smorest.utils import unpack_tuple_response
from flask_sqlalchemy import SQLAlchemy
from marshmallow import missing
from sqlalchemy import event
from webargs.flaskparser import FlaskParser, is_json_request

from .errors import ErrorSchema, error_payload

# Objects keep their values after commit: the response is dumped from what was just
# written, without a refreshing SELECT.
db = SQLAlchemy(session_options={"expire_on_commit": False})
migrate = Migrate()


class Parser(FlaskParser):
    """Validation failures are 400 Bad Request, as the contract says."""

    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        if not is_json_request(req):
            if req.content_length or req.headers.get("Transfer-Encoding"):
                abort(415, message="Send the request body as application/json.")
            return missing
        try:
            data = super()._raw_load_json(req)
            # A lone surrogate ("\ud800") parses, but no database can store it.
            json.dumps(data, ensure_ascii=False).encode()
        except RecursionError:
            abort(400, errors={"json": ["Invalid JSON body: nested too deeply."]})
        except UnicodeEncodeError:
            abort(
                400,
                errors={
                    "json": [
                        "Invalid JSON body: strings must be valid Unicode "
                        "(a lone surrogate, \\ud800 to \\udfff, is not)."
                    ]
                },
            )
        except ValueError:  # the one ValueError left: an integer past 4,300 digits
            abort(400, errors={"json": ["Invalid JSON body: a number has more than 4,300 digits."]})
        return data


class Api(BaseApi):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
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
        message = data.get("message") or (
            "The request is invalid: see errors." if errors else error.description
        )
        payload = error_payload(error.code, message, errors)
        return payload, error.code, headers


class PagedArgsSchema(ma.Schema):
    """Query arguments of a paginated list: `page` and `limit` beside the list's own, in
    one schema, so a single 400 names every bad parameter. Subclass it for a list's
    filters; `paginate` takes `page` and `limit` out before the view sees them."""

    class Meta:
        unknown = ma.EXCLUDE

    page = ma.fields.Integer(
        load_default=1,
        validate=ma.validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "Page number, from 1."},
    )
    page_size = ma.fields.Integer(
        data_key="limit",
        load_default=10,
        validate=ma.validate.Range(min=1, max=1000),
        metadata={"description": "Items per page, 1 to 1000."},
    )


class Blueprint(BaseBlueprint):
    ARGUMENTS_PARSER = Parser()

    def paginate(self, pager=None, **kwargs):
        """Pagination in the view, with `page`/`limit` arguments, which the view's query
        arguments (a PagedArgsSchema) carry and document.

        flask-smorest hard-wires `page_size` and parses it apart from the view's other
        arguments; this keeps its metadata header and documentation (flask-smorest
        issue #327).
        """
        if pager is not None or kwargs:
            raise TypeError("this API paginates in the view with page/limit only")

        def decorator(func):
            @wraps(func)
            def wrapper(*args, **kw):
                (query_args,) = (arg for arg in args if isinstance(arg, dict))
                page_params = PaginationParameters(
                    query_args.pop("page"), query_args.pop("page_size")
                )
                kw["pagination_parameters"] = page_params
                result, status, headers = unpack_tuple_response(
                    current_app.ensure_sync(func)(*args, **kw)
                )
                result, headers = self._set_pagination_metadata(page_params, result, headers)
                return result, status, headers

            wrapper._apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
            wrapper._apidoc["pagination"] = {"response": {400: http.HTTPStatus(400).name}}
            return wrapper

        return decorator

    def _prepare_pagination_doc(self, doc, doc_info, *, spec, **kwargs):
        # (flask-smorest's, less the parameters: the view's PagedArgsSchema has them)
        if doc_info.get("pagination"):
            doc.setdefault("responses", {}).update(doc_info["pagination"]["response"])
            for status in doc_info.get("success_status_codes", []):
                self._document_pagination_metadata(spec, doc["responses"][status])
        return doc

    # Conditional requests (flask-smorest's ETag): If-None-Match gives 304 on reads, and
    # a write sent with If-Match is refused with 412 when the row has changed (checked
    # under its lock, service.py). Without If-Match a write stays unconditional, as the
    # contract says: flask-smorest would answer 428, and warn when no check was made.
    IF_MATCH = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The ETag you read: the write is refused with 412 if the "
        "application has changed since (optional).",
        "schema": {"type": "string"},
    }

    def _check_precondition(self):
        pass

    def _verify_check_etag(self):
        pass

    def _prepare_etag_doc(self, doc, doc_info, **kwargs):
        doc = super()._prepare_etag_doc(doc, doc_info, **kwargs)
        doc.get("responses", {}).pop(428, None)
        doc["parameters"] = [
            self.IF_MATCH if parameter == "IF_MATCH" else parameter
            for parameter in doc.get("parameters", [])
        ]
        return doc

    def check_if_match(self, etag_data):
        """412 when the request's If-Match, if it sent one, names another version."""
        if request.if_match:
            self.check_etag(etag_data)

    def documents_errors(self, *codes):
        """Document error responses (the shared error body) on an operation."""

        def decorator(func):
            for code in codes:
                func = self.alt_response(code, response=http.HTTPStatus(code).name)(func)
            return func

        return decorator

    def _set_pagination_metadata(self, page_params, result, headers):
        headers = dict(headers or {})
        metadata = self._make_pagination_metadata(
            page_params.page, page_params.page_size, page_params.item_count
        )
        headers[self.PAGINATION_HEADER_NAME] = json.dumps(metadata)
        links = {
            "first": metadata.get("first_page"),
            "prev": metadata.get("previous_page"),
            "next": metadata.get("next_page"),
            "last": metadata.get("last_page"),
        }
        link_values = [
            f'<{_page_url(number)}>; rel="{rel}"'
            for rel, number in links.items()
            if number is not None
        ]
        if link_values:
            headers["Link"] = ", ".join(link_values)
        return result, headers

    def _document_pagination_metadata(self, spec, resp_doc):
        # The header's value is JSON: documented through `content`, not a `schema`
        # (which would mean comma-separated key=value pairs).
        page_number = {"type": "integer", "minimum": 1}
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = {
            "description": "Pagination metadata, as JSON.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["total", "total_pages"],
                        "properties": {
                            "total": {"type": "integer", "minimum": 0},
                            "total_pages": {"type": "integer", "minimum": 0},
                            "first_page": page_number,
                            "last_page": page_number,
                            "page": page_number,
                            "previous_page": page_number,
                            "next_page": page_number,
                        },
                    }
                }
            },
        }
        resp_doc["headers"]["Link"] = {
            "description": "RFC 8288 links to the first, prev, next and last pages.",
            "schema": {"type": "string"},
        }


def _page_url(number):
    """This request's path and query with `page` set to `number`."""
    args = [(key, value) for key, value in request.args.items(multi=True) if key != "page"]
    args.append(("page", str(number)))
    return f"{request.path}?{urlencode(args)}"


def engine_options(settings):
    """SQLAlchemy engine options.

    Autocommit: each statement commits by itself, so a read costs its query and the
    pool's pre-ping, with no BEGIN/ROLLBACK round trips. A write to an application
    opens its own short transaction and locks the row (applications/service.py).
    Connect and statement timeouts bound every wait, so a lost database is a fast 503
    and a lock wait a 503; pre-ping lets the pool recover when the database returns.
    """
    options = {"pool_pre_ping": True, "isolation_level": "AUTOCOMMIT"}
    if settings.database_url.startswith("sqlite"):
        options["connect_args"] = {"timeout": settings.database_connect_timeout}
    else:
        statement_ms = int(settings.database_statement_timeout * 1000)
        options["connect_args"] = {
            "connect_timeout": max(1, round(settings.database_connect_timeout)),
            "options": f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}",
            # Notice a peer that vanished without closing the connection.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
            "tcp_user_timeout": int(settings.database_connect_timeout * 1000),
        }
        options["pool_timeout"] = settings.database_connect_timeout
    return options


def reads():
    """This request's connection for reads: Core statements, outside the ORM session.

    Profiling under load showed the session's bookkeeping as a fifth of a retrieve's
    CPU; reads need none of it. Checked out once per request, returned at teardown
    (or earlier with end_reads()).
    """
    connection = g.get("read_connection")
    if connection is None:
        connection = g.read_connection = db.engine.connect()
    return connection


def end_reads(exception=None):
    """Return the read connection to the pool (a teardown_appcontext handler)."""
    connection = g.pop("read_connection", None)
    if connection is not None:
        connection.close()


@contextmanager
def transaction():
    """Run the session's statements inside it as one short transaction, despite
    autocommit: BEGIN is ours. SQLite's takes the write lock at once (BEGIN IMMEDIATE),
    so concurrent writers queue for the busy timeout rather than fail on an upgrade.
    The request's read connection goes back first: a request never holds two."""
    end_reads()
    connection = db.session.connection()
    connection.exec_driver_sql("BEGIN IMMEDIATE" if db.engine.dialect.name == "sqlite" else "BEGIN")
    try:
        yield
        db.session.flush()
        connection.exec_driver_sql("COMMIT")
    except BaseException:
        connection.exec_driver_sql("ROLLBACK")
        db.session.rollback()
        raise
    db.session.commit()  # the ORM's bookkeeping only: the rows are committed


def install_sqlite_pragmas(engine):
    """Make LIKE case-sensitive on SQLite so name__contains matches the contract."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
