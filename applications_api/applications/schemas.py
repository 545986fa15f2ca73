"""Request bodies, the response body and the list's query arguments."""

import math
from urllib.parse import urlsplit

import marshmallow as ma
from marshmallow import validate

from ..extensions import PagedArgsSchema
from .models import APPLICATION_TYPES, NAME_MAX_LENGTH, RELATED_ID_MAX_LENGTH
from .secrets import MASK, masked, patterns

READ_ONLY_FIELDS = ("id", "created_by", "created_date", "modified_date")
SORT_KEYS = ("id", "name", "created_date", "modified_date")
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

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


class Text(ma.fields.String):
    """A string a text column can store: no NUL characters."""

    def __init__(self, *, validate=(), **kwargs):
        super().__init__(validate=[NO_NUL, *validate], **kwargs)


def _check_json_values(value, depth=0):
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


def is_web_url(value):
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

    def __init__(self, *, removals_allowed=False, **kwargs):
        super().__init__(keys=ma.fields.String(), allow_none=True, **kwargs)
        self.removals_allowed = removals_allowed

    def _deserialize(self, value, attr, data, **kwargs):
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


class ApplicationFieldsSchema(ma.Schema):
    """Every writable field, all optional; subclasses name the required ones."""

    REQUIRED = ()

    name = ma.fields.String(
        validate=[NOT_BLANK, validate.Length(min=1, max=NAME_MAX_LENGTH)],
        metadata={"example": "Shop front"},
    )
    application_type = ma.fields.String(
        validate=validate.OneOf(APPLICATION_TYPES),
        metadata={"example": "extension"},
    )
    config = Config(
        metadata={
            "description": "Free-form object. `web_url`, when present, must be an absolute "
            'http(s) URL with a host. `visible_type` is stored as "empty" when absent.',
            "example": {"web_url": "https://extension.example.com/", "visible_type": "empty"},
        }
    )
    # Explicit examples: Swagger UI would otherwise fill in the int64 maximum (which
    # JavaScript rounds past it) and a random string generated from a pattern.
    is_active = ma.fields.Boolean(metadata={"example": True})
    remote_object_id = WholeNumber(allow_none=True, validate=INT64, metadata={"example": 1001})
    is_visible = ma.fields.Boolean(metadata={"example": True})
    is_proxy_available = ma.fields.Boolean(metadata={"example": False})
    related_application_id = Text(
        allow_none=True,
        validate=[validate.Length(max=RELATED_ID_MAX_LENGTH)],
        metadata={"example": "shop-front-1"},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.REQUIRED:
            self.fields[name].required = True

    @ma.pre_load
    def drop_read_only_fields(self, data, **kwargs):
        # The reference page's own examples send these back; accept and ignore them.
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key not in READ_ONLY_FIELDS}
        return data


class ApplicationCreateSchema(ApplicationFieldsSchema):
    """POST body."""

    REQUIRED = ("name", "application_type")


class ApplicationReplaceSchema(ApplicationFieldsSchema):
    """PUT body: optional fields left out keep their stored value."""

    REQUIRED = ("name", "application_type", "is_active", "is_visible", "is_proxy_available")


class ApplicationPatchSchema(ApplicationFieldsSchema):
    """PATCH body: every field optional; `config` is an RFC 7396 merge patch."""

    config = Config(
        removals_allowed=True,
        metadata={
            "description": "Merged into the stored config as an RFC 7396 JSON Merge Patch: "
            "keys set to null are removed, nested objects are merged.",
            "example": {"visible_type": "full_page"},
        },
    )


class MaskedConfig(ma.fields.Dict):
    """config as answered: the values of secret keys (secrets.py) read as "********"."""

    def _serialize(self, value, attr, obj, **kwargs):
        return masked(value, patterns())


class ApplicationSchema(ma.Schema):
    """An application as the API returns it.

    Dumped from database rows (mappings) whose values already have the fields' types, so
    each field is one conversion: marshmallow's per-field machinery (accessor, missing
    checks, serialize) was two thirds of a 50-item page's dump. What each field type
    does is in CONVERSIONS; a field of any other type fails at the first dump.
    """

    CONVERSIONS = {
        ma.fields.Integer: None,
        ma.fields.String: None,
        ma.fields.Boolean: None,
        ma.fields.DateTime: lambda value, secret_keys: value.isoformat(),
        MaskedConfig: masked,
    }

    def _serialize(self, obj, *, many=False):
        conversions = self._conversions()
        secret_keys = patterns()
        rows = obj if many else [obj]
        dumped = [
            {
                name: (value if convert is None or value is None else convert(value, secret_keys))
                for name, convert in conversions
                for value in (row[name],)
            }
            for row in rows
        ]
        return dumped if many else dumped[0]

    def _conversions(self):
        if not hasattr(self, "_converters"):
            self._converters = [
                (name, self.CONVERSIONS[type(field)]) for name, field in self.dump_fields.items()
            ]
        return self._converters

    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    application_type = ma.fields.String(required=True, validate=validate.OneOf(APPLICATION_TYPES))
    config = MaskedConfig(
        required=True,
        allow_none=True,
        metadata={
            "description": "Values of keys named like APPLICATION_SECRET_KEYS read as "
            f'"{MASK}"; send that back to keep the stored value.'
        },
    )
    is_active = ma.fields.Boolean(required=True)
    remote_object_id = ma.fields.Integer(required=True, allow_none=True)
    created_by = ma.fields.Integer(required=True, allow_none=True)
    is_visible = ma.fields.Boolean(required=True)
    is_proxy_available = ma.fields.Boolean(required=True)
    related_application_id = ma.fields.String(required=True, allow_none=True)
    created_date = ma.fields.DateTime(required=True)
    modified_date = ma.fields.DateTime(required=True)


class ApplicationListArgsSchema(PagedArgsSchema):
    """Filters, sort and pagination of the list; unknown parameters are ignored."""

    name = Text(metadata={"description": "Exact name."})
    application_type = ma.fields.String(
        validate=validate.OneOf(APPLICATION_TYPES), metadata={"description": "Exact type."}
    )
    is_active = ma.fields.Boolean(
        truthy={"true", "True", "1"},
        falsy={"false", "False", "0"},
        metadata={"description": "true/false (also True/False/1/0)."},
    )
    name__contains = Text(metadata={"description": "Case-sensitive substring of the name."})
    name__icontains = Text(metadata={"description": "Case-insensitive substring of the name."})
    related_application_id__iexact = Text(
        metadata={"description": "related_application_id, compared case-insensitively."}
    )
    # A pattern, not an enum: client generators name enum members after their values,
    # and "-id" would become VALUE_4.
    sort = ma.fields.String(
        load_default="id",
        validate=validate.Regexp(
            f"^-?({'|'.join(SORT_KEYS)})$",
            error=f"Must be one of {', '.join(SORT_KEYS)}, with a - prefix for descending.",
        ),
        metadata={
            "description": "Sort key, `-` prefix for descending. Default `id`.",
            "example": "-created_date",
        },
    )


class ChangeSchema(ma.Schema):
    """One field of a change: its old and new value, or only that a secret changed."""

    field = ma.fields.String(required=True, metadata={"example": "config.web_url"})
    old = ma.fields.Raw(allow_none=True, metadata={"example": "https://old.example.com/"})
    new = ma.fields.Raw(allow_none=True, metadata={"example": "https://new.example.com/"})
    secret = ma.fields.Boolean(
        metadata={"description": "A secret changed; its values are never kept."}
    )


class ApplicationChangeSchema(ma.Schema):
    """A history entry: one write to an application."""

    id = ma.fields.Integer(required=True)
    application_id = ma.fields.Integer(required=True)
    user_id = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "Who wrote (null: not a user)."}
    )
    created_date = ma.fields.DateTime(required=True)
    request_id = ma.fields.String(required=True, allow_none=True)
    action = ma.fields.String(
        required=True, validate=validate.OneOf(("create", "replace", "update", "delete"))
    )
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema), required=True)


class HistoryArgsSchema(PagedArgsSchema):
    since = ma.fields.AwareDateTime(
        default_timezone=None,
        metadata={
            "description": "Only entries at or after this time (ISO 8601 with a zone).",
            "example": "2026-11-26T00:00:00+00:00",
        },
    )
    user = ma.fields.Integer(
        validate=validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "Only this user's entries (user id)."},
    )
