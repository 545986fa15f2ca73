"""Each app's runtime state in one typed object: its settings, its caches and app_proxy's
transfer. `runtime()` and `current_settings()` are how code reaches them."""

from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, Response, current_app

from .cache import FreshCache
from .settings import Settings

KEY = "applications_api"


class Transfer(Protocol):
    """Moves a planned app_proxy request to its backend and the answer back."""

    def init_app(self, app: Flask) -> None: ...

    # (target: app_proxy.forwarding.Target, which imports this module)
    def forward(self, app_id: int, target: Any) -> Response: ...


@dataclass
class Runtime:
    settings: Settings
    token_cache: FreshCache  # verified tokens (auth)
    proxy_targets: FreshCache  # proxied applications' web_url (applications.service)
    proxy_keys: FreshCache  # applications' signing key versions (app_proxy.keys)
    transfer: Transfer  # app_proxy's (app_proxy.views.transfer_for)


def init_app(app: Flask, state: Runtime) -> None:
    app.extensions[KEY] = state


def runtime() -> Runtime:
    state: Runtime = current_app.extensions[KEY]
    return state


def current_settings() -> Settings:
    return runtime().settings
