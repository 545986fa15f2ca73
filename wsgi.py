"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

import sys

from applications_api import create_app
from applications_api.settings import SettingsError

try:
    app = create_app()
except SettingsError as error:
    sys.exit(f"configuration error: {error}")
