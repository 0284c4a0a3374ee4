"""System checks that refuse production signals mixed with development defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

DEVELOPMENT_KEY_MARKERS = ("django-insecure", "changeme", "change-me", "development", "dev-secret", "secret")


def _is_development_key(key: str) -> bool:
    lowered = key.lower()
    return len(key) < 50 and any(marker in lowered for marker in DEVELOPMENT_KEY_MARKERS)


@register(Tags.security, deploy=False)
def production_mixed_with_development(app_configs: Any = None, **_: Any) -> list[Error | Warning]:
    """Production signals (PostgreSQL, DEBUG off, several web processes) need production parts."""
    problems: list[Error | Warning] = []
    postgres = settings.ICC_DATABASE_VENDOR == "postgresql"
    if not settings.DEBUG and _is_development_key(settings.SECRET_KEY):
        problems.append(
            Error(
                "DEBUG is off but SECRET_KEY is a development key.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
                id="icc.E001",
            )
        )
    if postgres and settings.ICC_TASKS_EMBEDDED:
        problems.append(
            Error(
                "DATABASE_URL is PostgreSQL but tasks run in-process (no CELERY_BROKER_URL or REDIS_URL).",
                hint="Set REDIS_URL (used as broker) or CELERY_BROKER_URL, and run the worker and beat roles.",
                id="icc.E002",
            )
        )
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if "InMemory" in layer and settings.WEB_CONCURRENCY > 1:
        problems.append(
            Error(
                f"The in-memory channel layer cannot serve WEB_CONCURRENCY={settings.WEB_CONCURRENCY} web processes.",
                hint="Set REDIS_URL so live updates reach every web process, or run one web process.",
                id="icc.E003",
            )
        )
    if postgres and settings.ICC_SECRET_KEY_SOURCE == "generated":  # noqa: S105 - a source name, not a key
        problems.append(
            Error(
                "DATABASE_URL is PostgreSQL but SECRET_KEY is generated per machine.",
                hint="Replicas must share one key: set SECRET_KEY or SECRET_KEY_FILE.",
                id="icc.E004",
            )
        )
    if postgres and settings.ICC_ENCRYPTION_KEYS_SOURCE == "generated":
        problems.append(
            Error(
                "DATABASE_URL is PostgreSQL but the credentials encryption key is generated per machine.",
                hint="Replicas must share keys: set ICC_ENCRYPTION_KEYS or ICC_ENCRYPTION_KEYS_FILE (Fernet keys, "
                "newest first).",
                id="icc.E005",
            )
        )
    if postgres and "InMemory" in layer:
        problems.append(
            Warning(
                "DATABASE_URL is PostgreSQL but the channel layer is in-memory: live updates from workers are lost.",
                hint="Set REDIS_URL.",
                id="icc.W001",
            )
        )
    if postgres and settings.DEBUG:
        problems.append(Warning("DEBUG is on with a PostgreSQL database.", hint="Set DEBUG=false.", id="icc.W002"))
    return problems


# --- OpenID Connect (apps.users.oidc) -------------------------------------------------------------------
OIDC_EXPLICIT_ENDPOINTS = ("OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT")


@register(Tags.security, deploy=False)
def oidc_configuration(app_configs: Any = None, **_: Any) -> list[Error]:
    """A half-configured OpenID Connect login fails at the first user; say which setting is missing now."""
    problems: list[Error] = []
    client_set = [name for name in ("OIDC_RP_CLIENT_ID", "OIDC_RP_CLIENT_SECRET") if getattr(settings, name)]
    if not settings.OIDC_ENABLED:
        if client_set:
            problems.append(
                Error(
                    f"{', '.join(client_set)} is set but OpenID Connect has no provider.",
                    hint="Set OIDC_ISSUER (discovery) or OIDC_OP_AUTHORIZATION_ENDPOINT and the other endpoints.",
                    id="icc.E010",
                )
            )
        if settings.OIDC_ONLY:
            problems.append(
                Error(
                    "OIDC_ONLY is on but OpenID Connect is not configured: only superusers could log in.",
                    hint="Set OIDC_ISSUER, OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET, or unset OIDC_ONLY.",
                    id="icc.E011",
                )
            )
        return problems
    for name in ("OIDC_RP_CLIENT_ID", "OIDC_RP_CLIENT_SECRET"):
        if name not in client_set:
            problems.append(
                Error(
                    f"OpenID Connect is configured but {name} is not set.",
                    hint=f"Set {name} (or {name}_FILE for the secret) to the client registered at the provider.",
                    id="icc.E012",
                )
            )
    if not settings.OIDC_ISSUER:
        missing = [name for name in OIDC_EXPLICIT_ENDPOINTS if not getattr(settings, name)]
        if settings.OIDC_RP_SIGN_ALGO[:2] in {"RS", "ES"} and not settings.OIDC_OP_JWKS_ENDPOINT:
            missing.append("OIDC_OP_JWKS_ENDPOINT")
        if missing:
            problems.append(
                Error(
                    f"OpenID Connect endpoints are explicit (no OIDC_ISSUER) but {', '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set.",
                    hint="Set OIDC_ISSUER to use the provider's discovery document, or set every endpoint.",
                    id="icc.E013",
                )
            )
    return problems
