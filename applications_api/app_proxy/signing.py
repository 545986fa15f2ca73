"""The caller's identity, signed so an application's backend can trust it.

The signature is HMAC-SHA256, keyed with APP_PROXY_SIGNING_KEY, over these five lines
joined by "\\n" (no trailing newline), as hex:

    METHOD            e.g. GET
    PATH              the request path the backend receives, as sent (percent-encoded)
    QUERY             the raw query string, without "?" (empty when none)
    TIMESTAMP         X-App-Proxy-Timestamp: Unix seconds
    USER_ID           X-App-Proxy-User-Id

Backends should also refuse a timestamp older than a few minutes (replays).
"""

import hashlib
import hmac
import time

USER_HEADER = "X-App-Proxy-User-Id"
TIMESTAMP_HEADER = "X-App-Proxy-Timestamp"
SIGNATURE_HEADER = "X-App-Proxy-Signature"
IDENTITY_HEADERS = (USER_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)


def signature(key, method, path, query, timestamp, user_id):
    message = "\n".join((method, path, query, str(timestamp), str(user_id)))
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def identity_headers(key, method, path, query, user_id, now=None):
    timestamp = int(time.time() if now is None else now)
    return {
        USER_HEADER: str(user_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(key, method, path, query, timestamp, user_id),
    }


def verify(key, method, path, query, headers, max_age=300, now=None):
    """What a backend does: True when the identity headers are genuine and fresh."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
        user_id = headers[USER_HEADER]
        given = headers[SIGNATURE_HEADER]
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > max_age:
        return False
    expected = signature(key, method, path, query, timestamp, user_id)
    return hmac.compare_digest(expected, given)
