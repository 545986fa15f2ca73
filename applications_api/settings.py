"""Every environment variable the service reads, parsed and validated in one place.

An invalid value raises SettingsError with one line naming the variable, so start-up
stops with a message an operator can act on.
"""

import ipaddress
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
DEFAULT_DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'applications.db'}"
# Link-local (where cloud metadata services live) and the unspecified addresses, which
# Linux routes to this host's own listeners (0.0.0.0, written "0" or "0x0" too, and ::).
DEFAULT_DENIED_NETWORKS = "169.254.0.0/16,fe80::/10,0.0.0.0/8,::/128"
# In production loopback is denied too: a web_url there reaches this host's own services
# (gunicorn's /metrics past nginx's allow-list). Development keeps it open for local work.
PRODUCTION_DENIED_NETWORKS = "127.0.0.0/8,::1/128," + DEFAULT_DENIED_NETWORKS
LOOPBACK = ("127.0.0.0/8", "::1/128")
# Debian's bundle of the system's CAs: the file deploy/nginx.conf trusts for backends too.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


# deploy/applications-api.env's value until the operator puts a secret there.
SIGNING_KEY_PLACEHOLDER = "REPLACE_WITH_64_HEX_DIGITS"


class SettingsError(ValueError):
    """A setting holds a value the service cannot run with."""


@dataclass(frozen=True)
class ServerSettings:
    """gunicorn's, read by gunicorn.conf.py (GUNICORN_*)."""

    bind: str
    workers: int  # processes, about one per core
    timeout: int  # seconds a silent worker lives
    graceful_timeout: int  # seconds to finish requests on stop or HUP
    keepalive: int  # seconds an idle keep-alive connection waits (above nginx's 4 s)
    max_requests: int  # a worker is recycled after this many requests (+10%)
    access_log: str | None  # "-": gunicorn's own access log on stdout; off by default


@dataclass(frozen=True)
class Settings:
    environment: str
    trusted_proxies: int
    database_url: str  # sqlite:///… or postgresql+psycopg://… (libpq's URL: several hosts too)
    database_listen_url: str  # where the change feed listens (cache.py): a session of its own
    database_pooler: str  # "auto" or "transaction" (database.py)
    database_connect_timeout: float
    database_statement_timeout: float
    threads: int  # GUNICORN_THREADS: requests a process serves at once (gunicorn.conf.py)
    max_body_bytes: int
    auth_cache_seconds: float
    proxy_connect_timeout: float
    proxy_read_timeout: float
    proxy_signing_key: str
    proxy_cache_seconds: float
    proxy_denied_networks: tuple
    proxy_own_addresses: tuple  # (network, port) where this service listens: never a target
    proxy_transfer: str
    proxy_max_in_flight: int
    proxy_max_in_flight_per_app: int
    proxy_max_in_flight_per_caller: int
    proxy_queue_seconds: float  # how long a request may wait for its share (bulkhead.py)
    proxy_deadline: float
    proxy_min_rate: int
    proxy_digest_max_bytes: int  # bodies read first, so the signature covers them
    proxy_ca_bundle: str  # PEM file of the CAs trusted for https backends
    proxy_previous_signing_key: str  # the deployment secret being replaced (app_proxy/keys.py)
    proxy_signing_algorithm: str  # an application's first key's: hmac-sha256 or ed25519
    application_secret_keys: tuple  # lower-case fnmatch patterns of config keys to mask
    log_level: str
    metrics_multiproc_dir: str  # PROMETHEUS_MULTIPROC_DIR: workers' shared metrics (gunicorn)
    server: ServerSettings


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    cast: Callable[[str], float] = float,
    minimum: float = 0,
    allow_zero: bool = False,
) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if value < minimum or (value == minimum and not allow_zero):
        raise SettingsError(f"{name}: must be greater than {minimum}, got {raw!r}")
    return value


def _database_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    # Hosting platforms hand out postgres:// and postgresql:// URLs; this service
    # talks to PostgreSQL through psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            raw = "postgresql+psycopg://" + raw[len(prefix) :]
    if raw.startswith("postgresql+psycopg://"):
        # libpq reads it (database.libpq_url): its syntax, several hosts included, for a
        # failover (postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write).
        try:
            psycopg.conninfo.conninfo_to_dict(libpq_url(raw))
        except psycopg.ProgrammingError as error:
            raise SettingsError(
                f"{name}: {raw!r} is not a PostgreSQL URL: {str(error).strip()}"
            ) from None
        return raw
    try:
        url = make_url(raw)
    except ArgumentError:
        raise SettingsError(f"{name}: {raw!r} is not a database URL") from None
    if url.get_backend_name() == "postgresql":
        raise SettingsError(f"{name}: use postgresql:// or postgresql+psycopg://")
    if url.get_backend_name() != "sqlite":
        raise SettingsError(
            f"{name}: unsupported database {url.get_backend_name()!r} "
            "(use sqlite:/// or postgresql://)"
        )
    if url.database in (None, "", ":memory:"):
        raise SettingsError(
            f"{name}: an in-memory SQLite database lives and dies with one connection; "
            "name a file (sqlite:///path/to/applications.db)"
        )
    return raw


def libpq_url(database_url: str) -> str:
    """A PostgreSQL DATABASE_URL as libpq takes it."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _listen_url(env: Mapping[str, str], database_url: str) -> str:
    listen_url = _database_url(env, "DATABASE_LISTEN_URL", database_url)
    if listen_url.startswith("sqlite") != database_url.startswith("sqlite"):
        raise SettingsError(
            f"DATABASE_LISTEN_URL: {listen_url!r} is not the database of DATABASE_URL"
        )
    return database_url if database_url.startswith("sqlite") else listen_url


def _pooler(env: Mapping[str, str]) -> str:
    pooler = env.get("DATABASE_POOLER", "").strip().lower() or "auto"
    if pooler not in ("auto", "transaction"):
        raise SettingsError(f"DATABASE_POOLER: {pooler!r} is neither auto nor transaction")
    return pooler


def _own_addresses(
    env: Mapping[str, str],
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int], ...]:
    """Where gunicorn listens (GUNICORN_BIND): app_proxy never forwards there. A bind to
    every address (0.0.0.0, ::) stands for loopback on that port."""
    bind = _bind(env)
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or bind.startswith("unix:"):
        return ()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: loopback stands for it, as for 0.0.0.0
        address = None
    if address is None or address.is_unspecified:
        return tuple((ipaddress.ip_network(net), int(port)) for net in LOOPBACK)
    return ((ipaddress.ip_network(address), int(port)),)


def _bind(env: Mapping[str, str]) -> str:
    return env.get("GUNICORN_BIND", "").strip() or "127.0.0.1:8000"


def _server(env: Mapping[str, str]) -> ServerSettings:
    def whole(name: str, default: int) -> int:
        value: int = _number(env, name, default, cast=int)
        return value

    return ServerSettings(
        bind=_bind(env),
        workers=whole("GUNICORN_WORKERS", 2),
        timeout=whole("GUNICORN_TIMEOUT", 60),
        graceful_timeout=whole("GUNICORN_GRACEFUL_TIMEOUT", 30),
        keepalive=whole("GUNICORN_KEEPALIVE", 5),
        max_requests=whole("GUNICORN_MAX_REQUESTS", 100000),
        access_log=env.get("GUNICORN_ACCESS_LOG", "").strip() or None,
    )


def _networks(
    env: Mapping[str, str], environment: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = env.get("APP_PROXY_DENIED_NETWORKS")
    if raw is None:
        raw = PRODUCTION_DENIED_NETWORKS if environment == "production" else DEFAULT_DENIED_NETWORKS
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(
                f"APP_PROXY_DENIED_NETWORKS: {part!r} is not a CIDR network"
            ) from None
    return tuple(networks)


# Compared after folding (secrets.fold: case, Unicode compatibility forms, separators),
# so *api_key* also matches apiKey, api-key and API_KEY.
DEFAULT_SECRET_KEYS = (
    "*password*,*passwd*,*passphrase*,*secret*,*token*,*api_key*,*private_key*,"
    "*access_key*,*credential*,*authorization*"
)


def _secret_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("APPLICATION_SECRET_KEYS")
    raw = DEFAULT_SECRET_KEYS if raw is None else raw
    return tuple(part.strip().lower() for part in raw.split(",") if part.strip())


def _transfer(env: Mapping[str, str]) -> str:
    transfer = env.get("APP_PROXY_TRANSFER", "python").strip().lower() or "python"
    if transfer not in ("python", "nginx"):
        raise SettingsError(f"APP_PROXY_TRANSFER: {transfer!r} is neither python nor nginx")
    return transfer


def _ca_bundle(env: Mapping[str, str]) -> str:
    path = env.get("APP_PROXY_CA_BUNDLE", "").strip()
    if not path:
        return SYSTEM_CA_BUNDLE
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise SettingsError(
            f"APP_PROXY_CA_BUNDLE: {path!r} holds no PEM certificate OpenSSL can read"
        ) from None
    except OSError as error:
        raise SettingsError(f"APP_PROXY_CA_BUNDLE: {path!r}: {error.strerror}") from None
    return path


SIGNING_ALGORITHMS = ("hmac-sha256", "ed25519")


def _signing_algorithm(env: Mapping[str, str]) -> str:
    algorithm = env.get("APP_PROXY_SIGNING_ALGORITHM", "").strip().lower() or "hmac-sha256"
    if algorithm not in SIGNING_ALGORITHMS:
        raise SettingsError(
            f"APP_PROXY_SIGNING_ALGORITHM: {algorithm!r} is neither hmac-sha256 nor ed25519"
        )
    return algorithm


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from a mapping of environment variables (os.environ by default)."""
    env = os.environ if env is None else env
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"LOG_LEVEL: {log_level!r} is not a log level")
    environment = env.get("APP_ENV", "development").strip().lower()
    if environment not in ("development", "production"):
        raise SettingsError(f"APP_ENV: {environment!r} is neither development nor production")
    signing_key = env.get("APP_PROXY_SIGNING_KEY", "")
    if signing_key.strip() == SIGNING_KEY_PLACEHOLDER:
        raise SettingsError(
            "APP_PROXY_SIGNING_KEY: replace the placeholder with a secret of your own "
            "(python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    if environment == "production" and not signing_key.strip():
        raise SettingsError(
            "APP_PROXY_SIGNING_KEY: required when APP_ENV=production "
            "(backends could not trust the proxy's identity headers)"
        )
    # The embedded forwarder holds at most half a worker's threads in flight, so the API
    # keeps the other half whatever the backends and callers do; one application at most
    # three quarters of that (the others always find a slot), one caller half.
    threads = _number(env, "GUNICORN_THREADS", 8, cast=int)
    database_url = _database_url(env, "DATABASE_URL", DEFAULT_DATABASE_URL)
    max_in_flight = _number(env, "APP_PROXY_MAX_IN_FLIGHT", max(1, threads // 2), cast=int)
    per_app = max(1, max_in_flight - max(1, max_in_flight // 4))
    return Settings(
        environment=environment,
        trusted_proxies=_number(env, "TRUSTED_PROXIES", 0, cast=int, allow_zero=True),
        database_url=database_url,
        database_listen_url=_listen_url(env, database_url),
        database_pooler=_pooler(env),
        database_connect_timeout=_number(env, "DATABASE_CONNECT_TIMEOUT", 3.0),
        database_statement_timeout=_number(env, "DATABASE_STATEMENT_TIMEOUT", 5.0),
        threads=threads,
        max_body_bytes=_number(env, "MAX_BODY_BYTES", 1024 * 1024, cast=int),
        auth_cache_seconds=_number(env, "AUTH_CACHE_SECONDS", 10.0, allow_zero=True),
        proxy_connect_timeout=_number(env, "APP_PROXY_CONNECT_TIMEOUT", 5.0),
        proxy_read_timeout=_number(env, "APP_PROXY_READ_TIMEOUT", 30.0),
        proxy_signing_key=signing_key,
        proxy_cache_seconds=_number(env, "APP_PROXY_CACHE_SECONDS", 5.0, allow_zero=True),
        proxy_denied_networks=_networks(env, environment),
        proxy_own_addresses=_own_addresses(env),
        proxy_transfer=_transfer(env),
        proxy_max_in_flight=max_in_flight,
        proxy_max_in_flight_per_app=_number(
            env, "APP_PROXY_MAX_IN_FLIGHT_PER_APP", per_app, cast=int
        ),
        proxy_max_in_flight_per_caller=_number(
            env, "APP_PROXY_MAX_IN_FLIGHT_PER_CALLER", max(1, max_in_flight // 2), cast=int
        ),
        proxy_queue_seconds=_number(env, "APP_PROXY_QUEUE_SECONDS", 5.0, allow_zero=True),
        proxy_deadline=_number(env, "APP_PROXY_DEADLINE", 300.0),
        proxy_min_rate=_number(env, "APP_PROXY_MIN_RATE", 4096, cast=int, allow_zero=True),
        proxy_digest_max_bytes=_number(
            env, "APP_PROXY_DIGEST_MAX_BYTES", 1024 * 1024, cast=int, allow_zero=True
        ),
        proxy_ca_bundle=_ca_bundle(env),
        proxy_previous_signing_key=env.get("APP_PROXY_PREVIOUS_SIGNING_KEY", ""),
        proxy_signing_algorithm=_signing_algorithm(env),
        application_secret_keys=_secret_keys(env),
        log_level=log_level,
        metrics_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR", ""),
        server=_server(env),
    )
