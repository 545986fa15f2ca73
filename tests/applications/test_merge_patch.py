"""RFC 7396 (JSON Merge Patch) from the standard's side: its Appendix A examples, taken
as written, on merge_patch() and through PATCH's config; and the rule they test least,
that a null inside an object the patch brings anew is removed, never stored."""

import pytest

from applications_api.applications.service import merge_patch
from tests.applications.test_history import URL, stored_config

# RFC 7396 Appendix A: (original, patch, result)
APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("original, patch, result", APPENDIX_A)
def test_rfc_7396_appendix_a(original, patch, result):
    before = repr((original, patch))
    assert merge_patch(original, patch) == result
    assert repr((original, patch)) == before  # neither argument is changed


@pytest.mark.parametrize(
    "original, patch, result",
    [case for case in APPENDIX_A if isinstance(case[0], dict) and isinstance(case[1], dict)],
)
def test_patch_merges_config_as_rfc_7396_says(app, client, create, staff, original, patch, result):
    app_id = create(config=original)["id"]
    response = client.patch(f"{URL}{app_id}/", json={"config": patch}, headers=staff)
    assert response.status_code == 200, response.json
    assert stored_config(app, app_id) == {"visible_type": "empty", **result}


@pytest.mark.parametrize(
    "patch, stored",
    [
        ({"new": {"a": 1, "b": None}}, {"new": {"a": 1}}),
        ({"new": {"deeper": {"x": None, "y": [None]}}}, {"new": {"deeper": {"y": [None]}}}),
        ({"new": {"only": None}}, {"new": {}}),
        (
            {"old": {"kept": 1, "gone": None, "added": {"n": None}}},
            {"old": {"kept": 1, "added": {}}},
        ),
    ],
)
def test_nulls_inside_a_new_object_are_removed_not_stored(
    app, client, create, staff, patch, stored
):
    """A null says "no such member" at any depth; in an array it is a value like others."""
    app_id = create(config={"old": {"kept": 1}})["id"]
    response = client.patch(f"{URL}{app_id}/", json={"config": patch}, headers=staff)
    assert response.status_code == 200, response.json
    expected = {"visible_type": "empty", "old": {"kept": 1}, **stored}
    assert stored_config(app, app_id) == expected
    assert response.json["config"] == expected
