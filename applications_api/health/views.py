import marshmallow as ma
from flask.views import MethodView

from .. import database
from ..api import API_PREFIX, Blueprint

blp = Blueprint(
    "health", __name__, url_prefix=f"{API_PREFIX}/healthcheck", description="Service health."
)


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})
    database = ma.fields.String(required=True, metadata={"example": "ok"})


@blp.route("/")
class Healthcheck(MethodView):
    @blp.doc(security=[], operationId="healthcheck")
    @blp.response(200, HealthSchema)
    @blp.documents_errors(503)
    def get(self) -> dict[str, str]:
        """Check the service and its database (no authentication)"""
        # A database that cannot answer raises; api/errors.py makes that the 503.
        database.run("SELECT 1")
        return {"status": "ok", "database": "ok"}
