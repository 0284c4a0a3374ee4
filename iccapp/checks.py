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
