"""Write-only secrets in `config`: keys whose names match APPLICATION_SECRET_KEYS
(case-insensitive fnmatch patterns, at any depth) are stored as given and always
answered as MASK; a PUT or PATCH that sends MASK back keeps the stored value."""

import re
from collections.abc import Callable
from fnmatch import translate
from functools import lru_cache
from typing import Any

from ..runtime import current_settings

MASK = "********"
# Whether a config key is secret (patterns()).
Matcher = Callable[[str], bool]


def patterns() -> Matcher | None:
    """This app's secret keys: a matcher (one regular expression for every pattern, each
    key's answer remembered: configs share their few key names), or None when masking
    is off."""
    return _matcher(current_settings().application_secret_keys)


@lru_cache(maxsize=8)
def _matcher(secret_keys: tuple[str, ...]) -> Matcher | None:
    if not secret_keys:
        return None
    match = re.compile("|".join(translate(pattern) for pattern in secret_keys), re.IGNORECASE).match
    return lru_cache(maxsize=4096)(lambda key: match(key) is not None)


def is_secret(key: object, secret_keys: Matcher | None) -> bool:
    return secret_keys is not None and isinstance(key, str) and bool(secret_keys(key))


def masked(value: Any, secret_keys: Matcher | None) -> Any:
    """`value` with every secret key's value replaced by MASK: a copy, or `value` itself
    when it holds nothing to mask (most configs: a few keys with plain values)."""
    if secret_keys is None:
        return value
    if isinstance(value, dict):
        if not any(
            is_secret(key, secret_keys) or isinstance(item, dict | list)
            for key, item in value.items()
        ):
            return value
        return {
            key: MASK if is_secret(key, secret_keys) else masked(item, secret_keys)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item, secret_keys) for item in value]
    return value


def unmasked(new: Any, stored: Any, secret_keys: Matcher | None) -> Any:
    """`new` with each secret key that holds MASK given its stored value back (or left
    out, when nothing is stored there): what a client read, sent back, changes nothing."""
    if secret_keys is None or not isinstance(new, dict):
        return new
    stored = stored if isinstance(stored, dict) else {}
    kept = {}
    for key, value in new.items():
        if is_secret(key, secret_keys) and value == MASK:
            if key in stored:
                kept[key] = stored[key]
        else:
            kept[key] = unmasked(value, stored.get(key), secret_keys)
    return kept
