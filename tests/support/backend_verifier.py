"""What an application's backend does with a proxied request: docs/app-proxy.md's
verifiers, run as extension authors copy them (in Python with http-message-signatures,
in Node with the npm package of that name); and a client that sends request targets
byte for byte."""

import base64
import json
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from applications_api.app_proxy import keys, signing
from tests.support.app import SIGNING_KEY

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "app-proxy.md").read_text()


def guide_code(language, defining):
    """docs/app-proxy.md's code block in `language` that defines `defining`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", GUIDE, re.S)
    return next(block for block in blocks if defining in block)


PYTHON: dict[str, Any] = {}
exec(guide_code("python", "def verified_user("), PYTHON)


class Trusted:
    """What a backend knows: HMAC keys the operator handed it ({keyid: hex}), and a JWKS
    it fetched (the JSON, as it was then)."""

    def __init__(self, hmac=None, jwks=None):
        self.hmac, self.jwks = dict(hmac or {}), jwks

    def python_keys(self):
        found = {kid: PYTHON["hmac_key"](hex_key) for kid, hex_key in self.hmac.items()}
        if self.jwks is not None:
            found.update(PYTHON["keys_of"](self.jwks))
        return found


def hmac_trusted(app_id, version=1, secret=SIGNING_KEY):
    """A backend holding application `app_id`'s HMAC key of `version`."""
    kid = keys.key_id(app_id, version)
    return Trusted(hmac={kid: signing.derive(secret, kid, signing.HMAC_SHA256).hex()})


def url_of(received):
    return f"http://{received.headers['Host']}{received.path}"


class PythonVerifier:
    name = "python"

    def __init__(self):
        self.seen = {}

    def user(self, received, trusted, body=None, seen=None):
        """The user id the backend may trust for what it `received`, or None; `seen`: the
        name of a seen-set of nonces (made on first use), or None for none."""
        nonces = None if seen is None else self.seen.setdefault(seen, PYTHON["SeenNonces"]())
        return PYTHON["verified_user"](
            trusted.python_keys(), received.method, url_of(received), received.headers, body, nonces
        )

    def fetch_kids(self, url):
        return sorted(PYTHON["fetch_keys"](url))


class NodeVerifier:
    """docs/app-proxy.md's Node verifier in one node process, asked one request a line
    (tests/support/node_verifier.js)."""

    name = "node"

    def __init__(self):
        if not (ROOT / "node_modules" / "http-message-signatures").is_dir():
            raise RuntimeError("the Node verifier's package is missing: npm ci (scripts/test.sh)")
        self.process = subprocess.Popen(
            [shutil.which("node") or "node", str(Path(__file__).with_name("node_verifier.js"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stdin and self.process.stdout  # (both piped)
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.stdin.write(json.dumps(guide_code("js", "async function verifiedUser(")))
        self.stdin.write("\n")

    def ask(self, **question):
        self.stdin.write(json.dumps(question) + "\n")
        self.stdin.flush()
        answer = json.loads(self.stdout.readline())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def user(self, received, trusted, body=None, seen=None):
        target = received.path
        return self.ask(
            op="verify",
            hmac=trusted.hmac,
            jwks=trusted.jwks,
            request={
                "method": received.method,
                "scheme": "http",
                "target": target,
                "headers": {name.lower(): value for name, value in received.headers.items()},
            },
            body=None if body is None else base64.b64encode(body).decode(),
            seen=seen,
        )

    def fetch_kids(self, url):
        return sorted(self.ask(op="fetch", url=url))

    def close(self):
        self.stdin.close()
        self.process.wait(timeout=10)


_python = PythonVerifier()


def user_at(received, app_id, body=None, key=None, version=1):
    """The user id the docs' Python verifier trusts, knowing application `app_id`'s HMAC
    key of `version` (the tests' deployment secret's, or `key`'s bytes), or None."""
    trusted = hmac_trusted(app_id, version)
    if key is not None:
        trusted = Trusted(hmac={keys.key_id(app_id, version): key.hex()})
    return _python.user(received, trusted, body)


def send_raw(base_url, method, target, headers, body=None, chunks=None):
    """Send the request line exactly as given (str targets as UTF-8 bytes); return the
    status. `chunks`: a chunked body."""
    host, port = base_url.removeprefix("http://").split(":")
    head = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    payload = b""
    if body is not None:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    if chunks is not None:
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall("\r\n".join([*head, "", ""]).encode() + payload)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])
