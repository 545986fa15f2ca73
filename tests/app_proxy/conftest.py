"""The proxy as callers reach it, on both transfers: every test taking `proxy` runs
"python" (this process forwards: the app's test client, or a real server for streams)
and "nginx" (deploy/nginx.conf in front of the app with APP_PROXY_TRANSFER=nginx)."""

import json
import shutil
from contextlib import ExitStack
from typing import Any

import pytest
import requests

from applications_api import create_app
from harness.servers import Nginx, deployed_site, free_port
from tests.support.app import dispose, make_env
from tests.support.backend_verifier import NodeVerifier, PythonVerifier
from tests.support.live_server import LiveServer

# nginx directives standing for the app's settings on the nginx path
NGINX_DIRECTIVES = {
    "APP_PROXY_CONNECT_TIMEOUT": "proxy_connect_timeout",
    "APP_PROXY_READ_TIMEOUT": "proxy_read_timeout",
}


class Answer:
    """A requests response, read in full, shaped like Flask's test response."""

    def __init__(self, response):
        self.status_code = response.status_code
        self.headers = response.headers
        self.data = response.content

    @property
    def json(self):
        return json.loads(self.data)


class HttpClient:
    """Flask's test-client calls, sent over HTTP to a real server."""

    def __init__(self, url):
        self.url = url
        self.session = requests.Session()
        self.session.trust_env = False  # (straight to the server, whatever the environment says)

    def open(self, path, method="GET", headers=None, data=None):
        return Answer(
            self.session.request(
                method,
                self.url + path,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=30,
            )
        )

    def get(self, path, **kwargs):
        return self.open(path, "GET", **kwargs)

    def head(self, path, **kwargs):
        return self.open(path, "HEAD", **kwargs)

    def post(self, path, **kwargs):
        return self.open(path, "POST", **kwargs)


class Proxy:
    """One way to the proxy: `client` for calls, `url` of a real server for streams."""

    def __init__(self, via, app, stack, settings, nginx=None):
        self.via, self.app, self.stack, self.settings = via, app, stack, settings
        self.nginx_directives = nginx or {}
        self._url = None
        self.client = app.test_client() if via == "python" else HttpClient(self.url)

    @property
    def url(self):
        if self._url is None:
            live = self.stack.enter_context(LiveServer(self.app))
            self._url = live.url
            if self.via == "nginx":
                port = free_port()
                overrides: dict[str, Any] = {
                    directive: f"{round(float(self.settings[name]) * 1000)}ms"
                    for name, directive in NGINX_DIRECTIVES.items()
                    if name in self.settings
                }
                overrides.update(self.nginx_directives)
                if "APP_PROXY_DIGEST_MAX_BYTES" in self.settings:
                    overrides["digest_max_bytes"] = int(self.settings["APP_PROXY_DIGEST_MAX_BYTES"])
                site = deployed_site(port, int(live.url.rsplit(":", 1)[1]), **overrides)
                nginx = Nginx(site, port, ready_path="/api/v1/healthcheck/")
                self.stack.callback(nginx.stop)
                self._url = nginx.url
        return self._url


@pytest.fixture(params=["python", "nginx"])
def via(request):
    if request.param == "nginx" and not shutil.which("nginx"):
        pytest.fail("nginx is missing: apt-get install nginx-light (scripts/test.sh does)")
    return request.param


def make_proxy(database_url, via, stack, nginx=None, **settings):
    env = dict(settings)
    if via == "nginx":
        env.update(APP_PROXY_TRANSFER="nginx", TRUSTED_PROXIES="1")
    app = create_app(make_env(database_url, **env))
    stack.callback(dispose, app)
    return Proxy(via, app, stack, settings, nginx)


@pytest.fixture
def proxy_with(database_url, via):
    """proxy_with(nginx={directive: value}, **settings): the proxy on `via`, the app
    built with these settings (and nginx's site with these directives)."""
    with ExitStack() as stack:
        yield lambda nginx=None, **settings: make_proxy(database_url, via, stack, nginx, **settings)


@pytest.fixture(scope="session")
def default_proxies(app, database_url):
    """The proxy with the test settings (caches off), one of each, kept for the session."""
    with ExitStack() as stack:
        yield {
            "python": Proxy("python", app, stack, {}),
            "nginx": lambda: make_proxy(database_url, "nginx", stack),
        }


@pytest.fixture
def proxy(via, default_proxies):
    if callable(default_proxies[via]):
        default_proxies[via] = default_proxies[via]()
    return default_proxies[via]


@pytest.fixture(scope="session")
def verifiers():
    """docs/app-proxy.md's verifiers, in Python and in Node."""
    if not shutil.which("node"):
        pytest.fail("node is missing: apt-get install nodejs npm (scripts/test.sh does)")
    node = NodeVerifier()
    yield [PythonVerifier(), node]
    node.close()
