import marshmallow as ma
from flask.views import MethodView
from sqlalchemy import text

from ..extensions import Blueprint, reads

blp = Blueprint("health", __name__, url_prefix="/api/v1/healthcheck", description="Service health.")


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
        # A database that cannot answer raises; errors.py makes that the 503.
        reads().execute(text("SELECT 1"))
        return {"status": "ok", "database": "ok"}
