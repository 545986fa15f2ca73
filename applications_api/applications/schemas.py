"""Request bodies, the response body and the list's query arguments.

A little over 200 lines: each schema is short, and they belong together because the
OpenAPI document is generated from them (field types live in fields.py, filters in
filters.py)."""

from collections.abc import Callable
from typing import Any

import marshmallow as ma
from marshmallow import validate

from ..api import MAX_ID, PagedArgsSchema
from .fields import INT64, SHOWS_AS_TEXT, Config, Text, WholeNumber
from .filters import FILTER_FIELDS, SORT_COLUMNS
from .models import APPLICATION_TYPES, NAME_MAX_LENGTH, RELATED_ID_MAX_LENGTH
from .secrets import MASK, Matcher, masked, patterns

READ_ONLY_FIELDS = ("id", "created_by", "created_date", "modified_date")
# A field's value as dumped: (value, the secret keys' matcher) -> JSON value.
Conversion = Callable[[Any, Matcher | None], Any]


class ApplicationFieldsSchema(ma.Schema):
    """Every writable field, all optional; subclasses name the required ones."""

    REQUIRED: tuple[str, ...] = ()

    name = ma.fields.String(
        validate=[SHOWS_AS_TEXT, validate.Length(min=1, max=NAME_MAX_LENGTH)],
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.REQUIRED:
            self.fields[name].required = True

    @ma.pre_load
    def drop_read_only_fields(self, data: Any, **kwargs: Any) -> Any:
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

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return masked(value, patterns())


class ApplicationSchema(ma.Schema):
    """An application as the API returns it.

    Dumped from database rows (mappings) whose values already have the fields' types, so
    each field is one conversion: marshmallow's per-field machinery (accessor, missing
    checks, serialize) was two thirds of a 50-item page's dump. What each field type
    does is in CONVERSIONS; a field of any other type fails at the first dump.
    """

    CONVERSIONS: dict[type[ma.fields.Field], Conversion | None] = {
        ma.fields.Integer: None,
        ma.fields.String: None,
        ma.fields.Boolean: None,
        ma.fields.DateTime: lambda value, secret_keys: value.isoformat(),
        MaskedConfig: masked,
    }

    def _serialize(self, obj: Any, *, many: bool = False) -> Any:
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

    def _conversions(self) -> list[tuple[str, Conversion | None]]:
        if not hasattr(self, "_converters"):
            self._converters: list[tuple[str, Conversion | None]] = [
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


# The list's query arguments: the filters filters.py knows, its sort keys, page and limit.
# A sort key is a pattern, not an enum: client generators name enum members after their
# values, and "-id" would become VALUE_4.
ApplicationListArgsSchema = type(
    "ApplicationListArgsSchema",
    (PagedArgsSchema,),
    {
        "__doc__": "Filters, sort and pagination of the list; unknown parameters are ignored.",
        **FILTER_FIELDS,
        "sort": ma.fields.String(
            load_default="id",
            validate=validate.Regexp(
                f"^-?({'|'.join(SORT_COLUMNS)})$",
                error=f"Must be one of {', '.join(SORT_COLUMNS)}, with a - prefix for descending.",
            ),
            metadata={
                "description": "Sort key, `-` prefix for descending. Default `id`.",
                "example": "-created_date",
            },
        ),
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
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Only this user's entries (user id)."},
    )
