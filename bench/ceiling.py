"""The ceiling: a minimal raw WSGI app returning a precomputed 50-item JSON array.

Served by the same gunicorn settings as the API, it measures what this machine can do
at all, so the API's figures are reported as a share of it.
"""

import json

ITEM = {
    "id": 1,
    "name": "Shop front",
    "application_type": "extension",
    "config": {"web_url": "https://extension.example.com/", "visible_type": "empty"},
    "is_active": True,
    "remote_object_id": None,
    "created_by": 1,
    "is_visible": False,
    "is_proxy_available": False,
    "related_application_id": None,
    "created_date": "2026-11-26T12:00:00.000000+00:00",
    "modified_date": "2026-11-26T12:00:00.000000+00:00",
}
BODY = json.dumps([{**ITEM, "id": n} for n in range(1, 51)]).encode()
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
