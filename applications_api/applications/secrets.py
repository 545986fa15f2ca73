"""Write-only secrets in `config`: stored as given, always answered masked.

Two kinds of value are secret, at any depth, in objects and arrays alike:

- the value of a key named like APPLICATION_SECRET_KEYS (fnmatch patterns), compared
  after folding (fold()): apiKey, api-key, API_KEY and ＡＰＩ_ＫＥＹ all match *api_key*;
  the whole value, an object or array too, is answered as MASK;
- the password of a URL with credentials (a DSN: `postgresql://user:pw@host/db`), in any
  string: answered as `postgresql://user:********@host/db`.

A write that sends masks back gets the stored values back in their place (unmasked()):
what a client read, sent back whole or in part, never changes a stored secret. A mask
with no stored value to stand for is refused, never stored as the secret.
"""

import json
import re
import unicodedata
from collections.abc import Callable
from fnmatch import translate
from functools import lru_cache
from typing import Any

from ..runtime import current_settings

MASK = "********"
# Whether a config key is secret (patterns()).
Matcher = Callable[[str], bool]
# A URL's password: scheme "://" user ":" password "@"
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):([^/?#@]+)@")
_SEPARATORS = re.compile(r"[\s_.-]+")


class UnrestorableMask(ValueError):
    """A mask was sent where no stored secret is left for it to stand for."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f'{path}: "{MASK}" stands for a stored secret, and none is stored there; '
            "send the value itself."
        )


def fold(key: str) -> str:
    """A key as secret patterns are compared with it: Unicode compatibility forms folded
    (NFKC), case folded, separators (space, "_", ".", "-") left out."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", key).casefold())


def patterns() -> Matcher | None:
    """This app's secret keys: a matcher (one regular expression for every pattern, each
    key's answer remembered: configs share their few key names), or None when masking
    is off."""
    return _matcher(current_settings().application_secret_keys)


@lru_cache(maxsize=8)
def _matcher(secret_keys: tuple[str, ...]) -> Matcher | None:
    if not secret_keys:
        return None
    match = re.compile("|".join(translate(fold(pattern)) for pattern in secret_keys)).match
    return lru_cache(maxsize=4096)(lambda key: match(fold(key)) is not None)


def is_secret(key: object, secret_keys: Matcher | None) -> bool:
    return secret_keys is not None and isinstance(key, str) and bool(secret_keys(key))


def _has_credentials(value: str) -> bool:
    return "@" in value and _CREDENTIALS.match(value) is not None


def masked(value: Any, secret_keys: Matcher | None) -> Any:
    """`value` with every secret replaced by MASK: a copy, or `value` itself when it
    holds nothing to mask (most configs: a few keys with plain values)."""
    if secret_keys is None:
        return value
    if isinstance(value, dict):
        if not any(
            is_secret(key, secret_keys)
            or isinstance(item, dict | list)
            or (isinstance(item, str) and _has_credentials(item))
            for key, item in value.items()
        ):
            return value
        return {
            key: MASK if is_secret(key, secret_keys) else masked(item, secret_keys)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item, secret_keys) for item in value]
    if isinstance(value, str) and _has_credentials(value):
        return _CREDENTIALS.sub(rf"\1:{MASK}@", value, count=1)
    return value


def unmasked(new: Any, stored: Any, secret_keys: Matcher | None, path: str = "config") -> Any:
    """`new` with each mask in it given back the stored value it stands for. Raises
    UnrestorableMask for a mask that stands for nothing stored."""
    if secret_keys is None:
        return new
    if stored is not None and new == masked(stored, secret_keys):
        return stored  # what was read, sent back as it was
    if isinstance(new, dict):
        fields = stored if isinstance(stored, dict) else {}
        restored = {}
        for key, value in new.items():
            if is_secret(key, secret_keys) and value == MASK:
                if key not in fields:
                    raise UnrestorableMask(f"{path}.{key}")
                restored[key] = fields[key]
            else:
                restored[key] = unmasked(value, fields.get(key), secret_keys, f"{path}.{key}")
        return restored
    if isinstance(new, list):
        counterparts = _counterparts(new, stored if isinstance(stored, list) else [], secret_keys)
        return [
            unmasked(item, counterpart, secret_keys, f"{path}[{index}]")
            for index, (item, counterpart) in enumerate(zip(new, counterparts, strict=True))
        ]
    if isinstance(new, str) and f":{MASK}@" in new:
        return _with_stored_password(new, stored, path)
    return new


def _counterparts(new: list[Any], stored: list[Any], secret_keys: Matcher) -> list[Any]:
    """The stored element each element of `new` stands for: the one it reads as (moved,
    or with others added or removed around it); for an element that holds masks and
    reads as none (edited), the first stored element not given yet, in order."""
    shown = [masked(element, secret_keys) for element in stored]
    given: list[Any] = [None] * len(new)
    taken: set[int] = set()
    for index, item in enumerate(new):
        for place, view in enumerate(shown):
            if place not in taken and view == item:
                given[index] = stored[place]
                taken.add(place)
                break
    left = iter([element for place, element in enumerate(stored) if place not in taken])
    for index, item in enumerate(new):
        if given[index] is None and MASK in json.dumps(item):
            given[index] = next(left, None)
    return given


def _with_stored_password(new: str, stored: Any, path: str) -> str:
    """A URL whose masked password stands for the stored URL's (its host or path
    changed around it)."""
    found = _CREDENTIALS.match(stored) if isinstance(stored, str) else None
    if found is None:
        raise UnrestorableMask(path)
    return new.replace(f":{MASK}@", f":{found.group(2)}@", 1)
