"""Pagination with `page` and `limit`, its metadata in the `X-Pagination` and `Link`
(RFC 8288) headers, as flask-smorest's PaginationMixin does it with `page_size`."""

import http
import json
from collections.abc import Callable, Mapping
from copy import deepcopy
from functools import wraps
from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from apispec import APISpec
from flask import current_app, request
from flask_smorest import Blueprint as BaseBlueprint
from flask_smorest.pagination import PaginationParameters
from flask_smorest.utils import unpack_tuple_response

from .urls import MAX_ID


class PagedArgsSchema(ma.Schema):
    """Query arguments of a paginated list: `page` and `limit` beside the list's own, in
    one schema, so a single 400 names every bad parameter. Subclass it for a list's
    filters; `paginate` takes `page` and `limit` out before the view sees them."""

    class Meta:
        unknown = ma.EXCLUDE

    page = ma.fields.Integer(
        load_default=1,
        validate=ma.validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Page number, from 1."},
    )
    page_size = ma.fields.Integer(
        data_key="limit",
        load_default=10,
        validate=ma.validate.Range(min=1, max=1000),
        metadata={"description": "Items per page, 1 to 1000."},
    )


class Pagination(BaseBlueprint):
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
