"""ICC settings, read from the environment (see README.md, "Configuration").

With no environment at all ICC runs as the whole product on one machine: SQLite in ICC_DATA_DIR,
an in-memory channel layer, a local-memory cache, and tasks plus periodic loops executed by an
embedded Celery worker and scheduler inside the ``run`` process. Production sets DATABASE_URL
(PostgreSQL), REDIS_URL and SECRET_KEY; ``iccapp.checks`` refuses mixtures of the two.
"""

from __future__ import annotations

import base64
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dj_database_url

from iccapp.env import Env, EnvError, origin
from iccapp.env import network as _network

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()


# --- OpenID Connect (apps.users.oidc) -------------------------------------------------------------------
OIDC_ENDPOINT_VARS = (
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
    "OIDC_OP_END_SESSION_ENDPOINT",
)
OIDC_SIGN_ALGOS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512")


def _oidc_group_roles(value: str) -> dict[str, str]:
    """``OIDC_GROUP_ROLES="icc-admins=admin,icc-ops=operator"``: group name -> ICC role, strictly."""
    roles = ("viewer", "operator", "admin")
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        group, sep, role = (piece.strip() for piece in item.rpartition("="))
        if not sep or not group or not role:
            raise EnvError(f"OIDC_GROUP_ROLES: {item!r} is not group=role (e.g. icc-admins=admin)")
        if role not in roles:
            raise EnvError(f"OIDC_GROUP_ROLES: role {role!r} of group {group!r} is not one of {', '.join(roles)}")
        if group in mapping:
            raise EnvError(f"OIDC_GROUP_ROLES: group {group!r} is mapped twice")
        mapping[group] = role
    return mapping


def _oidc_settings() -> dict[str, Any]:
    """Read every OIDC_* variable (iccapp.checks reports partial configurations); enabled by an issuer or
    an explicit authorization endpoint. Endpoints left empty are discovered from the issuer at first use."""
    o: dict[str, Any] = {}
    o["OIDC_ISSUER"] = env.url("OIDC_ISSUER", "", schemes=("http", "https"), secret=False).rstrip("/")
    for name in OIDC_ENDPOINT_VARS:
        o[name] = env.url(name, "", schemes=("http", "https"), secret=False)
    o["OIDC_ENABLED"] = bool(o["OIDC_ISSUER"] or o["OIDC_OP_AUTHORIZATION_ENDPOINT"])
    o["OIDC_RP_CLIENT_ID"] = env.string("OIDC_RP_CLIENT_ID")
    o["OIDC_RP_CLIENT_SECRET"] = env.string("OIDC_RP_CLIENT_SECRET", secret=True)
    o["OIDC_RP_SIGN_ALGO"] = env.string("OIDC_RP_SIGN_ALGO", "RS256", choices=OIDC_SIGN_ALGOS)
    o["OIDC_RP_SCOPES"] = env.string("OIDC_RP_SCOPES", "openid email profile groups")
    if "openid" not in o["OIDC_RP_SCOPES"].split():
        raise EnvError(f"OIDC_RP_SCOPES: {o['OIDC_RP_SCOPES']!r} must include openid")
    o["OIDC_USERNAME_CLAIM"] = env.string("OIDC_USERNAME_CLAIM", "preferred_username")
    o["OIDC_GROUPS_CLAIM"] = env.string("OIDC_GROUPS_CLAIM", "groups")
    o["OIDC_GROUP_ROLES"] = _oidc_group_roles(env.string("OIDC_GROUP_ROLES"))
    o["OIDC_ONLY"] = env.boolean("OIDC_ONLY", False)
    o["OIDC_TIMEOUT"] = env.integer("OIDC_TIMEOUT", 10, minimum=1, maximum=120)
    return o


# --- end OpenID Connect ---------------------------------------------------------------------------------


def _generated_once(path: Path, make: Callable[[], str]) -> str:
    """A secret kept in the data dir (the single-machine default): made on first start, read afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(make(), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def _secret_key(data_dir: Path) -> dict[str, Any]:
    """Explicit, or (single-machine default) generated once into the data dir."""
    secret_key = env.string("SECRET_KEY", secret=True)
    if secret_key and len(secret_key) < 32:
        raise EnvError("SECRET_KEY: must be at least 32 characters long")
    key = secret_key or _generated_once(data_dir / "secret_key", lambda: secrets.token_urlsafe(50))
    return {"ICC_SECRET_KEY_SOURCE": "env" if secret_key else "generated", "SECRET_KEY": key}


def _new_fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _encryption_keys(data_dir: Path) -> dict[str, Any]:
    """Encryption keys for stored credentials (Fernet; the first encrypts, all decrypt: list a new key first to
    rotate). Explicit, or (single-machine default) generated once into the data dir."""
    keys = [k.strip() for k in env.string("ICC_ENCRYPTION_KEYS", secret=True).split(",") if k.strip()]
    source = "env" if keys else "generated"
    keys = keys or [_generated_once(data_dir / "encryption_key", _new_fernet_key)]
    for position, key in enumerate(keys, 1):
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise EnvError(
                f"ICC_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
    return {"ICC_ENCRYPTION_KEYS_SOURCE": source, "ICC_ENCRYPTION_KEYS": keys}


def _database(data_dir: Path) -> dict[str, Any]:
    default_db = f"sqlite:///{data_dir / 'icc.sqlite3'}"
    database_url = env.url("DATABASE_URL", default_db, schemes=("sqlite", "postgres", "postgresql", "pgsql"))
    try:
        db = dj_database_url.parse(database_url)
    except ValueError as exc:
        raise EnvError(f"DATABASE_URL: {exc}") from None
    # django-prometheus' wrappers of the same backends count queries, errors and durations.
    db["ENGINE"] = db["ENGINE"].replace("django.db.backends.", "django_prometheus.db.backends.")
    if db["ENGINE"].endswith("sqlite3"):
        Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        db["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    else:
        db["CONN_MAX_AGE"] = 0
        # A pooled connection is checked before use, so after a PostgreSQL restart no request gets a dead one.
        db["CONN_HEALTH_CHECKS"] = True
        pool_size = env.integer("DATABASE_POOL_SIZE", 10, minimum=0, maximum=500)
        options: dict[str, Any] = {"connect_timeout": env.integer("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)}
        if pool_size:
            options["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 10}
        db["OPTIONS"] = options
    vendor = "sqlite" if db["ENGINE"].endswith("sqlite3") else "postgresql"
    return {"DATABASES": {"default": db}, "ICC_DATABASE_VENDOR": vendor}


def _redis() -> dict[str, Any]:
    """Channel layer, cache, broker, locks. Absent -> in-process equivalents."""
    redis_url = env.url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))
    redis_max = env.integer("REDIS_MAX_CONNECTIONS", 200, minimum=4)
    if not redis_url:
        return {
            "REDIS_URL": redis_url,
            "CHANNEL_LAYERS": {"default": {"BACKEND": "apps.core.channel_layers.ThreadSafeInMemoryChannelLayer"}},
            "CACHES": {
                "default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache", "LOCATION": "icc"}
            },
        }
    channel_layer = {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": redis_url, "max_connections": redis_max}],
            "prefix": env.string("ICC_CHANNEL_PREFIX", "icc"),
            "capacity": 500,
            "expiry": 30,
        },
    }
    cache = {
        "BACKEND": "apps.core.cache.MetricsRedisCache",
        "LOCATION": redis_url,
        "KEY_PREFIX": env.string("ICC_CACHE_PREFIX", "icc"),
        "OPTIONS": {"max_connections": redis_max, "socket_timeout": 2, "socket_connect_timeout": 2},
    }
    return {"REDIS_URL": redis_url, "CHANNEL_LAYERS": {"default": channel_layer}, "CACHES": {"default": cache}}


def _tasks(redis_url: str) -> dict[str, Any]:
    broker = env.url("CELERY_BROKER_URL", redis_url or "memory://", schemes=("redis", "rediss", "amqp", "memory"))
    backend = env.url("CELERY_RESULT_BACKEND", redis_url, schemes=("redis", "rediss", "cache+memory", "rpc"))
    return {
        "CELERY_BROKER_URL": broker,
        "ICC_TASKS_EMBEDDED": broker.startswith("memory://"),
        "CELERY_RESULT_BACKEND": backend or None,
        "WEB_CONCURRENCY": env.integer("WEB_CONCURRENCY", 1, minimum=1, maximum=64),
        "WORKER_METRICS_PORT": env.integer("WORKER_METRICS_PORT", 9808, minimum=0, maximum=65535),
    }


def _web_security(*, production: bool) -> dict[str, Any]:
    s: dict[str, Any] = {}
    # Production (PostgreSQL with DEBUG off) is HTTPS-only by default: secure cookies, HSTS, redirects to
    # HTTPS and X-Forwarded-Proto from the proxy. SECURE_COOKIES=false turns all of it off (plain-HTTP labs).
    s["SECURE_COOKIES"] = env.boolean("SECURE_COOKIES", production)
    s["HSTS_SECONDS"] = env.integer("HSTS_SECONDS", 31536000 if s["SECURE_COOKIES"] else 0, minimum=0)
    # Proxies whose X-Forwarded-For is believed (CIDRs); none by default: the peer address is the client.
    s["TRUSTED_PROXIES"] = env.csv("TRUSTED_PROXIES", [], item=_network)
    # Outbound connections to user-supplied addresses (cluster API URLs, Prometheus, webhooks): link-local
    # and cloud-metadata addresses are always refused; loopback only inside these CIDRs (allowed on the
    # embedded default so a local kind/k3d cluster works; refused by default in production).
    s["OUTBOUND_ALLOWED_CIDRS"] = env.csv(
        "OUTBOUND_ALLOWED_CIDRS", [] if production else ["127.0.0.0/8", "::1/128"], item=_network
    )
    # Bearer token required by /metrics when set (give it to Prometheus' scrape configuration).
    s["METRICS_TOKEN"] = env.string("METRICS_TOKEN", secret=True)
    s["ICC_HEARTBEAT_SECONDS"] = env.integer("ICC_HEARTBEAT_SECONDS", 15, minimum=1, maximum=3600)
    s["SESSION_IDLE_TIMEOUT"] = env.integer("SESSION_IDLE_TIMEOUT", 3600, minimum=60, maximum=30 * 86400)
    return s


def _audit(data_dir: Path) -> dict[str, Any]:
    signing_key = env.string("AUDIT_SIGNING_KEY", secret=True)
    if signing_key and len(signing_key) < 32:
        raise EnvError("AUDIT_SIGNING_KEY: must be at least 32 characters long")
    return {
        "AUDIT_SIGNING_KEY": signing_key,
        "AUDIT_CHECKPOINT_DIR": Path(env.string("AUDIT_CHECKPOINT_DIR", str(data_dir / "audit-checkpoints"))),
        "AUDIT_VERIFY_SECONDS": env.integer("AUDIT_VERIFY_SECONDS", 3600, minimum=60),
    }


def _clusters(*, tasks_embedded: bool) -> dict[str, Any]:
    return {
        "KUBE_REQUEST_TIMEOUT": env.number("KUBE_REQUEST_TIMEOUT", 10.0, minimum=1),
        "CLUSTER_SYNC_SECONDS": env.integer("CLUSTER_SYNC_SECONDS", 300, minimum=10, maximum=86400),
        "CLUSTER_WATCH_LEASE_SECONDS": env.integer("CLUSTER_WATCH_LEASE_SECONDS", 15, minimum=3, maximum=600),
        "CLUSTER_WARNING_EVENTS_KEEP": env.integer("CLUSTER_WARNING_EVENTS_KEEP", 500, minimum=10, maximum=100000),
        "ICC_WATCHER_EMBEDDED": env.boolean("ICC_WATCHER_EMBEDDED", tasks_embedded),
        "SCALER_EVALUATE_SECONDS": env.number("SCALER_EVALUATE_SECONDS", 15.0, minimum=1),
        "CRON_SCHEDULER_EMBEDDED": env.boolean("CRON_SCHEDULER_EMBEDDED", tasks_embedded),
        "CRON_MISSED_AFTER_SECONDS": env.number("CRON_MISSED_AFTER_SECONDS", 60.0, minimum=1),
        "CRON_MAX_SLEEP_SECONDS": env.number("CRON_MAX_SLEEP_SECONDS", 30.0, minimum=0.1),
        "COMPLIANCE_SCAN_SECONDS": env.integer("COMPLIANCE_SCAN_SECONDS", 3600, minimum=60, maximum=7 * 86400),
        "COMPLIANCE_EXCEPTION_MAX_DAYS": env.integer("COMPLIANCE_EXCEPTION_MAX_DAYS", 90, minimum=1, maximum=3650),
        "COMPLIANCE_HISTORY_DAYS": env.integer("COMPLIANCE_HISTORY_DAYS", 90, minimum=1, maximum=3650),
        # The admission webhook as the clusters reach it: ICC's public base URL (or a Service "ns/name:port"), the
        # CA that signed its certificate, the default failure policy and timeout, and ICC's own namespace.
        "COMPLIANCE_WEBHOOK_URL": env.url("COMPLIANCE_WEBHOOK_URL", "", schemes=("https",), secret=False),
        "COMPLIANCE_WEBHOOK_SERVICE": env.string("COMPLIANCE_WEBHOOK_SERVICE", ""),
        "COMPLIANCE_WEBHOOK_CA_FILE": env.string("COMPLIANCE_WEBHOOK_CA_FILE", ""),
        "COMPLIANCE_WEBHOOK_FAILURE_POLICY": env.string(
            "COMPLIANCE_WEBHOOK_FAILURE_POLICY", "Ignore", choices=("Ignore", "Fail")
        ),
        "COMPLIANCE_WEBHOOK_TIMEOUT_SECONDS": env.integer(
            "COMPLIANCE_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1, maximum=30
        ),
        "ICC_NAMESPACE": env.string("ICC_NAMESPACE", "icc"),
        **_traffic(),
    }


def _traffic() -> dict[str, Any]:
    return {
        "TRAFFIC_BUFFER_MAX_SPANS": env.integer("TRAFFIC_BUFFER_MAX_SPANS", 500_000, minimum=1000),
        "TRAFFIC_RATE_LIMIT_SPANS_PER_S": env.integer("TRAFFIC_RATE_LIMIT_SPANS_PER_S", 50_000, minimum=10),
        "TRAFFIC_FLUSH_SECONDS": env.number("TRAFFIC_FLUSH_SECONDS", 2.0, minimum=0.5),
        "TRAFFIC_PAIRING_SECONDS": env.integer("TRAFFIC_PAIRING_SECONDS", 30, minimum=1, maximum=600),
        "TRAFFIC_MINUTE_RETENTION_HOURS": env.integer("TRAFFIC_MINUTE_RETENTION_HOURS", 48, minimum=1),
        "TRAFFIC_HOUR_RETENTION_DAYS": env.integer("TRAFFIC_HOUR_RETENTION_DAYS", 35, minimum=1),
        "TRAFFIC_DAY_RETENTION_DAYS": env.integer("TRAFFIC_DAY_RETENTION_DAYS", 400, minimum=1),
        "TRAFFIC_SAMPLE_RETENTION_HOURS": env.integer("TRAFFIC_SAMPLE_RETENTION_HOURS", 24, minimum=1),
        "TRAFFIC_RECOMMEND_WINDOW_HOURS": env.integer("TRAFFIC_RECOMMEND_WINDOW_HOURS", 24, minimum=1, maximum=720),
        "TRAFFIC_RECOMMEND_MAX_TTL_SECONDS": env.integer(
            "TRAFFIC_RECOMMEND_MAX_TTL_SECONDS", 3600, minimum=1, maximum=86400
        ),
    }


def _settings() -> dict[str, Any]:
    """One read of the environment, section by section (in this order: the first bad value is the one named)."""
    s: dict[str, Any] = {}
    data_dir = Path(env.string("ICC_DATA_DIR", str(BASE_DIR / "var"))).resolve()
    s["ICC_DATA_DIR"] = data_dir
    s["DEBUG"] = env.boolean("DEBUG", False)
    s.update(_secret_key(data_dir))
    s.update(_encryption_keys(data_dir))
    s["ALLOWED_HOSTS"] = env.csv("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
    s["CSRF_TRUSTED_ORIGINS"] = env.csv("CSRF_TRUSTED_ORIGINS", [], item=origin)
    s.update(_database(data_dir))
    s.update(_redis())
    s.update(_tasks(s["REDIS_URL"]))
    s["LOG_LEVEL"] = env.string("LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    s["LOG_FORMAT"] = env.string("LOG_FORMAT", "json", choices=("json", "text"))
    s["PROMETHEUS_URL"] = env.url("PROMETHEUS_URL", "", schemes=("http", "https"), secret=False)
    s.update(_web_security(production=s["ICC_DATABASE_VENDOR"] == "postgresql" and not s["DEBUG"]))
    s.update(_audit(data_dir))
    s.update(_clusters(tasks_embedded=s["ICC_TASKS_EMBEDDED"]))
    s.update(_oidc_settings())  # OpenID Connect, see _oidc_settings
    s["ICC_ENV_SOURCES"] = dict(env.used)
    return s


try:
    _from_env = _settings()
except EnvError as _exc:
    # A clear message and a non-zero exit beat a traceback at start-up.
    sys.stderr.write(f"ICC configuration error: {_exc}\n")
    raise SystemExit(78) from None  # EX_CONFIG
ICC_DATA_DIR: Path = _from_env["ICC_DATA_DIR"]
DEBUG: bool = _from_env["DEBUG"]
ICC_SECRET_KEY_SOURCE: str = _from_env["ICC_SECRET_KEY_SOURCE"]
SECRET_KEY: str = _from_env["SECRET_KEY"]
ICC_ENCRYPTION_KEYS_SOURCE: str = _from_env["ICC_ENCRYPTION_KEYS_SOURCE"]
ICC_ENCRYPTION_KEYS: list[str] = _from_env["ICC_ENCRYPTION_KEYS"]
KUBE_REQUEST_TIMEOUT: float = _from_env["KUBE_REQUEST_TIMEOUT"]
CLUSTER_SYNC_SECONDS: int = _from_env["CLUSTER_SYNC_SECONDS"]
CLUSTER_WATCH_LEASE_SECONDS: int = _from_env["CLUSTER_WATCH_LEASE_SECONDS"]
CLUSTER_WARNING_EVENTS_KEEP: int = _from_env["CLUSTER_WARNING_EVENTS_KEEP"]
ICC_WATCHER_EMBEDDED: bool = _from_env["ICC_WATCHER_EMBEDDED"]
SCALER_EVALUATE_SECONDS: float = _from_env["SCALER_EVALUATE_SECONDS"]
# Cron: the scheduler loop (``manage.py cron_scheduler``; in the run process on the embedded default), when a
# slot counts as missed (then the job's catch-up policy applies) and the longest sleep between passes.
CRON_SCHEDULER_EMBEDDED: bool = _from_env["CRON_SCHEDULER_EMBEDDED"]
CRON_MISSED_AFTER_SECONDS: float = _from_env["CRON_MISSED_AFTER_SECONDS"]
CRON_MAX_SLEEP_SECONDS: float = _from_env["CRON_MAX_SLEEP_SECONDS"]
# Compliance: the period of the full scan of every observed workload (changes are evaluated as they are seen).
COMPLIANCE_SCAN_SECONDS: int = _from_env["COMPLIANCE_SCAN_SECONDS"]
# The longest an exception may last (an admin's setting; every exception has an expiry).
COMPLIANCE_EXCEPTION_MAX_DAYS: int = _from_env["COMPLIANCE_EXCEPTION_MAX_DAYS"]
# Days of per-scan compliance counts (trends, per-release history) kept.
COMPLIANCE_HISTORY_DAYS: int = _from_env["COMPLIANCE_HISTORY_DAYS"]
# The admission webhook's defaults (see the README's Compliance section).
COMPLIANCE_WEBHOOK_URL: str = _from_env["COMPLIANCE_WEBHOOK_URL"]
COMPLIANCE_WEBHOOK_SERVICE: str = _from_env["COMPLIANCE_WEBHOOK_SERVICE"]
COMPLIANCE_WEBHOOK_CA_FILE: str = _from_env["COMPLIANCE_WEBHOOK_CA_FILE"]
COMPLIANCE_WEBHOOK_FAILURE_POLICY: str = _from_env["COMPLIANCE_WEBHOOK_FAILURE_POLICY"]
COMPLIANCE_WEBHOOK_TIMEOUT_SECONDS: int = _from_env["COMPLIANCE_WEBHOOK_TIMEOUT_SECONDS"]
ICC_NAMESPACE: str = _from_env["ICC_NAMESPACE"]
# Traffic: the ingestion buffer's bound, each application's rate, how often flushers roll up, how long a client
# span waits for its server span, and how long minute/hour/day rollups and raw samples are kept.
TRAFFIC_BUFFER_MAX_SPANS: int = _from_env["TRAFFIC_BUFFER_MAX_SPANS"]
TRAFFIC_RATE_LIMIT_SPANS_PER_S: int = _from_env["TRAFFIC_RATE_LIMIT_SPANS_PER_S"]
TRAFFIC_FLUSH_SECONDS: float = _from_env["TRAFFIC_FLUSH_SECONDS"]
TRAFFIC_PAIRING_SECONDS: int = _from_env["TRAFFIC_PAIRING_SECONDS"]
TRAFFIC_MINUTE_RETENTION_HOURS: int = _from_env["TRAFFIC_MINUTE_RETENTION_HOURS"]
TRAFFIC_HOUR_RETENTION_DAYS: int = _from_env["TRAFFIC_HOUR_RETENTION_DAYS"]
TRAFFIC_DAY_RETENTION_DAYS: int = _from_env["TRAFFIC_DAY_RETENTION_DAYS"]
TRAFFIC_SAMPLE_RETENTION_HOURS: int = _from_env["TRAFFIC_SAMPLE_RETENTION_HOURS"]
TRAFFIC_RECOMMEND_WINDOW_HOURS: int = _from_env["TRAFFIC_RECOMMEND_WINDOW_HOURS"]
TRAFFIC_RECOMMEND_MAX_TTL_SECONDS: int = _from_env["TRAFFIC_RECOMMEND_MAX_TTL_SECONDS"]
ALLOWED_HOSTS: list[str] = _from_env["ALLOWED_HOSTS"]
CSRF_TRUSTED_ORIGINS: list[str] = _from_env["CSRF_TRUSTED_ORIGINS"]
DATABASES: dict[str, Any] = _from_env["DATABASES"]
ICC_DATABASE_VENDOR: str = _from_env["ICC_DATABASE_VENDOR"]
REDIS_URL: str = _from_env["REDIS_URL"]
CHANNEL_LAYERS: dict[str, Any] = _from_env["CHANNEL_LAYERS"]
CACHES: dict[str, Any] = _from_env["CACHES"]
CELERY_BROKER_URL: str = _from_env["CELERY_BROKER_URL"]
ICC_TASKS_EMBEDDED: bool = _from_env["ICC_TASKS_EMBEDDED"]
CELERY_RESULT_BACKEND: str | None = _from_env["CELERY_RESULT_BACKEND"]
WEB_CONCURRENCY: int = _from_env["WEB_CONCURRENCY"]
WORKER_METRICS_PORT: int = _from_env["WORKER_METRICS_PORT"]
LOG_LEVEL: str = _from_env["LOG_LEVEL"]
LOG_FORMAT: str = _from_env["LOG_FORMAT"]
PROMETHEUS_URL: str = _from_env["PROMETHEUS_URL"]
SECURE_COOKIES: bool = _from_env["SECURE_COOKIES"]
HSTS_SECONDS: int = _from_env["HSTS_SECONDS"]
TRUSTED_PROXIES: list[str] = _from_env["TRUSTED_PROXIES"]
OUTBOUND_ALLOWED_CIDRS: list[str] = _from_env["OUTBOUND_ALLOWED_CIDRS"]
METRICS_TOKEN: str = _from_env["METRICS_TOKEN"]
ICC_HEARTBEAT_SECONDS: int = _from_env["ICC_HEARTBEAT_SECONDS"]
SESSION_IDLE_TIMEOUT: int = _from_env["SESSION_IDLE_TIMEOUT"]
AUDIT_SIGNING_KEY: str = _from_env["AUDIT_SIGNING_KEY"]
AUDIT_CHECKPOINT_DIR: Path = _from_env["AUDIT_CHECKPOINT_DIR"]
AUDIT_VERIFY_SECONDS: int = _from_env["AUDIT_VERIFY_SECONDS"]
ICC_ENV_SOURCES: dict[str, str] = _from_env["ICC_ENV_SOURCES"]

# --- OpenID Connect (apps.users.oidc): mozilla-django-oidc reads these names --------------------------
OIDC_ENABLED: bool = _from_env["OIDC_ENABLED"]
OIDC_ISSUER: str = _from_env["OIDC_ISSUER"]
OIDC_OP_AUTHORIZATION_ENDPOINT: str = _from_env["OIDC_OP_AUTHORIZATION_ENDPOINT"]
OIDC_OP_TOKEN_ENDPOINT: str = _from_env["OIDC_OP_TOKEN_ENDPOINT"]
OIDC_OP_USER_ENDPOINT: str = _from_env["OIDC_OP_USER_ENDPOINT"]
OIDC_OP_JWKS_ENDPOINT: str = _from_env["OIDC_OP_JWKS_ENDPOINT"]
OIDC_OP_END_SESSION_ENDPOINT: str = _from_env["OIDC_OP_END_SESSION_ENDPOINT"]
OIDC_RP_CLIENT_ID: str = _from_env["OIDC_RP_CLIENT_ID"]
OIDC_RP_CLIENT_SECRET: str = _from_env["OIDC_RP_CLIENT_SECRET"]
OIDC_RP_SIGN_ALGO: str = _from_env["OIDC_RP_SIGN_ALGO"]
OIDC_RP_SCOPES: str = _from_env["OIDC_RP_SCOPES"]
OIDC_USERNAME_CLAIM: str = _from_env["OIDC_USERNAME_CLAIM"]
OIDC_GROUPS_CLAIM: str = _from_env["OIDC_GROUPS_CLAIM"]
OIDC_GROUP_ROLES: dict[str, str] = _from_env["OIDC_GROUP_ROLES"]
OIDC_ONLY: bool = _from_env["OIDC_ONLY"]
OIDC_TIMEOUT: int = _from_env["OIDC_TIMEOUT"]
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the logout view sends it to the provider as id_token_hint
OIDC_CREATE_USER = True
OIDC_AUTHENTICATE_CLASS = "apps.users.oidc.ICCAuthenticationRequestView"
OIDC_OP_LOGOUT_URL_METHOD = "apps.users.oidc.provider_logout_url"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
# --- end OpenID Connect ---------------------------------------------------------------------------------

INSTALLED_APPS = [
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.core",
    "apps.users",
    "apps.audit",
    "apps.clusters",
    "apps.scaler",
    "apps.compliance",
    "apps.cron",
    "apps.traffic",
    "apps.notifications",
    "apps.calendar",
    "iccapp",
]
# --- OpenID Connect: a password backend that honours OIDC_ONLY, then the OIDC code-flow backend.
if OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS = ["apps.users.oidc.LocalPasswordBackend", "apps.users.oidc.ICCOIDCBackend"]
# --- end OpenID Connect

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.core.api.anonymous.AnonymousFirstMiddleware",  # a credential-less API call is a 401 before any view
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.core.middleware.RequestUserMiddleware",
    "apps.users.middleware.SessionIdleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last on purpose: WhiteNoise is sync-only; here it shares the one thread hop that sync views need
    # anyway, instead of splitting the otherwise async middleware chain.
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "iccapp.urls"
WSGI_APPLICATION = "iccapp.wsgi.application"
ASGI_APPLICATION = "iccapp.asgi.application"
AUTH_USER_MODEL = "users.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.portal",
                "apps.calendar.context_processors.banner",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = ICC_DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_KEEP_ONLY_HASHED_FILES = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"  # Redis in front, database behind
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT  # idle timeout, renewed by apps.users.middleware.SessionIdleMiddleware
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_COOKIES else None
SECURE_SSL_REDIRECT = SECURE_COOKIES
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # kubelet probes and scrapes speak plain HTTP
SECURE_HSTS_SECONDS = HSTS_SECONDS
SECURE_HSTS_INCLUDE_SUBDOMAINS = HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = HSTS_SECONDS > 0

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.users.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "apps.core.api.renderers.ORJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["apps.core.api.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.exception_handler",
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.NamespaceVersioning",
    "ALLOWED_VERSIONS": ["v1"],
    "DEFAULT_VERSION": "v1",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ICC API",
    "DESCRIPTION": "Intelligent Command Center: control plane for applications on Kubernetes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # One name per choice set that several fields share (a run's state, an attempt's outcome).
    "ENUM_NAME_OVERRIDES": {
        "CronRunStateEnum": "apps.cron.models.RunState",
        "ComplianceModeEnum": "apps.compliance.models.Mode",
        "ModeEnum": "apps.scaler.models.Mode",  # the scaling policies' mode keeps the name it always had
        "NotificationSeverityEnum": "apps.notifications.models.SEVERITY_CHOICES",
        "NotificationMessageStateEnum": "apps.notifications.models.MessageState",
    },
}

# --- Celery (names are read by iccapp.celery with namespace="CELERY")
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
# Exceeds the longest hard limit (cron runs: 3700 s): with late acks, a task still running is never handed out twice;
# a task whose whole worker process was killed (threads pool) is handed out again after this long.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4200}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"

PROMETHEUS_EXPORT_MIGRATIONS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apps.core.logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "apps.core.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "uvicorn.access": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}

# --- Notifications (apps/notifications): outgoing mail and delivery retries
EMAIL_HOST: str = env.string("EMAIL_HOST", "")
EMAIL_PORT: int = env.integer("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER: str = env.string("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD: str = env.string("EMAIL_HOST_PASSWORD", "", secret=True)
EMAIL_USE_TLS: bool = env.boolean("EMAIL_USE_TLS", False)
EMAIL_USE_SSL: bool = env.boolean("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT: int = env.integer("EMAIL_TIMEOUT", 10, minimum=1, maximum=300)
DEFAULT_FROM_EMAIL: str = env.string("DEFAULT_FROM_EMAIL", "icc@localhost")
# No SMTP host configured (the embedded default): mail is written to the console instead of being lost silently.
EMAIL_BACKEND: str = env.string(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
NOTIFICATIONS_MAX_ATTEMPTS: int = env.integer("NOTIFICATIONS_MAX_ATTEMPTS", 6, minimum=1, maximum=50)
NOTIFICATIONS_BACKOFF_SECONDS: float = env.number("NOTIFICATIONS_BACKOFF_SECONDS", 10.0, minimum=0.01)
NOTIFICATIONS_MAX_BACKOFF_SECONDS: float = env.number("NOTIFICATIONS_MAX_BACKOFF_SECONDS", 900.0, minimum=0.01)
NOTIFICATIONS_TIMEOUT_SECONDS: float = env.number("NOTIFICATIONS_TIMEOUT_SECONDS", 10.0, minimum=0.5)
NOTIFICATIONS_PUBLIC_URL: str = env.url("NOTIFICATIONS_PUBLIC_URL", "", schemes=("http", "https"), secret=False)
# --- end Notifications
