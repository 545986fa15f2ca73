"""History entries at the edges of a diff: a key added with a null value is a change
(the key was absent: JSON tells "k": null from no "k"), and removing it is one too."""

from tests.applications.test_history import URL, history

BODY = {
    "name": "H",
    "application_type": "oms",
    "is_active": True,
    "is_visible": True,
    "is_proxy_available": False,
}


def test_a_key_added_and_removed_with_a_null_value_is_recorded(client, create, staff):
    app_id = create(config={"kept": 1})["id"]
    added = client.put(
        f"{URL}{app_id}/", json={**BODY, "config": {"kept": 1, "k": None}}, headers=staff
    )
    assert added.status_code == 200, added.json
    assert added.json["config"] == {"kept": 1, "k": None, "visible_type": "empty"}
    removed = client.put(f"{URL}{app_id}/", json={**BODY, "config": {"kept": 1}}, headers=staff)
    assert removed.status_code == 200
    entries = history(client, staff, app_id)
    assert [entry["action"] for entry in entries] == ["replace", "replace", "create"]
    for entry in entries[:2]:  # the removal, then the addition
        assert "config.k" in [change["field"] for change in entry["changes"]], entry
