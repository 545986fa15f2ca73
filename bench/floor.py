"""The floor: the benchmarked paths in raw WSGI and psycopg, no framework.

The same database work as the API (a token checked by one query per request; the list's
count and page; retrieve; a PATCH that queues for its application, locks its row, merges
config and writes the row with its history entry in one statement; a create as one
statement with its entry; an app_proxy GET that reads the application's web_url and
forwards over a kept-alive connection), with none of the rest: no validation beyond what
the paths need, no error shape, no log line, no metrics, no signature. Served under the
same gunicorn settings, it says what Python can do with the same queries, so each API
figure is also a share of it (bench/run.py).
"""

import hashlib
import http.client
import json
import os
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.types.json import Json

from applications_api.applications.service import merge_patch  # (the same merge)

COLUMNS = (
    "id, name, application_type, config, is_active, remote_object_id, created_by, "
    "is_visible, is_proxy_available, related_application_id, created_date, "
    "modified_date"
)
NAMES = [name.strip() for name in COLUMNS.split(",")]
TOKEN = (
    "SELECT u.id, u.is_staff FROM tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.key_digest = %s AND u.is_active"
)
WRITE_ENTRY = (
    "logged AS (INSERT INTO application_changes (application_id, user_id, "
    "request_id, action, changes, created_date) SELECT id, %s, NULL, %s, %s, %s "
    "FROM written) "
)
CREATE = (
    "WITH written AS (INSERT INTO applications (name, application_type, config, "
    "is_active, created_by, is_visible, is_proxy_available, created_date, "
    "modified_date, version) VALUES (%s, %s, %s, true, %s, false, false, %s, %s, 1) "
    f"RETURNING {COLUMNS}), {WRITE_ENTRY}SELECT * FROM written"
)
UPDATE = (
    "WITH written AS (UPDATE applications SET config = %s, modified_date = %s, "
    f"version = version + 1 WHERE id = %s RETURNING {COLUMNS}), {WRITE_ENTRY}"
    "SELECT * FROM written"
)

_local = threading.local()


def connection():
    if getattr(_local, "connection", None) is None:
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        _local.connection = psycopg.connect(url, autocommit=True)
    return _local.connection


def as_json(row):
    item = dict(zip(NAMES, row, strict=True))
    for name in ("created_date", "modified_date"):
        item[name] = item[name].isoformat()
    return item


def answer(start_response, status, body, headers=()):
    data = json.dumps(body).encode() if body is not None else b""
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers]
    )
    return [data]


def app(environ, start_response):
    db = connection()
    key = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Token ")
    user = db.execute(TOKEN, (hashlib.sha256(key.encode()).hexdigest(),)).fetchone()
    if user is None:
        return answer(start_response, "401 Unauthorized", {"code": 401})
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    parts = path.strip("/").split("/")  # api, v1, applications[, id]
    if parts[2] == "app_proxy":  # api, v1, app_proxy, id, path...
        return forward(db, start_response, int(parts[3]), "/".join(parts[4:]))
    now = datetime.now(UTC)
    if len(parts) == 3 and method == "GET":
        return list_page(db, start_response, parse_qs(environ.get("QUERY_STRING", "")))
    if len(parts) == 3 and method == "POST":
        body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        config = {"visible_type": "empty", **(body.get("config") or {})}
        changes = [{"field": "name", "old": None, "new": body["name"]}]
        row = db.execute(
            CREATE,
            (
                body["name"],
                body["application_type"],
                Json(config),
                user[0],
                now,
                now,
                user[0],
                "create",
                Json(changes),
                now,
            ),
        ).fetchone()
        return answer(start_response, "201 Created", as_json(row))
    app_id = int(parts[3])
    if method == "GET":
        row = db.execute(f"SELECT {COLUMNS} FROM applications WHERE id = %s", (app_id,)).fetchone()
        return answer(start_response, "200 OK", as_json(row))
    body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
    with db.transaction():
        # the API's queue for the application's writers (an advisory lock), then its row
        (config,) = db.execute(
            "SELECT config FROM applications WHERE id = %s"
            " AND pg_advisory_xact_lock(1, id) IS NOT NULL FOR UPDATE",
            (app_id,),
        ).fetchone()
        merged = merge_patch(config, body.get("config"))
        changes = [
            {"field": f"config.{k}", "old": (config or {}).get(k), "new": v}
            for k, v in (body.get("config") or {}).items()
        ]
        row = db.execute(
            UPDATE, (Json(merged), now, app_id, user[0], "update", Json(changes), now)
        ).fetchone()
    return answer(start_response, "200 OK", as_json(row))


def list_page(db, start_response, query):
    limit = int(query.get("limit", ["10"])[0])
    page = int(query.get("page", ["1"])[0])
    where, params = ["true"], []
    if "name__icontains" in query:
        where.append("name ILIKE %s")
        params.append(f"%{query['name__icontains'][0]}%")
    if "is_active" in query:
        where.append("is_active = %s")
        params.append(query["is_active"][0] == "true")
    condition = " AND ".join(where)
    (total,) = db.execute(f"SELECT count(*) FROM applications WHERE {condition}", params).fetchone()
    rows = db.execute(
        f"SELECT {COLUMNS} FROM applications WHERE {condition} ORDER BY id LIMIT %s OFFSET %s",
        [*params, limit, (page - 1) * limit],
    ).fetchall()
    pages = -(-total // limit)
    return answer(
        start_response,
        "200 OK",
        [as_json(row) for row in rows],
        [("X-Pagination", json.dumps({"total": total, "total_pages": pages, "page": page}))],
    )


def forward(db, start_response, app_id, rest):
    row = db.execute(
        "SELECT config FROM applications WHERE id = %s AND is_active AND is_proxy_available",
        (app_id,),
    ).fetchone()
    target = urlsplit(row[0]["web_url"])
    upstream = getattr(_local, "upstream", None)
    if upstream is None:
        upstream = _local.upstream = http.client.HTTPConnection(target.hostname, target.port)
    upstream.request("GET", target.path + rest)
    answer = upstream.getresponse()
    body = answer.read()
    headers = [
        ("Content-Type", answer.getheader("Content-Type", "")),
        ("Content-Length", str(len(body))),
    ]
    start_response(f"{answer.status} {answer.reason}", headers)
    return [body]
