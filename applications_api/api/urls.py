"""Where the API is and how its ids are spelled in URLs."""

from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

API_PREFIX = "/api/v1"
MAX_ID = 2**31 - 1  # ids are 32-bit integers, in URLs as in the tables


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


def id_schema(converter: IdConverter) -> dict[str, Any]:
    """The converter's OpenAPI schema."""
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
