"""Field types of the applications' bodies and query arguments: what a column can store
and what JSON can round-trip."""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import marshmallow as ma
from marshmallow import validate

CONFIG_MAX_DEPTH = 32
INT64 = validate.Range(min=-(2**63), max=2**63 - 1)


# PostgreSQL text cannot hold NUL. As patterns, the rules show in the OpenAPI document
# (one pattern a field, with explicit classes that Python and JavaScript read alike).
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="Must not contain NUL characters.")
NOT_BLANK = validate.Regexp(
    r"^[^\x00]*[^\x00\t\n\v\f\r ][^\x00]*$",
    error="Must not be blank, nor contain NUL characters.",
)


class WholeNumber(ma.fields.Integer):
    """An integer as JSON Schema (OpenAPI 3.1) counts one: 7, or 7.0 (JSON has one
    number type); never "7", 7.5 or true."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


class Text(ma.fields.String):
    """A string a text column can store: no NUL characters."""

    def __init__(self, *, validate: Sequence[Callable[[Any], Any]] = (), **kwargs: Any) -> None:
        super().__init__(validate=[NO_NUL, *validate], **kwargs)


def _check_json_values(value: Any, depth: int = 0) -> None:
    """Reject what JSON cannot round-trip: NaN/Infinity, and nesting deep enough to
    exhaust the serialiser's recursion."""
    if depth > CONFIG_MAX_DEPTH:
        raise ma.ValidationError(f"Must not be nested deeper than {CONFIG_MAX_DEPTH} levels.")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ma.ValidationError("Numbers must be finite.")
    elif isinstance(value, dict):
        for item in value.values():
            _check_json_values(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_values(item, depth + 1)


def is_web_url(value: object) -> bool:
    """An absolute http(s) URL with a host."""
    if not isinstance(value, str) or any(ch.isspace() or ord(ch) < 32 for ch in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class Config(ma.fields.Dict):
    """The free-form `config` object; `web_url`, when present, must be a web URL."""

    def __init__(self, *, removals_allowed: bool = False, **kwargs: Any) -> None:
        super().__init__(keys=ma.fields.String(), allow_none=True, **kwargs)
        self.removals_allowed = removals_allowed

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, Any]:
        value = super()._deserialize(value, attr, data, **kwargs)
        _check_json_values(value)
        if "web_url" in value:
            web_url = value["web_url"]
            # In a merge patch, null removes the key.
            if not (web_url is None and self.removals_allowed) and not is_web_url(web_url):
                raise ma.ValidationError(
                    {"web_url": ["Must be an absolute http or https URL with a host."]}
                )
        return value
