"""The Blueprint every endpoint is declared on: flask-smorest's, with this API's
arguments parser, pagination and conditional requests, and its error documentation."""

import http
from collections.abc import Callable
from typing import Any, TypeVar

from .arguments import Parser
from .etag import ConditionalRequests
from .pagination import Pagination

_F = TypeVar("_F", bound=Callable[..., Any])


class Blueprint(Pagination, ConditionalRequests):
    ARGUMENTS_PARSER = Parser()

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
