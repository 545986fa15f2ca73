"""nginx on loopback serving static files: the upstream of the proxy benchmarks."""

import os
import tempfile
from pathlib import Path

from tests.support.servers import Nginx

SITE = """
sendfile on;
keepalive_requests 1000000;
server {{
    listen 127.0.0.1:{port};
    root {{prefix}}/files;
    location /upload {{ client_max_body_size 0; return 204; }}
}}
"""


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


def static_nginx(port, files):
    """files: {name: size in bytes}, written with random content."""
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    (prefix / "files").mkdir()
    for name, size in files.items():
        with open(prefix / "files" / name, "wb") as out:
            for _ in range(size // (1 << 20)):
                out.write(os.urandom(1 << 20))
            out.write(os.urandom(size % (1 << 20)))
    return Nginx(SITE.format(port=port), port, prefix=prefix)
