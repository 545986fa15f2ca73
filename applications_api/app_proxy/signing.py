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
import time
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from http_message_signatures import ContentDigest, HTTPSignatureComponentResolver, algorithms
from http_message_signatures._components import _parse_component_ids
from http_sf.compat import InnerList

USER_HEADER = "X-App-Proxy-User-Id"
# Headers only this service sets upstream: a caller's are never passed on.
SIGNATURE_HEADERS = ("Signature", "Signature-Input", "Content-Digest")
IDENTITY_HEADERS = (USER_HEADER, *SIGNATURE_HEADERS)
LABEL = TAG = "app_proxy"
COVERED = ("@method", "@authority", "@path", "@query", USER_HEADER.lower())
LIFETIME = 300  # seconds a signature stays valid (its `expires`)
ALGORITHM = algorithms.HMAC_SHA256


def key_id(app_id: int) -> str:
    return f"application-{app_id}"


@lru_cache(maxsize=1024)
def application_key(secret: str, app_id: int) -> bytes:
    """Application `app_id`'s 32-byte signing key: HKDF-SHA256 of the deployment secret."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"app_proxy signing key {key_id(app_id)}".encode(),
    )
    return hkdf.derive(secret.encode())


# The library resolves every covered value (RFC 9421 §2) and serializes the parameters;
# the base is those lines joined (§2.5). Its sign() costs 0.5 ms, as much again as the
# rest of the proxy's decision: per request it parses the component names, builds the
# base twice and serializes the parameters four times. Here the names are parsed once
# and the parameters serialized once per application and second (0.05 ms in all).
_COMPONENTS = {
    digest: _parse_component_ids((*COVERED, "content-digest") if digest else COVERED)
    for digest in (False, True)
}
_NAMED = {digest: [(str(node), node) for node in nodes] for digest, nodes in _COMPONENTS.items()}
EMPTY_DIGEST = ContentDigest.create(b"")  # the digest most requests carry


@lru_cache(maxsize=4096)
def _signature_params(app_id: int, created: int, digest: bool) -> str:
    """The signature's parameters as Signature-Input lists them (and the base ends)."""
    params = InnerList(_COMPONENTS[digest])
    params.params.update(
        created=created,
        keyid=key_id(app_id),
        alg=ALGORITHM.algorithm_id,
        expires=created + LIFETIME,
        tag=TAG,
    )
    return str(params)


@dataclass
class Message:
    """The request as the backend receives it, in the shape the library reads."""

    method: str
    url: str  # absolute: web_url's origin and the request target, as sent
    headers: dict


def identity_headers(
    secret: str,
    app_id: int,
    method: str,
    url: str,
    user_id: int,
    body: bytes | None = None,
    now: float | None = None,
) -> dict[str, str]:
    """X-App-Proxy-User-Id and the signature headers for this request to `url`;
    `body`: the bytes forwarded when they were read (Content-Digest is then covered),
    None when the body streams unread. Raises HTTPMessageSignaturesException for a URL
    that is no absolute URI."""
    created = int(time.time() if now is None else now)
    headers = {USER_HEADER: str(user_id)}
    digest = body is not None
    if body is not None:
        headers["Content-Digest"] = EMPTY_DIGEST if body == b"" else ContentDigest.create(body)
    values = HTTPSignatureComponentResolver(Message(method, url, headers))
    params = _signature_params(app_id, created, digest)
    base = "\n".join(
        [
            *(f"{name}: {values.resolve(node)}" for name, node in _NAMED[digest]),
            f'"@signature-params": {params}',
        ]
    )
    signature = ALGORITHM(private_key=application_key(secret, app_id)).sign(base.encode())
    headers["Signature-Input"] = f"{LABEL}={params}"
    headers["Signature"] = f"{LABEL}=:{base64.b64encode(signature).decode()}:"
    return headers
