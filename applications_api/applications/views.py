"""The applications endpoints: list, create, retrieve, replace, update, soft-delete, and
each application's change history."""

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Response, request, url_for
from flask.views import MethodView
from flask_smorest.pagination import PaginationParameters

from ..api import API_PREFIX, MAX_ID, Blueprint
from ..auth.authentication import authenticated_user, require_staff, require_staff_for_writes
from ..observability import current_request_id
from ..runtime import current_settings
from . import service
from .history import Actor
from .schemas import (
    ApplicationChangeSchema,
    ApplicationCreateSchema,
    ApplicationListArgsSchema,
    ApplicationPatchSchema,
    ApplicationReplaceSchema,
    ApplicationSchema,
    HistoryArgsSchema,
)

blp = Blueprint(
    "applications",
    __name__,
    url_prefix=f"{API_PREFIX}/applications",
    description="Register, list, filter, update and soft-delete applications.",
)
blp.before_request(require_staff_for_writes)


@blp.before_request
def limit_body_size() -> None:
    request.max_content_length = current_settings().max_body_bytes


@blp.after_request
def no_content_has_no_type(response: Response) -> Response:
    if response.status_code in (204, 304):  # (flask-smorest types every answer JSON)
        response.headers.pop("Content-Type", None)
    return response


@blp.route("/")
class Applications(MethodView):
    @blp.doc(operationId="listApplications")
    @blp.etag
    @blp.arguments(ApplicationListArgsSchema(), location="query")
    @blp.response(200, ApplicationSchema(many=True))
    @blp.paginate()
    @blp.documents_errors(401, 503)
    def get(
        self, args: Mapping[str, Any], pagination_parameters: PaginationParameters
    ) -> Sequence[service.Row]:
        """List applications

        Filters combine with AND. The body is a bare array; pagination metadata is in
        the `X-Pagination` and `Link` headers. A page past the end is an empty array.
        """
        total, page = service.list_page(
            args, pagination_parameters.page, pagination_parameters.page_size
        )
        pagination_parameters.item_count = total
        blp.set_etag(service.versions_of(total, page))
        return page

    @blp.doc(operationId="createApplication")
    @blp.arguments(ApplicationCreateSchema())
    @blp.response(
        201,
        ApplicationSchema,
        headers={
            "Location": {"description": "URL of the new application", "schema": {"type": "string"}}
        },
    )
    @blp.documents_errors(401, 403, 413, 415, 503)
    def post(self, data: Mapping[str, Any]) -> tuple[service.Row, dict[str, str]]:
        """Create an application (staff only)"""
        application = service.create_application(data, _actor())
        location = url_for(".Application", app_id=application["id"])
        return application, {"Location": location}


# An example, so Swagger UI's "Try it out" is filled in: the first application.
APP_ID = {
    "in": "path",
    "name": "app_id",
    "required": True,
    "example": 1,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}


@blp.route("/<id:app_id>/", parameters=[APP_ID])
class Application(MethodView):
    @blp.doc(operationId="retrieveApplication")
    @blp.etag
    @blp.response(200, ApplicationSchema)
    @blp.documents_errors(401, 404, 503)
    def get(self, app_id: int) -> service.Row:
        """Retrieve an application (soft-deleted ones too, with is_active false)"""
        return _tagged(service.read_or_404(app_id))

    @blp.doc(operationId="replaceApplication")
    @blp.etag
    @blp.arguments(ApplicationReplaceSchema())
    @blp.response(200, ApplicationSchema)
    @blp.documents_errors(401, 403, 404, 413, 415, 503)
    def put(self, data: Mapping[str, Any], app_id: int) -> service.Row:
        """Replace an application (staff only)

        Optional fields left out keep their stored value; a given `config` replaces the
        stored one.
        """
        return _tagged(
            service.update_application(
                app_id, data, _actor(), merge_config=False, precondition=_preconditions
            )
        )

    @blp.doc(operationId="updateApplication")
    @blp.etag
    @blp.arguments(ApplicationPatchSchema())
    @blp.response(200, ApplicationSchema)
    @blp.documents_errors(401, 403, 404, 413, 415, 503)
    def patch(self, data: Mapping[str, Any], app_id: int) -> service.Row:
        """Update some fields of an application (staff only)

        `config` is merged into the stored one as an RFC 7396 JSON Merge Patch.
        """
        return _tagged(
            service.update_application(
                app_id, data, _actor(), merge_config=True, precondition=_preconditions
            )
        )

    @blp.doc(operationId="deleteApplication")
    @blp.etag
    @blp.response(204)
    @blp.documents_errors(401, 403, 404, 503)
    def delete(self, app_id: int) -> None:
        """Soft-delete an application (staff only): sets is_active to false"""
        service.soft_delete_application(app_id, _actor(), precondition=_preconditions)


def _actor() -> Actor:
    """Who writes, for the history: the authenticated user and this request's id."""
    return Actor(authenticated_user().id, current_request_id())


def _tagged(row: service.Row) -> service.Row:
    """The row, its version set as the response's ETag (a GET matching If-None-Match
    is a 304)."""
    blp.set_etag(service.version_of(row))
    return row


def _preconditions(row: service.Row) -> None:
    blp.check_preconditions(service.version_of(row), f"Application {row['id']}")


@blp.route("/<id:app_id>/history/", parameters=[APP_ID])
class ApplicationHistory(MethodView):
    @blp.doc(operationId="listApplicationHistory")
    @blp.arguments(HistoryArgsSchema(), location="query")
    @blp.response(200, ApplicationChangeSchema(many=True))
    @blp.paginate()
    @blp.documents_errors(401, 403, 404, 503)
    def get(
        self,
        args: Mapping[str, Any],
        app_id: int,
        pagination_parameters: PaginationParameters,
    ) -> Sequence[service.Row]:
        """List an application's changes, newest first (staff only)

        Every write (create, PUT, PATCH, soft delete) records who made it, when, from
        which request (`X-Request-ID`) and the changed fields with old and new values;
        secret config keys only as changed, never their values.
        """
        require_staff("Only staff users may read the change history.")
        total, page = service.history_page(
            app_id, args, pagination_parameters.page, pagination_parameters.page_size
        )
        pagination_parameters.item_count = total
        return page
