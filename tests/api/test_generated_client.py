"""A client generated from the served OpenAPI document (openapi-python-client), used
against a live server: if the document regresses, so does the client, and this fails."""

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
CONFIG = (
    "project_name_override: applications-client\n"
    "package_name_override: applications_client\n"
    "post_hooks: []\n"
)


@pytest.fixture(scope="module")
def generated(app, tmp_path_factory):
    """The generated package, imported."""
    root = tmp_path_factory.mktemp("client")
    (root / "openapi.json").write_text(
        json.dumps(app.test_client().get("/api/v1/openapi.json").json)
    )
    (root / "config.yaml").write_text(CONFIG)
    subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            "openapi.json",
            "--meta",
            "none",
            "--output-path",
            "applications_client",
            "--config",
            "config.yaml",
        ],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    package = root / "applications_client"
    spec = importlib.util.spec_from_file_location(
        "applications_client", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec and spec.loader, package
    client = sys.modules["applications_client"] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(client)
        yield client
    finally:
        for name in [name for name in sys.modules if name.startswith("applications_client")]:
            del sys.modules[name]


def api(generated, name):
    return importlib.import_module(f"{generated.__name__}.api.applications.{name}")


def test_the_generated_client_works_against_a_live_server(app, generated, staff):
    models = importlib.import_module(f"{generated.__name__}.models")
    with LiveServer(app) as live:
        client = generated.AuthenticatedClient(
            base_url=live.url, token=staff["Authorization"].split()[1], prefix="Token"
        )

        created = api(generated, "create_application").sync_detailed(
            client=client,
            body=models.ApplicationCreate.from_dict(
                {
                    "name": "Generated",
                    "application_type": "extension",
                    "config": {"web_url": "https://generated.example.com/"},
                }
            ),
        )
        assert created.status_code == 201, created.content
        app_id = created.parsed.id
        assert created.parsed.config.to_dict()["visible_type"] == "empty"

        listed = api(generated, "list_applications").sync_detailed(
            client=client, name="Generated", limit=5
        )
        assert listed.status_code == 200
        assert [item.id for item in listed.parsed] == [app_id]
        assert json.loads(listed.headers["X-Pagination"])["total"] == 1

        retrieved = api(generated, "retrieve_application").sync_detailed(app_id, client=client)
        assert retrieved.parsed.name == "Generated"
        etag = retrieved.headers["ETag"]

        replaced = api(generated, "replace_application").sync_detailed(
            app_id,
            client=client,
            if_match=etag,
            body=models.ApplicationReplace.from_dict(
                {
                    "name": "Replaced",
                    "application_type": "oms",
                    "is_active": True,
                    "is_visible": True,
                    "is_proxy_available": False,
                }
            ),
        )
        assert replaced.status_code == 200 and replaced.parsed.name == "Replaced"

        stale = api(generated, "update_application").sync_detailed(
            app_id,
            client=client,
            if_match=etag,
            body=models.ApplicationPatch.from_dict({"name": "Lost update"}),
        )
        assert stale.status_code == 412

        patched = api(generated, "update_application").sync_detailed(
            app_id, client=client, body=models.ApplicationPatch.from_dict({"name": "Patched"})
        )
        assert patched.status_code == 200 and patched.parsed.name == "Patched"

        deleted = api(generated, "delete_application").sync_detailed(app_id, client=client)
        assert deleted.status_code == 204

        missing = api(generated, "retrieve_application").sync_detailed(2**31 - 2, client=client)
        assert missing.status_code == 404 and missing.parsed.code == 404

        invalid = api(generated, "list_applications").sync_detailed(client=client, limit=0)
        assert invalid.status_code == 400
        assert "limit" in invalid.parsed.errors.to_dict()["query"]
