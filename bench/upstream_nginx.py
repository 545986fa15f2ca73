"""nginx on loopback serving static files: the upstream of the proxy benchmarks."""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import requests

CONFIG = """
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    sendfile on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/files;
        location /upload {{ client_max_body_size 0; return 204; }}
    }}
}}
"""


class Nginx:
    def __init__(self, port, files):
        """files: {name: size in bytes}, written with random content."""
        self.port = port
        self.prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        os.chmod(self.prefix, 0o755)
        (self.prefix / "files").mkdir()
        for name, size in files.items():
            with open(self.prefix / "files" / name, "wb") as out:
                for _ in range(size // (1 << 20)):
                    out.write(os.urandom(1 << 20))
                out.write(os.urandom(size % (1 << 20)))
        (self.prefix / "nginx.conf").write_text(CONFIG.format(prefix=self.prefix, port=port))
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(self.url + "/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start: " + (self.prefix / "error.log").read_text())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(self.prefix)], check=False)
