"""End-to-end: PostgreSQL, gunicorn and nginx on loopback, started and stopped here.

Run through scripts/e2e.sh, which installs nginx and Chromium when missing and gives
this suite a fresh PostgreSQL database in DATABASE_URL.
"""

import os
import shutil

import pytest

from e2e.stack import Stack
from tests.support.upstream import Upstream


@pytest.fixture(scope="session")
def stack():
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql")):
        pytest.fail("the end-to-end suite needs DATABASE_URL pointing at PostgreSQL")
    if not shutil.which("nginx"):
        pytest.fail("nginx is missing: apt-get install nginx-light (scripts/e2e.sh does)")
    running = Stack(database_url)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def staff(stack):
    return {"Authorization": f"Token {stack.staff_token}"}


@pytest.fixture(scope="session")
def upstream():
    server = Upstream()
    yield server
    server.close()
