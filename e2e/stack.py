"""The production stack on loopback: gunicorn (gunicorn.conf.py, the settings of
deploy/applications-api.env) behind nginx (deploy/nginx.conf), on the PostgreSQL
database named by DATABASE_URL; and gunicorn alone (the embedded transfer) on the same
database."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.servers import Gunicorn, Nginx, deployed_site, free_port
from tests.support.systemd import environment_file

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SIGNING_KEY = "e2e-signing-key"


class Stack:
    def __init__(self, database_url):
        self.dir = Path(tempfile.mkdtemp(prefix="e2e-stack-"))
        os.chmod(self.dir, 0o755)
        # The deployment's own settings file, read as systemd reads it, and what differs
        # on this machine: the database, a key in place of the placeholder, backends.
        self.env = {
            **os.environ,
            **environment_file(ROOT / "deploy" / "applications-api.env"),
            "DATABASE_URL": database_url,
            "APP_PROXY_SIGNING_KEY": SIGNING_KEY,
            # the test backends listen on loopback, which production denies by default
            "APP_PROXY_DENIED_NETWORKS": "169.254.0.0/16,fe80::/10,0.0.0.0/8,::/128",
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics"),
            "LOG_LEVEL": "INFO",
        }
        (self.dir / "metrics").mkdir()
        self.flask("db", "upgrade")
        self.staff_token = self.flask("create-token", "e2e-operator", "--staff")
        self.gunicorn = Gunicorn(self.dir, self.env)
        self.gunicorn_url = self.gunicorn.url
        self.log = self.gunicorn.log
        self.nginx_port = free_port()
        self.nginx = Nginx(
            deployed_site(self.nginx_port, self.gunicorn.port),
            self.nginx_port,
            ready_path="/api/v1/healthcheck/",
        )
        self.url = self.nginx.url
        self.alone = None

    def gunicorn_alone(self):
        """gunicorn as scripts/serve.sh runs it: no nginx, the embedded transfer."""
        if self.alone is None:
            env = {
                **self.env,
                "APP_PROXY_TRANSFER": "python",
                "TRUSTED_PROXIES": "0",
                "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics-alone"),
            }
            (self.dir / "metrics-alone").mkdir()
            self.alone = Gunicorn(self.dir, env)
        return self.alone

    def flask(self, *args):
        result = subprocess.run(
            [BIN / "flask", "--app", "wsgi", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""

    def log_lines(self):
        return self.log.read_text().splitlines()

    def stop(self):
        self.nginx.stop()
        self.gunicorn.stop()
        if self.alone:
            self.alone.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
