"""The interface both transfers offer, and the one APP_PROXY_TRANSFER chose: this process
(python_transfer.py) or nginx (nginx_transfer.py), kept in the app's extensions."""

from typing import Protocol

from flask import Flask, Response, current_app

from ..settings import Settings
from .forwarding import Inbound, Plan
from .nginx_transfer import NginxTransfer
from .python_transfer import PythonTransfer

KEY = "applications_api.app_proxy"


class Transfer(Protocol):
    """Moves a planned app_proxy request to its backend and the answer back: it reads
    the plan and the caller's body (Inbound), nothing of the request besides."""

    def init_app(self, app: Flask) -> None: ...

    def forward(self, plan: Plan, inbound: Inbound) -> Response: ...


def init_app(app: Flask, settings: Settings) -> None:
    transfer: Transfer
    if settings.proxy_transfer == "nginx":
        transfer = NginxTransfer(settings)
    else:
        transfer = PythonTransfer(settings)
    app.extensions[KEY] = transfer
    transfer.init_app(app)


def current() -> Transfer:
    transfer: Transfer = current_app.extensions[KEY]
    return transfer
