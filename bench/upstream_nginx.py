"""nginx on loopback serving static files: the upstream of the proxy benchmarks."""

import os
import re
import tempfile
from pathlib import Path

import requests

from harness.servers import Nginx

SITE = """
sendfile on;
keepalive_requests 1000000;
server {{
    listen 127.0.0.1:{port}{tls};
    root {{prefix}}/files;
    location /upload {{ client_max_body_size 0; return 204; }}
    location = /status {{ stub_status; }}  # (connections accepted so far)
}}
"""
TLS = """ ssl;
    ssl_certificate {certificate};
    ssl_certificate_key {key}"""


PLAIN_PROXY = """
server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
        proxy_pass http://127.0.0.1:{upstream};
        proxy_http_version 1.1;
        proxy_request_buffering off;
        proxy_buffering off;
        client_body_buffer_size 256k;
        proxy_buffer_size 256k;
        proxy_buffers 4 256k;
    }}
}}
"""


def plain_proxy_nginx(port, upstream):
    """nginx proxying everything to `upstream` unbuffered, with no decision and no
    rules: what moving the bytes through one nginx costs by itself."""
    return Nginx(PLAIN_PROXY.format(port=port, upstream=upstream), port)


KEEPALIVE_PROXY = """
upstream backend {{
    server 127.0.0.1:{upstream};
    keepalive 32;
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass https://backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host {name}:{upstream};
        proxy_ssl_server_name on;
        proxy_ssl_name {name};
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {ca};
        proxy_request_buffering off;
        proxy_buffering off;
        client_body_buffer_size 256k;
        proxy_buffer_size 256k;
        proxy_buffers 4 256k;
    }}
}}
"""


def keepalive_proxy_nginx(port, upstream, name, ca):
    """nginx's own proxy_pass to the https server `name` on `upstream`, verified against
    `ca`, over kept-alive connections: the floor of a proxy hop to an https backend."""
    site = KEEPALIVE_PROXY.format(port=port, upstream=upstream, name=name, ca=ca)
    return Nginx(site, port)


def static_nginx(port, files, tls=None):
    """files: {name: size in bytes}, written with random content; https with
    tls=(certificate, key)."""
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    (prefix / "files").mkdir()
    for name, size in files.items():
        with open(prefix / "files" / name, "wb") as out:
            for _ in range(size // (1 << 20)):
                out.write(os.urandom(1 << 20))
            out.write(os.urandom(size % (1 << 20)))
    listen = TLS.format(certificate=tls[0], key=tls[1]) if tls else ""
    # (its readiness is asked over plain http: an https port answers that with a 400)
    server = Nginx(SITE.format(port=port, tls=listen), port, prefix=prefix)
    if tls:
        server.url = f"https://localhost:{port}"  # (the certificate's name)
    return server


def accepted_connections(server, ca):
    """Connections the https `server` (static_nginx) accepted so far, this one's among
    them; `ca` signed its certificate."""
    status = requests.get(f"{server.url}/status", verify=str(ca), timeout=10).text
    accepted = re.search(r"\n\s*(\d+) \d+ \d+", status)
    assert accepted, status
    return int(accepted.group(1))
