"""Swagger UI through nginx in headless Chromium: the operations listed, and Try it out
on six of them with the pre-filled values."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    not CHROMIUM,
    reason="Chromium is missing: apt-get install chromium (scripts/e2e.sh installs it)",
)
def test_swagger_ui_lists_the_operations(stack):
    assert CHROMIUM  # (skipped otherwise)
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"{stack.url}/api/v1/docs/",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    assert "swagger-ui" in dom
    for summary in (
        "List applications",
        "Create an application (staff only)",
        "Soft-delete an application",
        "Forward a GET to the application",
    ):
        assert summary in dom, summary
    assert "/api/v1/applications/{app_id}/" in dom


CHROMEDRIVER = shutil.which("chromedriver")
# (operationId, the status "Execute" with the pre-filled values answers), in this order:
# the create makes sure application 1, every example's app_id, exists.
TRIED = [
    ("createApplication", 201),
    ("listApplications", 200),
    ("retrieveApplication", 200),
    ("replaceApplication", 200),
    ("updateApplication", 200),
    ("deleteApplication", 204),
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    assert CHROMIUM  # (its tests are skipped otherwise)
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,2400",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def shown_in(block, selector):
    """A wait condition: the elements of `block` matching the CSS `selector` (none yet:
    keep waiting)."""
    from selenium.webdriver.common.by import By

    return lambda _driver: block.find_elements(By.CSS_SELECTOR, selector)


ARTEFACTS = Path(__file__).resolve().parent.parent / "e2e-artefacts"  # (git-ignored)


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium or chromedriver is missing: apt-get install chromium "
    "chromium-driver (scripts/e2e.sh installs them)",
)
def test_try_it_out_with_the_prefilled_values(stack, staff, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        wait = WebDriverWait(browser, 20)
        browser.get(f"{stack.url}/api/v1/docs/")
        wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
        key = wait.until(
            ready.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux input[type=text]"))
        )
        key.send_keys(staff["Authorization"])
        browser.find_element(By.CSS_SELECTOR, ".modal-ux button.authorize").click()
        browser.find_element(By.CSS_SELECTOR, ".modal-ux button.btn-done").click()

        for operation_id, status in TRIED:
            block = browser.find_element(By.CSS_SELECTOR, f"[id$='-{operation_id}']")
            browser.execute_script("arguments[0].scrollIntoView()", block)
            block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
            wait.until(shown_in(block, "button.try-out__btn"))
            block.find_element(By.CSS_SELECTOR, "button.try-out__btn").click()
            wait.until(shown_in(block, "button.execute"))
            block.find_element(By.CSS_SELECTOR, "button.execute").click()
            answered = wait.until(
                shown_in(block, ".live-responses-table tr.response .response-col_status")
            )
            assert answered[0].text.strip() == str(status), (operation_id, block.text[-2000:])
    except BaseException:  # keep what the page showed
        ARTEFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / "try_it_out.png"))
        raise
