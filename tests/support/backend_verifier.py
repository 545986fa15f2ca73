"""What an application's backend does with a proxied request: docs/app-proxy.md's verification
snippet, run as extension authors copy it (it verifies with http-message-signatures);
and a client that sends request targets byte for byte."""

import re
import socket
from pathlib import Path

from applications_api.app_proxy import signing
from tests.support.app import SIGNING_KEY

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "app-proxy.md").read_text()


def readme_snippet():
    """docs/app-proxy.md's verification snippet, run as extension authors would copy it."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
    namespace = {}
    exec(next(block for block in blocks if "def verified_user(" in block), namespace)
    return namespace["verified_user"]


verified_user = readme_snippet()


def user_at(received, app_id, body=None, key=None):
    """The user id the backend may trust for what it `received`, or None; `key`: the
    application's (the tests' deployment secret's by default)."""
    key = signing.application_key(SIGNING_KEY, app_id) if key is None else key
    url = f"http://{received.headers['Host']}{received.path}"
    return verified_user(signing.key_id(app_id), key, received.method, url, received.headers, body)


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
