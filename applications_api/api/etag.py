"""Conditional requests (RFC 9110 §13) with flask-smorest's ETags."""

from collections.abc import Mapping
from typing import Any

from flask import request
from flask_smorest import Blueprint as BaseBlueprint
from flask_smorest.etag import _get_etag_ctx
from flask_smorest.exceptions import NotModified
from webargs.flaskparser import abort
from werkzeug.http import quote_etag


class NotModifiedAt(NotModified):
    """304, carrying the ETag a 200 would have (RFC 9110 §15.4.5)."""

    def __init__(self, etag: str) -> None:
        super().__init__()
        self.etag = etag

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("ETag", quote_etag(self.etag))]


class ConditionalRequests(BaseBlueprint):
    """flask-smorest's EtagMixin, as this API's contract says: a GET or HEAD whose
    If-None-Match names the current ETag (weak comparison, `*` too) is a 304 carrying it;
    a write is refused with 412 when its If-Match names no current ETag (strong
    comparison; `*` is any) or its If-None-Match names the current one (checked under
    the row's lock, service.py). Without either a write stays unconditional:
    flask-smorest would answer 428, and warn when no check was made."""

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
        a large share of a retrieve's CPU, mostly in those checks (bench/JOURNAL.md)."""
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
