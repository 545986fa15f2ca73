import json

import pytest

URL = "/api/v1/applications/"


def ids(response):
    assert response.status_code == 200, response.json
    return [row["id"] for row in response.json]


@pytest.fixture
def catalogue(create, client, staff):
    """Five applications with distinct names, types, states and related ids."""
    rows = [
        create(name="Alpha Shop", application_type="commerce", related_application_id="REL-1"),
        create(name="alpha tool", application_type="extension"),
        create(name="Beta", application_type="extension", related_application_id="rel-1"),
        create(name="Gamma 100%", application_type="oms"),
        create(name="Delta_x", application_type="extension"),
    ]
    client.delete(f"{URL}{rows[1]['id']}/", headers=staff)
    return [row["id"] for row in rows]


def test_list_is_a_bare_array_sorted_by_id(catalogue, client, reader):
    response = client.get(URL, headers=reader)
    assert isinstance(response.json, list)
    assert ids(response) == catalogue


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"name": "Beta"}, [2]),
        ({"name": "beta"}, []),
        ({"application_type": "extension"}, [1, 2, 4]),
        ({"is_active": "false"}, [1]),
        ({"is_active": "False"}, [1]),
        ({"is_active": "0"}, [1]),
        ({"is_active": "true"}, [0, 2, 3, 4]),
        ({"is_active": "True"}, [0, 2, 3, 4]),
        ({"is_active": "1"}, [0, 2, 3, 4]),
        ({"name__contains": "alpha"}, [1]),
        ({"name__contains": "Alpha"}, [0]),
        ({"name__icontains": "ALPHA"}, [0, 1]),
        ({"name__contains": "100%"}, [3]),
        ({"name__contains": "%"}, [3]),
        ({"name__contains": "_"}, [4]),
        ({"name__icontains": "a_X"}, [4]),
        ({"related_application_id__iexact": "rel-1"}, [0, 2]),
        ({"related_application_id__iexact": "REL"}, []),
        ({"application_type": "extension", "is_active": "true"}, [2, 4]),
        ({"name__icontains": "a", "application_type": "commerce"}, [0]),
        ({"unknown_parameter": "whatever"}, [0, 1, 2, 3, 4]),
    ],
)
def test_filters(catalogue, client, reader, query, expected):
    assert ids(client.get(URL, query_string=query, headers=reader)) == [
        catalogue[i] for i in expected
    ]


def test_substring_filters_take_the_escape_character_literally(create, client, reader):
    """name__contains and name__icontains escape LIKE's wildcards with "/": a "/" the
    caller sends is a plain character too."""
    slash, plain = create(name="a/b")["id"], create(name="ab")["id"]
    for name, expected in [("/", [slash]), ("a/b", [slash]), ("A/B", []), ("/b", [slash])]:
        assert ids(client.get(URL, query_string={"name__contains": name}, headers=reader)) == (
            expected
        ), name
    icontains = client.get(URL, query_string={"name__icontains": "A/"}, headers=reader)
    assert ids(icontains) == [slash]
    assert plain not in ids(client.get(URL, query_string={"name__contains": "a/"}, headers=reader))


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("id", [0, 1, 2, 3, 4]),
        ("-id", [4, 3, 2, 1, 0]),
        ("name", [0, 2, 4, 3, 1]),
        ("-name", [1, 3, 4, 2, 0]),
        ("created_date", [0, 1, 2, 3, 4]),
        ("-created_date", [4, 3, 2, 1, 0]),
        ("modified_date", [0, 2, 3, 4, 1]),
        ("-modified_date", [1, 4, 3, 2, 0]),
    ],
)
def test_sort(catalogue, client, reader, sort, expected):
    assert ids(client.get(URL, query_string={"sort": sort}, headers=reader)) == [
        catalogue[i] for i in expected
    ]


def test_pagination_headers(create, client, reader):
    created = [create(name=f"app {i}")["id"] for i in range(7)]
    response = client.get(
        URL, query_string={"limit": 3, "page": 2, "name__icontains": "app"}, headers=reader
    )
    assert ids(response) == created[3:6]
    assert json.loads(response.headers["X-Pagination"]) == {
        "total": 7,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 2,
        "previous_page": 1,
        "next_page": 3,
    }
    links = dict(
        (part.split("; ")[1], part.split("; ")[0]) for part in response.headers["Link"].split(", ")
    )
    assert links == {
        'rel="first"': "</api/v1/applications/?limit=3&name__icontains=app&page=1>",
        'rel="prev"': "</api/v1/applications/?limit=3&name__icontains=app&page=1>",
        'rel="next"': "</api/v1/applications/?limit=3&name__icontains=app&page=3>",
        'rel="last"': "</api/v1/applications/?limit=3&name__icontains=app&page=3>",
    }


def test_first_and_last_pages_have_no_prev_or_next(create, client, reader):
    for i in range(3):
        create(name=f"app {i}")
    first = client.get(URL, query_string={"limit": 2}, headers=reader)
    meta = json.loads(first.headers["X-Pagination"])
    assert "previous_page" not in meta and meta["next_page"] == 2
    assert 'rel="prev"' not in first.headers["Link"]
    last = client.get(URL, query_string={"limit": 2, "page": 2}, headers=reader)
    assert 'rel="next"' not in last.headers["Link"]
    assert len(last.json) == 1


def test_default_limit_is_10(create, client, reader):
    for i in range(12):
        create(name=f"app {i}")
    assert len(client.get(URL, headers=reader).json) == 10


def test_page_past_the_end_is_an_empty_array(create, client, reader):
    create()
    response = client.get(URL, query_string={"page": 50}, headers=reader)
    assert response.status_code == 200
    assert response.json == []
    assert json.loads(response.headers["X-Pagination"])["total"] == 1


def test_the_last_allowed_page_at_the_largest_limit_is_an_empty_array(create, client, reader):
    # (its offset, about 2.1e12, is past a 32-bit integer)
    create()
    query = {"page": 2**31 - 1, "limit": 1000}
    response = client.get(URL, query_string=query, headers=reader)
    assert response.status_code == 200, response.json
    assert response.json == []
    assert json.loads(response.headers["X-Pagination"])["total"] == 1


def test_empty_list(client, reader):
    response = client.get(URL, headers=reader)
    assert response.json == []
    assert json.loads(response.headers["X-Pagination"]) == {"total": 0, "total_pages": 0}


@pytest.mark.parametrize(
    "query, field",
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "x"}, "page"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"application_type": "nope"}, "application_type"),
        ({"is_active": "maybe"}, "is_active"),
        ({"is_active": "yes"}, "is_active"),
        ({"sort": "secret"}, "sort"),
        ({"sort": "-config"}, "sort"),
        ({"name": "a\x00b"}, "name"),
        ({"name__icontains": "\x00"}, "name__icontains"),
    ],
)
def test_invalid_query_values_are_400_naming_the_parameter(client, reader, query, field):
    response = client.get(URL, query_string=query, headers=reader)
    assert response.status_code == 400
    assert response.json["code"] == 400
    assert field in response.json["errors"]["query"]


@pytest.mark.parametrize("limit", [1, 50, 1000])
def test_list_runs_a_fixed_number_of_statements(create, client, reader, count_statements, limit):
    for i in range(60):
        create(name=f"app {i}", config={"web_url": f"https://{i}.example/"})
    client.get(URL, headers=reader)  # the token's first use is recorded (last_used) once
    with count_statements() as counter:
        response = client.get(
            URL, query_string={"limit": limit, "name__icontains": "app"}, headers=reader
        )
    assert response.status_code == 200
    assert len(response.json) == min(limit, 60)
    # token lookup; the page with its total
    assert len(counter.statements) == 2, counter.statements


def test_a_page_past_the_end_still_counts_the_rows(create, client, reader, count_statements):
    for i in range(3):
        create(name=f"app {i}")
    client.get(URL, headers=reader)
    with count_statements() as counter:
        response = client.get(URL, query_string={"limit": 2, "page": 3}, headers=reader)
    assert response.json == []
    assert json.loads(response.headers["X-Pagination"])["total"] == 3
    # token lookup; the empty page; its count
    assert len(counter.statements) == 3, counter.statements


def test_pagination_names_only_pages_that_exist(create, client, reader):
    create()
    past = client.get(URL, query_string={"page": 50}, headers=reader)
    assert "page" not in json.loads(past.headers["X-Pagination"])
    empty = client.get(URL, query_string={"name": "nobody"}, headers=reader)
    assert "Link" not in empty.headers
