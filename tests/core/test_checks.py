"""The production-versus-development system checks, rule by rule."""

from __future__ import annotations

from django.test import override_settings

from iccapp.checks import production_mixed_with_development

MEMORY = {"default": {"BACKEND": "apps.core.channel_layers.ThreadSafeInMemoryChannelLayer"}}
REDIS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}


def ids(**overrides: object) -> set[str]:
    with override_settings(**overrides):
        return {problem.id for problem in production_mixed_with_development()}


def test_the_test_configuration_is_clean():
    assert ids() == set()


def test_debug_off_with_a_development_key():
    assert "icc.E001" in ids(DEBUG=False, SECRET_KEY="django-insecure-abc123")
    assert "icc.E001" not in ids(DEBUG=True, SECRET_KEY="django-insecure-abc123")


def test_postgres_with_in_process_tasks():
    assert "icc.E002" in ids(ICC_TASKS_EMBEDDED=True)
    assert "icc.E002" not in ids(ICC_TASKS_EMBEDDED=True, ICC_DATABASE_VENDOR="sqlite")


def test_in_memory_layer_with_several_web_processes():
    assert "icc.E003" in ids(CHANNEL_LAYERS=MEMORY, WEB_CONCURRENCY=2)
    assert "icc.E003" not in ids(CHANNEL_LAYERS=MEMORY, WEB_CONCURRENCY=1)
    assert "icc.E003" not in ids(CHANNEL_LAYERS=REDIS, WEB_CONCURRENCY=8)


def test_postgres_with_a_generated_secret_key():
    assert "icc.E004" in ids(ICC_SECRET_KEY_SOURCE="generated")
    assert "icc.E005" in ids(ICC_ENCRYPTION_KEYS_SOURCE="generated")


def test_postgres_with_debug_or_in_memory_layer_warns():
    assert {"icc.W001", "icc.W002"} <= ids(CHANNEL_LAYERS=MEMORY, DEBUG=True)
