"""The production stack on loopback: gunicorn (gunicorn.conf.py) behind nginx
(deploy/nginx.conf), on the PostgreSQL database named by DATABASE_URL."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.servers import Nginx, deployed_site, free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SIGNING_KEY = "e2e-signing-key"


class Stack:
    def __init__(self, database_url):
        self.dir = Path(tempfile.mkdtemp(prefix="e2e-stack-"))
        os.chmod(self.dir, 0o755)
        self.gunicorn_port = free_port()
        self.nginx_port = free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}"
        self.gunicorn_url = f"http://127.0.0.1:{self.gunicorn_port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "APP_ENV": "production",
            "APP_PROXY_SIGNING_KEY": SIGNING_KEY,
            "TRUSTED_PROXIES": "1",
            "GUNICORN_BIND": f"127.0.0.1:{self.gunicorn_port}",
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics"),
            "LOG_LEVEL": "INFO",
        }
        (self.dir / "metrics").mkdir()
        self.flask("db", "upgrade")
        self.staff_token = self.flask("create-token", "e2e-operator", "--staff")
        self.log = self.dir / "gunicorn.log"
        self.gunicorn = subprocess.Popen(
            [BIN / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
        )
        wait_until_up(self.gunicorn_url + "/api/v1/healthcheck/", self.gunicorn, self.log)
        self.nginx = self._start_nginx()

    def flask(self, *args):
        result = subprocess.run(
            [BIN / "flask", "--app", "wsgi", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, check=True,
        )
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    def _start_nginx(self):
        site = deployed_site(self.nginx_port, self.gunicorn_port)
        return Nginx(site, self.nginx_port, ready_path="/api/v1/healthcheck/")

    def log_lines(self):
        return self.log.read_text().splitlines()

    def stop(self):
        self.nginx.stop()
        self.gunicorn.terminate()
        try:
            self.gunicorn.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.gunicorn.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
