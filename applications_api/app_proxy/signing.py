"""The caller's identity, signed for one application's backend: RFC 9421 HTTP Message
Signatures, one for each key the application signs with at the moment (keys.py: one,
or two while a rotation's grace period lasts), in the shape the http-message-signatures
library reads and writes.

A key is `hmac-sha256` (a secret the backend holds too) or `ed25519` (the backend holds
only the public key, published as a JWKS). Its material is derived from the deployment
secret and its keyid with HKDF-SHA256, so the database holds no secret.

Every forwarded request carries `X-App-Proxy-User-Id`, `Signature-Input` and `Signature`,
each signature labelled with its keyid. Covered: `@method`, `@authority` (the Host the
backend receives), `@path`, `@query` (the request target exactly as sent),
`x-app-proxy-user-id`, and `content-digest` (RFC 9530, sha-256) whenever the body was
read before forwarding: an empty body always, a body of at most
APP_PROXY_DIGEST_MAX_BYTES on both transfers. Larger and chunked bodies stream, and
`Signature-Input` then lists no `content-digest`. Parameters: `created`, `keyid`, `alg`,
`expires` (created + LIFETIME), `nonce` (one per request, the same in each of its
signatures: a backend that knows both keys of a rotation cannot be made to accept a
replay under the other signature), `tag` (`app_proxy`).
"""

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from http_message_signatures import ContentDigest, HTTPSignatureComponentResolver
from http_message_signatures._components import _parse_component_ids
from http_sf.compat import InnerList

USER_HEADER = "X-App-Proxy-User-Id"
# Headers only this service sets upstream: a caller's are never passed on.
SIGNATURE_HEADERS = ("Signature", "Signature-Input", "Content-Digest")
IDENTITY_HEADERS = (USER_HEADER, *SIGNATURE_HEADERS)
TAG = "app_proxy"
COVERED = ("@method", "@authority", "@path", "@query", USER_HEADER.lower())
LIFETIME = 300  # seconds a signature stays valid (its `expires`)
HMAC_SHA256, ED25519 = "hmac-sha256", "ed25519"
ALGORITHMS = (HMAC_SHA256, ED25519)


def derive(secret: str, key_id: str, algorithm: str) -> bytes:
    """32 bytes of key material for `key_id`: HKDF-SHA256 of the deployment secret. (An
    application's first HMAC key, `application-<id>`, is the one it always had.)"""
    purpose = "signing key" if algorithm == HMAC_SHA256 else f"{algorithm} key"
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"app_proxy {purpose} {key_id}".encode(),
    )
    return hkdf.derive(secret.encode())


class SigningKey:
    """One key version, ready to sign: an HMAC secret or an Ed25519 private key."""

    def __init__(self, key_id: str, algorithm: str, material: bytes) -> None:
        self.key_id, self.algorithm, self.material = key_id, algorithm, material
        self.private = (
            Ed25519PrivateKey.from_private_bytes(material) if algorithm == ED25519 else None
        )

    def sign(self, base: bytes) -> bytes:
        if self.private is not None:
            return self.private.sign(base)
        return hmac.digest(self.material, base, "sha256")

    def public_bytes(self) -> bytes:
        """The Ed25519 public key, raw (RFC 8032): what the JWKS publishes."""
        assert self.private is not None, "an HMAC key has no public half"
        return self.private.public_key().public_bytes_raw()


@lru_cache(maxsize=4096)
def signing_key(secret: str, key_id: str, algorithm: str) -> SigningKey:
    return SigningKey(key_id, algorithm, derive(secret, key_id, algorithm))


# The library resolves every covered value (RFC 9421 §2) and serializes the parameters;
# the base is those lines joined (§2.5). Its sign() parses the component names, builds
# the base twice and serializes the parameters four times per request, as much again as
# the rest of the proxy's decision (bench/JOURNAL.md). Here the names are parsed once,
# the parameters up to `expires` serialized once per key and second, and the base's
# lines shared by every signature of the request.
_COMPONENTS = {
    digest: _parse_component_ids((*COVERED, "content-digest") if digest else COVERED)
    for digest in (False, True)
}
_NAMED = {digest: [(str(node), node) for node in nodes] for digest, nodes in _COMPONENTS.items()}
EMPTY_DIGEST = ContentDigest.create(b"")  # the digest most requests carry


def content_digest(body: bytes) -> str:
    """RFC 9530's sha-256 Content-Digest, as ContentDigest.create() writes it, at a
    third of its cost (it builds and serializes a Structured Field dictionary)."""
    if not body:
        return EMPTY_DIGEST
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


@lru_cache(maxsize=4096)
def _timed_params(key_id: str, algorithm: str, created: int, digest: bool) -> str:
    """The signature's parameters as Signature-Input lists them, up to the nonce."""
    params = InnerList(_COMPONENTS[digest])
    params.params.update(created=created, keyid=key_id, alg=algorithm, expires=created + LIFETIME)
    return str(params)


def new_nonce() -> str:
    """128 random bits, URL-safe base64: a valid Structured Field String."""
    return secrets.token_urlsafe(16)


@dataclass
class Message:
    """The request as the backend receives it, in the shape the library reads."""

    method: str
    url: str  # absolute: web_url's origin and the request target, as sent
    headers: dict


def identity_headers(
    keys: Sequence[SigningKey],
    method: str,
    url: str,
    user_id: int,
    body: bytes | None = None,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """X-App-Proxy-User-Id and the signature headers for this request to `url`, a
    signature for each of `keys`; `body`: the bytes forwarded when they were read
    (Content-Digest is then covered), None when the body streams unread. Raises
    HTTPMessageSignaturesException for a URL that is no absolute URI."""
    assert keys, "a request is never forwarded unsigned"
    created = int(time.time() if now is None else now)
    nonce = new_nonce() if nonce is None else nonce
    headers = {USER_HEADER: str(user_id)}
    digest = body is not None
    if body is not None:
        headers["Content-Digest"] = content_digest(body)
    values = HTTPSignatureComponentResolver(Message(method, url, headers))
    lines = "".join(f"{name}: {values.resolve(node)}\n" for name, node in _NAMED[digest])
    inputs, signatures = [], []
    for key in keys:
        timed = _timed_params(key.key_id, key.algorithm, created, digest)
        params = f'{timed};nonce="{nonce}";tag="{TAG}"'
        signature = key.sign(f'{lines}"@signature-params": {params}'.encode())
        inputs.append(f"{key.key_id}={params}")
        signatures.append(f"{key.key_id}=:{base64.b64encode(signature).decode()}:")
    headers["Signature-Input"] = ", ".join(inputs)
    headers["Signature"] = ", ".join(signatures)
    return headers
