"""Swagger UI, opened through nginx in headless Chromium, lists the operations."""

import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM, reason="Chromium is missing: apt-get install chromium "
                                         "(scripts/e2e.sh installs it)")
def test_swagger_ui_lists_the_operations(stack):
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             "--virtual-time-budget=20000", "--dump-dom", f"{stack.url}/api/v1/docs/"],
            capture_output=True, text=True, timeout=120,
        ).stdout
    assert "swagger-ui" in dom
    for summary in ("List applications", "Create an application (staff only)",
                    "Soft-delete an application", "Forward a GET to the application"):
        assert summary in dom, summary
    assert "/api/v1/applications/{app_id}/" in dom
