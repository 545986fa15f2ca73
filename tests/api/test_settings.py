import subprocess
import sys
from pathlib import Path

import pytest

from applications_api.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = load_settings({})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("instance/applications.db")
    assert settings.proxy_connect_timeout == 5
    assert settings.proxy_read_timeout == 30
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.auth_cache_seconds == 10
    assert settings.proxy_cache_seconds == 5
    assert [str(n) for n in settings.proxy_denied_networks] == [
        "169.254.0.0/16",
        "fe80::/10",
        "0.0.0.0/8",
        "::/128",
    ]
    assert settings.proxy_transfer == "python"
    assert settings.proxy_max_in_flight == 4  # half of gunicorn's 8 threads
    assert settings.proxy_max_in_flight_per_app == 3  # three quarters of those
    assert settings.proxy_max_in_flight_per_caller == 2  # half
    assert settings.proxy_queue_seconds == 5
    assert settings.proxy_deadline == 300
    assert settings.proxy_min_rate == 4096
    assert settings.proxy_ca_bundle == "/etc/ssl/certs/ca-certificates.crt"  # nginx's too
    assert settings.proxy_signing_algorithm == "hmac-sha256"
    assert settings.proxy_previous_signing_key == ""


def test_the_proxy_bulkhead_follows_gunicorns_threads():
    settings = load_settings({"GUNICORN_THREADS": "16", "APP_PROXY_TRANSFER": "NGINX"})
    assert (settings.proxy_max_in_flight, settings.proxy_max_in_flight_per_app) == (8, 6)
    assert settings.proxy_transfer == "nginx"
    one_thread = load_settings({"GUNICORN_THREADS": "1"})
    assert (one_thread.proxy_max_in_flight, one_thread.proxy_max_in_flight_per_app) == (1, 1)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("postgres://u:p@db:5432/app", "postgresql+psycopg://u:p@db:5432/app"),
        ("postgresql://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        (  # libpq's several hosts, for a failover
            "postgresql://u@h1:5432,h2:5433/app?target_session_attrs=read-write",
            "postgresql+psycopg://u@h1:5432,h2:5433/app?target_session_attrs=read-write",
        ),
    ],
)
def test_database_urls_as_platforms_hand_them_out(given, expected):
    assert load_settings({"DATABASE_URL": given}).database_url == expected


@pytest.mark.parametrize(
    "name, value",
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://u@db/app"),
        ("DATABASE_URL", "postgresql+psycopg2://u@db/app"),
        ("DATABASE_URL", "postgresql://u@db/app?target_session=read-write"),
        ("DATABASE_LISTEN_URL", "sqlite:////tmp/x.db"),  # (the database is PostgreSQL)
        ("DATABASE_LISTEN_URL", "mysql://u@db/app"),
        ("DATABASE_POOLER", "pgbouncer"),
        ("DATABASE_CONNECT_TIMEOUT", "-1"),
        ("DATABASE_CONNECT_TIMEOUT", "soon"),
        ("DATABASE_STATEMENT_TIMEOUT", "0"),
        ("MAX_BODY_BYTES", "1.5"),
        ("APP_PROXY_CONNECT_TIMEOUT", "-5"),
        ("APP_PROXY_SIGNING_ALGORITHM", "rsa-v1_5-sha256"),
        ("APP_PROXY_READ_TIMEOUT", "abc"),
        ("APP_PROXY_DENIED_NETWORKS", "10.0.0.0/33"),
        ("APP_PROXY_DENIED_NETWORKS", "not-a-cidr"),
        ("LOG_LEVEL", "LOUD"),
        ("AUTH_CACHE_SECONDS", "-1"),
        ("TRUSTED_PROXIES", "-1"),
        ("TRUSTED_PROXIES", "one"),
        ("APP_ENV", "staging"),
        ("APP_PROXY_CACHE_SECONDS", "never"),
        ("APP_PROXY_TRANSFER", "envoy"),
        ("APP_PROXY_MAX_IN_FLIGHT", "0"),
        ("APP_PROXY_MAX_IN_FLIGHT_PER_APP", "many"),
        ("APP_PROXY_DEADLINE", "0"),
        ("APP_PROXY_MIN_RATE", "-1"),
        ("APP_PROXY_CA_BUNDLE", "/nonexistent/cas.pem"),
        ("APP_PROXY_CA_BUNDLE", "/"),
        ("APP_PROXY_CA_BUNDLE", __file__),  # a file, but no certificate in it
    ],
)
def test_an_invalid_setting_names_itself(name, value):
    env = {"DATABASE_URL": "postgresql://u@db/app"} if name == "DATABASE_LISTEN_URL" else {}
    with pytest.raises(SettingsError) as error:
        load_settings({**env, name: value})
    assert str(error.value).startswith(f"{name}:")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused_with_what_to_name_instead(url):
    """Each connection would see a database of its own: tables migrated on one are
    missing on the next, and no other process could ever see a change."""
    with pytest.raises(SettingsError) as error:
        load_settings({"DATABASE_URL": url})
    assert str(error.value) == (
        "DATABASE_URL: an in-memory SQLite database lives and dies with one connection; "
        "name a file (sqlite:///path/to/applications.db)"
    )


def test_production_refuses_to_start_without_a_signing_key():
    with pytest.raises(SettingsError) as error:
        load_settings({"APP_ENV": "production"})
    assert str(error.value).startswith("APP_PROXY_SIGNING_KEY:")
    settings = load_settings({"APP_ENV": "production", "APP_PROXY_SIGNING_KEY": "k"})
    assert settings.environment == "production"


def test_the_change_feed_listens_where_database_url_says_unless_told():
    env = {"DATABASE_URL": "postgresql://u@pgbouncer:6432/app"}
    assert load_settings(env).database_listen_url == "postgresql+psycopg://u@pgbouncer:6432/app"
    direct = {**env, "DATABASE_LISTEN_URL": "postgresql://u@db:5432/app"}
    assert load_settings(direct).database_listen_url == "postgresql+psycopg://u@db:5432/app"
    assert load_settings(direct).database_pooler == "auto"


def test_an_empty_denied_network_list_is_allowed():
    assert load_settings({"APP_PROXY_DENIED_NETWORKS": ""}).proxy_denied_networks == ()


def test_start_up_stops_with_one_clear_line():
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env={"DATABASE_URL": "mysql://u@db/app", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL: unsupported database 'mysql' "
        "(use sqlite:/// or postgresql://)"
    ]


def test_production_denies_loopback_by_default_development_does_not():
    production = load_settings({"APP_ENV": "production", "APP_PROXY_SIGNING_KEY": "k"})
    assert [str(n) for n in production.proxy_denied_networks] == [
        "127.0.0.0/8",
        "::1/128",
        "169.254.0.0/16",
        "fe80::/10",
        "0.0.0.0/8",
        "::/128",
    ]
    assert "127.0.0.0/8" not in [str(n) for n in load_settings({}).proxy_denied_networks]
    chosen = load_settings(
        {
            "APP_ENV": "production",
            "APP_PROXY_SIGNING_KEY": "k",
            "APP_PROXY_DENIED_NETWORKS": "10.0.0.0/8",
        }
    )
    assert [str(n) for n in chosen.proxy_denied_networks] == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    "bind, own",
    [
        ("", [("127.0.0.1/32", 8000)]),
        ("10.0.0.5:8000", [("10.0.0.5/32", 8000)]),
        ("0.0.0.0:5000", [("127.0.0.0/8", 5000), ("::1/128", 5000)]),
        ("[::]:5000", [("127.0.0.0/8", 5000), ("::1/128", 5000)]),
        ("localhost:5000", [("127.0.0.0/8", 5000), ("::1/128", 5000)]),
        ("unix:/run/app.sock", []),
    ],
)
def test_the_services_own_address_comes_from_gunicorn_bind(bind, own):
    settings = load_settings({"GUNICORN_BIND": bind})
    assert [(str(net), port) for net, port in settings.proxy_own_addresses] == own
