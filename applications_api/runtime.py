"""Each app's runtime state in one typed object: its settings and its caches. `runtime()`
and `current_settings()` are how code reaches them."""

from dataclasses import dataclass

from flask import Flask, current_app

from .cache import FreshCache
from .settings import Settings

KEY = "applications_api"


@dataclass
class Runtime:
    settings: Settings
    token_cache: FreshCache  # verified tokens (auth)
    proxy_targets: FreshCache  # proxied applications' web_url (applications.service)
    proxy_keys: FreshCache  # applications' signing key versions (app_proxy.keys)


def init_app(app: Flask, state: Runtime) -> None:
    app.extensions[KEY] = state


def runtime() -> Runtime:
    state: Runtime = current_app.extensions[KEY]
    return state


def current_settings() -> Settings:
    return runtime().settings
