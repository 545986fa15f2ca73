"""The caller's identity, signed for one application's backend: RFC 9421 HTTP Message
Signatures (hmac-sha256), made with the http-message-signatures library.

Each application has its own key, derived from APP_PROXY_SIGNING_KEY and its id (HKDF-
SHA256), so a backend holds only its own key and a signature made for one application
never verifies at another. `flask --app wsgi app-proxy-key APP_ID` prints it.

Every forwarded request carries `X-App-Proxy-User-Id`, `Signature-Input` and `Signature`
(label and tag `app_proxy`). Covered: `@method`, `@authority` (the Host the backend
receives), `@path`, `@query` (the request target exactly as sent), `x-app-proxy-user-id`,
and `content-digest` (RFC 9530, sha-256) whenever the body was read before forwarding:
an empty body always, a body of at most APP_PROXY_DIGEST_MAX_BYTES on the python transfer.
Larger and chunked bodies stream, and `Signature-Input` then lists no `content-digest`.
Parameters: `created`, `expires` (created + LIFETIME), `keyid` (`application-<id>`),
`alg`, `tag`.
"""

import base64
import datetime
import time
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from http_message_signatures import HTTPMessageSigner, algorithms
from requests.structures import CaseInsensitiveDict

USER_HEADER = "X-App-Proxy-User-Id"
# Headers only this service sets upstream: a caller's are never passed on.
SIGNATURE_HEADERS = ("Signature", "Signature-Input", "Content-Digest")
IDENTITY_HEADERS = (USER_HEADER, *SIGNATURE_HEADERS)
LABEL = TAG = "app_proxy"
COVERED = ("@method", "@authority", "@path", "@query", USER_HEADER.lower())
LIFETIME = 300  # seconds a signature stays valid (its `expires`)


def key_id(app_id):
    return f"application-{app_id}"


@lru_cache(maxsize=1024)
def application_key(secret, app_id):
    """Application `app_id`'s 32-byte signing key: HKDF-SHA256 of the deployment secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"app_proxy signing key {key_id(app_id)}".encode())
    return hkdf.derive(secret.encode())


_SIGNER = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256)


@dataclass
class Message:
    """The request as the backend receives it, in the shape the library reads."""

    method: str
    url: str  # absolute: web_url's origin and the request target, as sent
    headers: CaseInsensitiveDict


def identity_headers(secret, app_id, method, url, user_id, body=None, now=None):
    """X-App-Proxy-User-Id and the signature headers for this request to `url`;
    `body`: the bytes forwarded when they were read (Content-Digest is then covered),
    None when the body streams unread."""
    created = datetime.datetime.fromtimestamp(
        int(time.time() if now is None else now), datetime.timezone.utc)
    message = Message(method, url, CaseInsensitiveDict({USER_HEADER: str(user_id)}))
    # The library builds the signature base (and the digest); its sign() would then
    # build the base a second time to check it, which doubles the cost per request.
    prepared = _SIGNER.prepare(
        message, key_id=key_id(app_id), label=LABEL, tag=TAG, covered_component_ids=COVERED,
        created=created, expires=created + datetime.timedelta(seconds=LIFETIME), body=body)
    signature = algorithms.HMAC_SHA256(private_key=application_key(secret, app_id))
    value = base64.b64encode(signature.sign(prepared.signature_base)).decode()
    return {**message.headers,
            "Signature-Input": f"{LABEL}={prepared.signature_params}",
            "Signature": f"{LABEL}=:{value}:"}
