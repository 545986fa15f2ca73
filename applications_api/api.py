"""The HTTP contract every endpoint shares, built on flask-smorest: the URL prefix and
id converter, argument parsing (400, not 422), pagination (page/limit, X-Pagination,
Link), conditional requests, and the one JSON error shape with the handlers that make
every failure take it, so no request ever sees HTML or a traceback.

It is longer than most modules (about 350 lines) because these rules are one decision
about what a client sees; split, each half would have to know the other's.
"""

import http
import json
import logging
from collections.abc import Callable, Mapping
from copy import deepcopy
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

import marshmallow as ma
from apispec import APISpec
from flask import Flask, Request, Response, current_app, jsonify, request
from flask_smorest import Api as BaseApi
from flask_smorest import Blueprint as BaseBlueprint
from flask_smorest.etag import _get_etag_ctx
from flask_smorest.exceptions import NotModified
from flask_smorest.pagination import PaginationParameters
from flask_smorest.utils import unpack_tuple_response
from marshmallow import missing
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.http import quote_etag
from werkzeug.routing import BaseConverter

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_ID = 2**31 - 1  # ids are 32-bit integers, in URLs as in the tables
_F = TypeVar("_F", bound=Callable[..., Any])


class NotModifiedAt(NotModified):
    """304, carrying the ETag a 200 would have (RFC 9110 §15.4.5)."""

    def __init__(self, etag: str) -> None:
        super().__init__()
        self.etag = etag

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("ETag", quote_etag(self.etag))]


class IdConverter(BaseConverter):
    """`<id:app_id>`: an application id spelled plainly (no sign, no leading zero: `01`
    matches no route). One past the 32-bit ids is a 404 naming it."""

    regex = r"[1-9][0-9]*"

    def to_python(self, value: str) -> int:
        number = int(value) if len(value) <= 10 else MAX_ID + 1
        if number > MAX_ID:
            raise NotFound(f"Application {value} does not exist.")
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


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


class Parser(FlaskParser):
    """Validation failures are 400 Bad Request, as the contract says."""

    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: Request) -> Any:
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
        except json.JSONDecodeError as error:  # (a ValueError: before the digits' one)
            abort(400, errors={"json": [_not_json(error)]})
        except ValueError:  # the one ValueError left: an integer past 4,300 digits
            abort(400, errors={"json": ["Invalid JSON body: a number has more than 4,300 digits."]})
        return data


def _not_json(error: json.JSONDecodeError) -> str:
    if not error.doc.strip():
        return "Invalid JSON body: the body is empty; send a JSON object."
    return (
        f"Invalid JSON body: {error.msg} at line {error.lineno}, column {error.colno} "
        f"(character {error.pos})."
    )


def _default_message(error: HTTPException) -> str:
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
            message = error.description if given else _default_message(error)
        assert error.code is not None  # (Flask hands error handlers only exceptions with a code)
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

    def paginate(
        self, pager: Any = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Pagination in the view, with `page`/`limit` arguments, which the view's query
        arguments (a PagedArgsSchema) carry and document.

        flask-smorest hard-wires `page_size` and parses it apart from the view's other
        arguments; this keeps its metadata header and documentation (flask-smorest
        issue #327).
        """
        if pager is not None or kwargs:
            raise TypeError("this API paginates in the view with page/limit only")

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(func)
            def wrapper(*args: Any, **kw: Any) -> Any:
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

            # (flask-smorest reads an operation's documentation from its view's _apidoc)
            wrapper._apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))  # type: ignore[attr-defined]
            wrapper._apidoc["pagination"] = {"response": {400: http.HTTPStatus(400).name}}  # type: ignore[attr-defined]
            return wrapper

        return decorator

    def _prepare_pagination_doc(
        self, doc: dict[str, Any], doc_info: Mapping[str, Any], *, spec: APISpec, **kwargs: Any
    ) -> dict[str, Any]:
        # (flask-smorest's, less the parameters: the view's PagedArgsSchema has them)
        if doc_info.get("pagination"):
            doc.setdefault("responses", {}).update(doc_info["pagination"]["response"])
            for status in doc_info.get("success_status_codes", []):
                self._document_pagination_metadata(spec, doc["responses"][status])
        return doc

    # Conditional requests (RFC 9110 §13, with flask-smorest's ETags): a GET or HEAD whose
    # If-None-Match names the current ETag (weak comparison, `*` too) is a 304 carrying
    # it; a write is refused with 412 when its If-Match names no current ETag (strong
    # comparison; `*` is any) or its If-None-Match names the current one (checked under
    # the row's lock, service.py). Without either a write stays unconditional, as the
    # contract says: flask-smorest would answer 428, and warn when no check was made.
    IF_MATCH = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The ETag you read: the write is refused with 412 if the "
        "application has changed since (optional).",
        "schema": {"type": "string"},
    }

    def _check_precondition(self) -> None:
        pass

    def _verify_check_etag(self) -> None:
        pass

    def _prepare_etag_doc(
        self, doc: dict[str, Any], doc_info: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        doc = super()._prepare_etag_doc(doc, doc_info, **kwargs)
        doc.get("responses", {}).pop(428, None)
        doc["parameters"] = [
            self.IF_MATCH if parameter == "IF_MATCH" else parameter
            for parameter in doc.get("parameters", [])
        ]
        return doc

    def set_etag(self, etag_data: Any, etag_schema: Any = None) -> None:
        """flask-smorest's set_etag (the response's ETag; a GET or HEAD whose
        If-None-Match names it is a 304) for what this API gives it: data, no schema,
        ETags always on, If-None-Match parsed only when sent. flask-smorest's own took
        an eighth of a retrieve's CPU, mostly in those checks (bench/README.md)."""
        if etag_schema is not None:
            raise TypeError("this API sets ETags from data, without a schema")
        etag = self._generate_etag(etag_data)
        current = request._get_current_object()  # type: ignore[attr-defined]
        if (
            current.method in self.METHODS_CHECKING_NOT_MODIFIED
            and "If-None-Match" in current.headers
            and current.if_none_match.contains_weak(etag)
        ):
            raise NotModifiedAt(etag)
        _get_etag_ctx()["etag"] = etag

    def check_preconditions(self, etag_data: Any, what: str) -> None:
        """412 when the write's If-Match, if sent, names no current ETag of `what`, or
        its If-None-Match names the current one (RFC 9110 §13.2.2)."""
        headers = request.headers
        if "If-Match" not in headers and "If-None-Match" not in headers:
            return
        etag = self._generate_etag(etag_data)
        if "If-Match" in headers:
            if not request.if_match.contains(etag):
                abort(
                    412,
                    message=f"{what} has changed since the ETag you sent in If-Match: "
                    "read it again, and retry with its new ETag.",
                )
        elif request.if_none_match.contains_weak(etag):
            abort(412, message=f"{what} matches the If-None-Match you sent.")

    def documents_errors(self, *codes: int) -> Callable[[_F], _F]:
        """Document error responses (the shared error body) on an operation."""

        def decorator(func: _F) -> _F:
            documented = func
            for code in codes:
                documented = self.alt_response(code, response=http.HTTPStatus(code).name)(
                    documented
                )
            # alt_response documents through a wrapper that only calls the view: keep its
            # documentation, not the calls (a few per request, on every operation).
            func._apidoc = documented._apidoc  # type: ignore[attr-defined]
            return func

        return decorator

    def _set_pagination_metadata(
        self, page_params: PaginationParameters, result: Any, headers: Any
    ) -> tuple[Any, dict[str, str]]:
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

    def _document_pagination_metadata(self, spec: APISpec, resp_doc: dict[str, Any]) -> None:
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


def _page_url(number: int) -> str:
    """This request's path and query with `page` set to `number`."""
    args = [(key, value) for key, value in request.args.items(multi=True) if key != "page"]
    args.append(("page", str(number)))
    return f"{request.path}?{urlencode(args)}"


def _register_error_handlers(app: Flask) -> None:
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
    def database_unavailable(
        error: OperationalError | InterfaceError | PoolTimeoutError,
    ) -> Response:
        log.error("database unavailable: %s", error)
        return error_response(503, "The database is unavailable; try again shortly.")

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "An unexpected error occurred.")


def init_app(app: Flask, **api_kwargs: Any) -> "Api":
    """The app's Api, its id converter and its error handlers. Call before registering
    blueprints (their routes use the converter)."""
    app.url_map.converters["id"] = IdConverter
    app.url_map.strict_slashes = False  # /applications/2 is /applications/2/, no redirect
    app.url_map.merge_slashes = False  # /api/v1//applications/ is a 404, not a redirect
    api = Api(app, **api_kwargs)
    api.register_converter(IdConverter, _id_schema)
    _register_error_handlers(app)
    return api


def _id_schema(converter: IdConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
