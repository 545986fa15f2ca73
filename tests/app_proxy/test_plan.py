"""The plan without sockets: what a call becomes upstream, decided from the caller as the
view read it (forwarding.Caller), checked as tables and one property. The names below
are written out from RFC 9110 and docs/app-proxy.md, not taken from the code's tables.
The through-sockets tests (test_forwarding.py, test_signatures.py) keep both transfers
honest about sending what the plan says."""

import logging
import socket
import string
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from applications_api.app_proxy import signing
from applications_api.app_proxy.forwarding import Caller, Refused, plan
from applications_api.observability import PROXY_UPSTREAM_ERRORS
from applications_api.settings import load_settings
from tests.support import headers as withheld
from tests.support.backend_verifier import PYTHON

SETTINGS = load_settings({})  # development: loopback allowed, link-local denied
SECRET = b"k" * 32
KEY = signing.SigningKey("application-1", signing.HMAC_SHA256, SECRET)
PREFIX = "/api/v1/app_proxy/1/"
WEB_URL = "http://127.0.0.1:8001/base/"


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch):
    """A plan opens no connection (an IP literal resolves without one)."""

    def refused(*args, **kwargs):
        raise AssertionError("the plan opened a socket")

    monkeypatch.setattr(socket, "socket", refused)
    monkeypatch.setattr(socket, "create_connection", refused)


def caller(target, headers=(), method="GET"):
    return Caller(
        user_id=7,
        method=method,
        target=target,
        headers=Headers(list(headers)),
        remote_addr="203.0.113.9",
        host="registry.example",
        scheme="https",
        request_id="req-1",
        content_length=None,
    )


def planned(target, web_url=WEB_URL, headers=(), method="GET", keys=(KEY,)):
    return plan(caller(target, headers, method), 1, web_url, SETTINGS, lambda app_id: keys)


@pytest.mark.parametrize(
    ("sent", "uri"),
    [
        ("orders/7", "/base/orders/7"),
        ("", "/base/"),
        ("orders/7?expand=items&x=%2F", "/base/orders/7?expand=items&x=%2F"),
        ("a%2fb", "/base/a%2fb"),  # encodings go as written, case and all
        ("%41dmin", "/base/%41dmin"),
        ("x?", "/base/x?"),  # an empty query stays
        ("x?q=a+b&r=a%2fb", "/base/x?q=a+b&r=a%2fb"),
        ("x?q={1}", "/base/x?q=%7B1%7D"),  # what no URI may hold is encoded
        ("x?next=/a?b", "/base/x?next=/a?b"),  # a query may hold "?" and "/"
        ("%zz", "/base/%25zz"),
        ("x?a=%zz", "/base/x?a=%25zz"),
        ("a|b^c", "/base/a%7Cb%5Ec"),
        ("caf\xe9", "/base/caf%E9"),  # a byte of the request line
        ("a/./b", "/base/a/b"),
        ("./x", "/base/x"),
        ("a/../b", "/base/b"),
        ("a/b/..", "/base/a"),
        ("a/%2e%2e/b", "/base/b"),
        ("a/%2E/b", "/base/a/b"),
        ("a/.%2e/b", "/base/b"),
        ("a//b", "/base/a//b"),
        ("a/..;/b", "/base/a/..;/b"),  # not a dot-segment: passed on as it is
        ("x?../../y", "/base/x?../../y"),  # a query is not a path
    ],
)
def test_the_raw_target_is_joined_under_the_base(sent, uri):
    assert planned(PREFIX + sent).uri == uri


@pytest.mark.parametrize(
    "sent",
    [
        "..",
        "../",
        "../x",
        "a/../../x",
        "%2e%2e/x",
        "%2E%2E/x",
        ".%2e/x",
        "%252e%252e/x",  # encoded twice
        "%25252e%25252e/x",  # three times
        "..%2fx",  # a slash hidden in a segment
        "..%2Fx",
        "a/..%2f..%2fx",
        "..%5cx",  # a backslash
        "..\\x",
        "a%2f..%2f..%2fx",
        "%252e%252e%252fx",
        "x/%2e%2e%5c..",
        "a/.%2fb",  # one dot hidden with a slash: a dot-segment too
        "a/b%5c.",
    ],
)
def test_a_path_that_climbs_or_hides_a_dot_segment_is_a_400(sent):
    with pytest.raises(Refused) as refused:
        planned(PREFIX + sent)
    assert refused.value.status == 400
    hides = any(hidden in sent.lower() for hidden in ("%2f", "%252f", "%5c", "\\"))
    assert refused.value.message == (
        "The proxied path hides a dot-segment behind an encoded slash."
        if hides
        else "The proxied path climbs above the application's base URL."
    )
    assert refused.value.kind is None  # (not an upstream failure)


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/app_proxy/01/x",  # a leading zero
        "/api/v1/app%5Fproxy/1/x",  # an encoded prefix
        "/api/v1/app_proxy/%31/x",
        "/api/v1/app_proxy/2/x",  # another application's
        "/api/v1//app_proxy/1/x",
        "/api/v1/app_proxy/1x",
    ],
)
def test_a_route_not_spelled_plainly_is_a_404(target):
    with pytest.raises(Refused) as refused:
        planned(target)
    assert refused.value.status == 404
    assert refused.value.message == (
        "No app_proxy route here: write it /api/v1/app_proxy/1/<path>,"
        " the id in plain digits without leading zeros."
    )


@pytest.mark.parametrize(
    ("target", "uri"),
    [
        ("/api/v1/app_proxy/1", "/base/"),  # the base, its slash left out
        ("http://registry.example/api/v1/app_proxy/1/x?y", "/base/x?y"),  # absolute-form
        ("http://registry.example/api/v1/app_proxy/1/x", "/base/x"),
    ],
)
def test_the_base_and_absolute_form_targets(target, uri):
    assert planned(target).uri == uri


@pytest.mark.parametrize(
    ("web_url", "url", "address", "host", "base_url"),
    [
        ("http://127.0.0.1:8001/base/", "http://127.0.0.1:8001/base/x", "http://127.0.0.1:8001",
         "127.0.0.1:8001", "http://127.0.0.1:8001/base/"),
        ("http://127.0.0.1:8001/base", "http://127.0.0.1:8001/base/x", "http://127.0.0.1:8001",
         "127.0.0.1:8001", "http://127.0.0.1:8001/base/"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001/x", "http://127.0.0.1:8001",
         "127.0.0.1:8001", "http://127.0.0.1:8001/"),
        ("https://127.0.0.1/", "https://127.0.0.1/x", "https://127.0.0.1:443",
         "127.0.0.1", "https://127.0.0.1/"),
        ("http://127.0.0.1/", "http://127.0.0.1/x", "http://127.0.0.1:80",
         "127.0.0.1", "http://127.0.0.1/"),
        ("http://[::1]:8001/", "http://[::1]:8001/x", "http://[::1]:8001",
         "[::1]:8001", "http://[::1]:8001/"),
    ],
)  # fmt: skip
def test_the_target_and_the_approved_address(web_url, url, address, host, base_url):
    upstream = planned(PREFIX + "x", web_url)
    assert (upstream.url, upstream.address, upstream.host, upstream.base_url) == (
        url,
        address,
        host,
        base_url,
    )
    assert upstream.server_name == urlsplit(web_url).hostname  # what TLS checks


def warnings(caplog):
    """What the plan told the log (other threads of the test process may log too)."""
    mine = [r for r in caplog.records if r.name == "applications_api.app_proxy.forwarding"]
    return [record.getMessage() for record in mine]


REFUSED = {
    "denied": "The application's backend is in a denied network.",
    "unsignable": "app_proxy has no key to sign this application's requests.",
}


@pytest.mark.parametrize(
    ("web_url", "keys", "kind"),
    [
        ("http://169.254.169.254/", (KEY,), "denied"),  # link-local: cloud metadata
        ("http://[fe80::1]/", (KEY,), "denied"),
        ("http://0.0.0.0:8001/", (KEY,), "denied"),
        ("http://127.0.0.1:8000/", (KEY,), "denied"),  # where this service listens
        ("http://127.0.0.1:8001/", (), "unsignable"),
    ],
)
def test_a_backend_the_plan_cannot_send_to_is_a_counted_502(web_url, keys, kind, caplog):
    with caplog.at_level(logging.WARNING, logger="applications_api.app_proxy.forwarding"):
        with pytest.raises(Refused) as refused:
            planned(PREFIX + "x", web_url, keys=keys)
    assert (refused.value.status, refused.value.kind) == (502, kind)
    assert refused.value.message == REFUSED[kind]
    if kind == "denied":  # the operator is told which application, and where it points
        (warning,) = warnings(caplog)
        assert warning.startswith("app_proxy 1: refused: "), warning
        assert str(urlsplit(web_url).hostname) in warning


def test_a_backend_whose_name_does_not_resolve_is_a_502_naming_it(monkeypatch, caplog):
    def unresolvable(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    with caplog.at_level(logging.WARNING, logger="applications_api.app_proxy.forwarding"):
        with pytest.raises(Refused) as refused:
            planned(PREFIX + "x", "http://backend.example:8001/")
    assert (refused.value.status, refused.value.kind) == (502, "unresolvable")
    assert refused.value.message == "The application's backend cannot be reached."
    assert warnings(caplog) == [
        f"app_proxy 1: cannot resolve backend.example: [Errno {socket.EAI_NONAME}]"
        " Name or service not known"
    ]


def test_a_web_url_no_signature_can_cover_is_a_counted_502_that_says_so(caplog):
    # (refused when written through the API; a row written another way still plans)
    upstream = planned(PREFIX + "x", "http://a%zz@127.0.0.1:8001/")
    errors = PROXY_UPSTREAM_ERRORS.labels("1", "unsignable")
    before = errors._value.get()
    with caplog.at_level(logging.WARNING, logger="applications_api.app_proxy.forwarding"):
        with pytest.raises(HTTPException) as refused:
            upstream.sign(None)
    assert refused.value.code == 502
    assert getattr(refused.value, "data", None) == {  # (webargs' abort puts it there)
        "message": "The application's web_url is not a URL the proxy can sign requests for."
    }
    assert errors._value.get() == before + 1
    assert warnings(caplog) == [
        "app_proxy 1: cannot sign for http://a%zz@127.0.0.1:8001/x: Invalid URL: expected an"
        " encoded absolute URL with a host"
    ]


HOP_BY_HOP = withheld.HOP_BY_HOP
SPOOFABLE = withheld.SPOOFABLE
# The caller's own, which never leave this service, and what it sets itself.
KEPT_HERE = ["Host", "Authorization", "Cookie", "Content-Length", "X-Request-ID"]


@pytest.mark.parametrize("name", HOP_BY_HOP + SPOOFABLE + KEPT_HERE)
@pytest.mark.parametrize("spelled", [str, str.lower, str.upper])
def test_a_withheld_header_never_goes_upstream(name, spelled):
    upstream = planned(
        PREFIX + "x", headers=[(spelled(name), "from-the-caller"), ("Accept", "*/*")]
    )
    assert name.lower() not in {forwarded.lower() for forwarded in upstream.forwarded}
    assert upstream.forwarded == {"Accept": "*/*"}
    assert "from-the-caller" not in upstream.headers.values()


def test_headers_the_connection_header_names_are_withheld_and_the_rest_go_as_sent():
    upstream = planned(
        PREFIX + "x",
        headers=[
            ("Connection", "keep-alive, X-Named , x-other"),
            ("X-Named", "1"),
            ("X-Other", "2"),
            ("X-Custom", "3"),
            ("User-Agent", "curl/8"),
            ("Accept-Encoding", "gzip"),
        ],
    )
    assert upstream.forwarded == {
        "X-Custom": "3",
        "User-Agent": "curl/8",
        "Accept-Encoding": "gzip",
    }


def test_the_added_headers_say_who_called_and_how():
    upstream = planned(PREFIX + "x", headers=[("X-Forwarded-For", "10.0.0.1")])
    assert upstream.headers == {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": "registry.example",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Prefix": "/api/v1/app_proxy/1",
        "X-Request-ID": "req-1",
    }


def verified_user(upstream, method, headers, body):
    """The user id the docs' verifier trusts for this request, or None."""
    trusted = {KEY.key_id: PYTHON["hmac_key"](SECRET.hex())}
    return PYTHON["verified_user"](trusted, method, upstream.url, headers, body, None)


def test_the_signing_is_bound_to_the_planned_request_and_the_body_to_come():
    upstream = planned(PREFIX + "x?y=1", method="POST")
    covered = upstream.sign(b'{"a": 1}')
    assert covered["X-App-Proxy-User-Id"] == "7"
    assert "content-digest" in covered["Signature-Input"]
    headers = {**covered, "Host": upstream.host}
    assert verified_user(upstream, "POST", headers, b'{"a": 1}') == "7"
    assert verified_user(upstream, "PUT", headers, b'{"a": 1}') is None
    assert verified_user(upstream, "POST", headers, b'{"a": 2}') is None
    streamed = upstream.sign(None)  # a body that streams unread: no digest
    assert "Content-Digest" not in streamed
    assert "content-digest" not in streamed["Signature-Input"]


# Segments made of the pieces a path escape is spelled with: dots, their encodings (once
# and more), encoded and bare slashes and backslashes, and plain characters.
PIECES = [
    ".",
    "..",
    "%2e",
    "%2E",
    "%252e",
    "%25",
    "2e",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "\\",
    "a",
    ";",
    "~",
]
SEGMENTS = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=4).map("".join),
    st.text(alphabet=string.ascii_letters + string.digits + ".%/\\-_~;=", max_size=6),
)


@settings(max_examples=500)
@given(st.lists(SEGMENTS, max_size=12), st.sampled_from(["/base/", "/", "/a/b/"]))
def test_no_path_ever_climbs_above_the_base(segments, base_path):
    """Whatever the caller writes, the path sent is under web_url's path, however a
    backend decodes it (once, twice, backslashes for slashes) and resolves its dots."""
    web_url = "http://127.0.0.1:8001" + base_path
    try:
        upstream = planned(PREFIX + "/".join(segments), web_url)
    except Refused as refused:
        assert refused.status == 400
        return
    path = upstream.uri.partition("?")[0]
    assert path.startswith(base_path)
    for decodings in range(4):
        depth = 0
        for segment in path[len(base_path) :].replace("\\", "/").split("/"):
            if segment == "..":
                depth -= 1
                assert depth >= 0, (path, decodings)
            elif segment not in ("", "."):
                depth += 1
        path = base_path + unquote(path[len(base_path) :])
