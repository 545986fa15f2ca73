import logging

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import Blueprint, reads

log = logging.getLogger(__name__)

blp = Blueprint(
    "health", __name__, url_prefix="/api/v1/healthcheck", description="Service health."
)


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})
    database = ma.fields.String(required=True, metadata={"example": "ok"})


@blp.route("/")
class Healthcheck(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    @blp.documents_errors(503)
    def get(self):
        """Check the service and its database (no authentication)"""
        try:
            reads().execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            log.error("healthcheck: database unreachable: %s", error)
            abort(503, message="The database cannot be reached.")
        return {"status": "ok", "database": "ok"}
