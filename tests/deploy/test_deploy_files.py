"""The files an operator installs as they are: the environment file loads under
systemd's rules into settings the service starts with, and the unit and the guide name
it (issue: what a new user and an operator meet in their first hour)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from applications_api.settings import SettingsError, load_settings
from tests.support.systemd import environment_file

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "deploy" / "applications-api.env"
KEY = "ab" * 32


@pytest.mark.parametrize(
    "line, expected",
    [
        ("A=1   # about one per core", {"A": "1   # about one per core"}),
        ("  # a comment", {}),
        ("; a comment", {}),
        ("B='x y'  ", {"B": "x y"}),
        ('C="a\\"b"', {"C": 'a"b'}),
        ("D=$(python3 -c 'print(1)')", {"D": "$(python3 -c 'print(1)')"}),
        ("H=<python3 -c 'x'>", {"H": "<python3 -c 'x'>"}),
        ("I='a'  'b'", {"I": "ab"}),
        ("E=a\\\nb", {"E": "ab"}),
        ("F", {}),
        ("  G =  v  ", {"G": "v"}),
    ],
)
def test_the_reader_follows_systemd(tmp_path, line, expected):
    path = tmp_path / "env"
    path.write_text(line + "\n")
    assert environment_file(path) == expected


def shipped(**changes):
    return {**environment_file(ENV_FILE), **changes}


def test_every_value_is_literal_and_comments_stand_alone():
    for name, value in environment_file(ENV_FILE).items():
        assert "#" not in value and "$" not in value and value == value.strip(), name


def test_the_shipped_file_refuses_to_start_until_a_key_is_put_in():
    with pytest.raises(SettingsError, match="APP_PROXY_SIGNING_KEY: replace the placeholder"):
        load_settings(shipped())


def test_the_shipped_file_loads_as_the_deployment_guide_says():
    settings = load_settings(shipped(APP_PROXY_SIGNING_KEY=KEY))
    assert settings.environment == "production"
    assert settings.proxy_transfer == "nginx"
    assert settings.trusted_proxies == 1
    assert settings.database_url == "postgresql+psycopg://applications@/applications"
    assert settings.server.bind == "127.0.0.1:8000"
    assert settings.server.workers == 4


def test_gunicorn_takes_its_settings_from_the_file():
    read = (
        "import json, runpy; ns = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps([ns['bind'], ns['workers'], ns['threads']]))"
    )
    env = {"PATH": "/usr/bin:/bin", **shipped(APP_PROXY_SIGNING_KEY=KEY)}
    done = subprocess.run(
        [sys.executable, "-c", read], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["127.0.0.1:8000", 4, 8]


def test_gunicorn_stops_at_a_value_with_a_comment_after_it():
    env = {
        "PATH": "/usr/bin:/bin",
        **shipped(APP_PROXY_SIGNING_KEY=KEY, GUNICORN_WORKERS="4   # about one per core"),
    }
    done = subprocess.run(
        [sys.executable, "-c", "import runpy; runpy.run_path('gunicorn.conf.py')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "configuration error: GUNICORN_WORKERS:" in done.stderr


def test_the_unit_and_the_guide_name_the_file():
    unit = (ROOT / "deploy" / "applications-api.service").read_text()
    assert "EnvironmentFile=/etc/applications-api.env" in unit
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert "install -m 600 deploy/applications-api.env /etc/applications-api.env" in guide


def serve_once(checkout, env):
    """scripts/serve.sh until it serves: what it printed."""
    from harness.servers import free_port, wait_until_up

    port = free_port()
    log = checkout / f"serve-{port}.log"
    process = subprocess.Popen(
        [checkout / "scripts" / "serve.sh"],
        env={**env, "PORT": str(port)},
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/v1/healthcheck/", process, log)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return log.read_text()


def test_serve_sh_keeps_its_token_and_a_development_signing_key(tmp_path):
    """The README's first command, run twice in a checkout of its own: the same staff
    token, and app_proxy signing with a key made once and kept."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("applications_api", "migrations", "wsgi.py", "gunicorn.conf.py"):
        (checkout / name).symlink_to(ROOT / name)
    for name in ("requirements.txt", ".venv"):
        (checkout / name).symlink_to(ROOT / name)
    for name in ("serve.sh", "setup-venv.sh"):
        (checkout / "scripts" / name).symlink_to(ROOT / "scripts" / name)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    first, second = serve_once(checkout, env), serve_once(checkout, env)

    def token(printed):
        return printed.split("Staff token:", 1)[1].split()[0]

    assert token(first) == token(second)
    key_file = checkout / "instance" / "development-signing-key"
    assert len(key_file.read_text().strip()) == 64
    assert key_file.stat().st_mode & 0o077 == 0
    assert "APP_PROXY_SIGNING_KEY is not set" not in first + second
    command = "APP_PROXY_SIGNING_KEY=$(cat instance/development-signing-key) "
    assert command + ".venv/bin/flask --app wsgi app-proxy-key APP_ID" in first
    with_app = (
        "import wsgi; from applications_api.applications import service;"
        "ctx = wsgi.app.app_context(); ctx.push();"
        "from applications_api.applications.history import Actor;"
        "print(service.create_application({'name': 'Mine', 'application_type': 'extension'},"
        " Actor(None, None))['id'])"
    )
    app_id = subprocess.run(
        [".venv/bin/python", "-c", with_app], cwd=checkout, env=env, capture_output=True, text=True
    ).stdout.split()[-1]
    printed = subprocess.run(
        ["bash", "-c", command + f".venv/bin/flask --app wsgi app-proxy-key {app_id}"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    assert printed.returncode == 0, printed.stderr
    assert f"application-{app_id}" in printed.stdout
    assert re.search(r"\b[0-9a-f]{64}\b", printed.stdout)  # the HMAC key its backend uses
