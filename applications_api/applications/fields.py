"""Field types of the applications' bodies and query arguments: what a column can store
and what JSON can round-trip."""

import math
import unicodedata
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

# Bidirectional controls reorder how the text around them is shown (an RTL override
# makes "Shop\u202egnp.exe" read "Shopexe.png"): never in a name.
BIDI_CONTROLS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Letters fonts draw as nothing (Hangul fillers, the blank braille pattern).
BLANK_LETTERS = "\u115f\u1160\u3164\uffa0\u2800"


def _showing_nothing() -> str:
    """A regular expression class of the characters (of the Basic Multilingual Plane)
    that show as nothing: spaces and separators (Z*), controls and format characters
    (Cc, Cf: zero-width spaces and joiners), and BLANK_LETTERS."""
    codes = [
        code
        for code in range(0x10000)
        if unicodedata.category(chr(code)) in ("Zs", "Zl", "Zp", "Cc", "Cf")
        or chr(code) in BLANK_LETTERS
    ]
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(
        f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}"
        for first, last in ranges
    )


# A name a person can read: something in it that shows, no NUL, no bidirectional control.
SHOWS_AS_TEXT = validate.Regexp(
    rf"^[^\x00{BIDI_CONTROLS}]*[^{_showing_nothing()}][^\x00{BIDI_CONTROLS}]*$",
    error="Must show as text: not blank, nor only characters that show as nothing "
    "(zero-width or ideographic spaces, fillers), with no NUL or bidirectional control.",
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
    """An absolute http(s) URL with a host, and no credentials in it."""
    if not isinstance(value, str) or any(ch.isspace() or ord(ch) < 32 for ch in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


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
                raise ma.ValidationError({"web_url": [_web_url_error(web_url)]})
        return value


def _web_url_error(web_url: Any) -> str:
    try:
        credentials = isinstance(web_url, str) and "@" in urlsplit(web_url).netloc
    except ValueError:
        credentials = False
    if credentials:
        # Readers see web_url, the history keeps it and its changes are logged.
        return (
            "Must not carry credentials (user:password@): put them in a write-only config "
            "key (api_key, password …) for the backend, which also gets each caller's "
            "signed identity."
        )
    return "Must be an absolute http or https URL with a host."
