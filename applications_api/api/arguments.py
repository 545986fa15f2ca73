"""Request arguments: a failed validation is a 400 (not 422), and a body that is not
JSON says truly why."""

import json
from typing import Any

from flask import Request
from marshmallow import missing
from webargs.flaskparser import FlaskParser, abort, is_json_request


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
