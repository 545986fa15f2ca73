"""Starting real servers on loopback for the end-to-end suite and the benchmark:
waiting until one answers, and nginx with a single site."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]

NGINX_MAIN = """
daemon off;
worker_processes 1;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
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
    include {prefix}/site.conf;
}}
"""


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: str | Path | None = None
) -> None:
    """Return once `url` answers; fail early, with the log's tail, if `process` exits."""

    def tail() -> str:
        return Path(log).read_text()[-2000:] if log and Path(log).exists() else ""

    for _ in range(150):
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited: {tail()}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:  # refused, or too busy starting to answer
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up: {tail()}")


class Nginx:
    """nginx on 127.0.0.1:`port` serving one site: `site` holds the http-level
    directives and server block, with `{prefix}` standing for nginx's directory."""

    def __init__(
        self, site: str, port: int, ready_path: str = "/", prefix: str | Path | None = None
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.prefix = Path(prefix or tempfile.mkdtemp(prefix="nginx-"))
        os.chmod(self.prefix, 0o755)  # nginx's workers run as another user
        (self.prefix / "site.conf").write_text(site.replace("{prefix}", str(self.prefix)))
        (self.prefix / "nginx.conf").write_text(NGINX_MAIN.format(prefix=self.prefix))
        nginx = shutil.which("nginx") or "nginx"  # (if missing, Popen says so by name)
        self.process = subprocess.Popen(
            [nginx, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_up(self.url + ready_path, self.process, self.prefix / "error.log")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.prefix, ignore_errors=True)


def up_to(limit: int) -> str:
    """A regular expression matching the decimal numbers 1 to `limit`, written plainly
    (no leading zeros): deploy/nginx.conf's for APP_PROXY_DIGEST_MAX_BYTES."""
    digits = str(limit)
    shorter = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 2 else []
    shorter += ["[1-9]"] if len(digits) == 2 else []
    same = []
    for place, digit in enumerate(digits):
        last = place == len(digits) - 1
        low, high = (1 if place == 0 else 0), int(digit) - (0 if last else 1)
        if high >= low:
            rest = len(digits) - place - 1
            tail = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" * rest
            same.append(f"{digits[:place]}[{low}-{high}]{tail}")
    return "|".join(shorter + same)


BUFFERED_BODY = '"~^:(?:{})$" 1;'  # deploy/nginx.conf's $app_proxy_buffered


def deployed_site(
    nginx_port: int, app_port: int, digest_max_bytes: int = 1024 * 1024, **directives: object
) -> str:
    """deploy/nginx.conf listening on `nginx_port`, in front of the app on `app_port`,
    reading first the bodies up to `digest_max_bytes` (APP_PROXY_DIGEST_MAX_BYTES);
    each keyword replaces that directive's value wherever it stands
    (proxy_read_timeout="300ms")."""
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site = site.replace("listen 80;", f"listen 127.0.0.1:{nginx_port};")
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};")
    deployed = BUFFERED_BODY.format(up_to(1024 * 1024))
    assert deployed in site, "deploy/nginx.conf reads first bodies other than up to 1 MiB"
    limit = up_to(digest_max_bytes) if digest_max_bytes else "$^"
    site = site.replace(deployed, BUFFERED_BODY.format(limit))
    for name, value in directives.items():
        site = re.sub(rf"(\n\s*{name}) [^;]+;", rf"\1 {value};", site)
    return site


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """gunicorn -c gunicorn.conf.py wsgi:app on a free loopback port, logging to a file
    in `directory`; `env` is the whole environment."""

    def __init__(self, directory: str | Path, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(directory) / f"gunicorn-{self.port}.log"
        self.env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        bin_dir = Path(sys.executable).parent
        self.process = subprocess.Popen(
            [bin_dir / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "w"),
            stderr=subprocess.STDOUT,
        )
        wait_until_up(self.url + "/api/v1/healthcheck/", self.process, self.log)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def register_backend(
    service_url: str, headers: Mapping[str, str], web_url: str, name: str = "Backend"
) -> int:
    """Register an application whose backend is `web_url`, through the running service
    at `service_url`, and return its id."""
    response = requests.post(
        f"{service_url}/api/v1/applications/",
        json={
            "name": name,
            "application_type": "extension",
            "is_proxy_available": True,
            "config": {"web_url": web_url},
        },
        headers=headers,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]
