"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

import gc
import sys

from applications_api import create_app
from applications_api.settings import SettingsError

try:
    app = create_app()
except SettingsError as error:
    sys.exit(f"configuration error: {error}")

# What is loaded by now (the app and its libraries) lives as long as the process. Keep it
# out of the cyclic collector's full collections, which otherwise scan all of it under
# load with every thread of the worker waiting (CPython's gc.freeze, meant for servers;
# docs/architecture.md has what it saved).
gc.freeze()
