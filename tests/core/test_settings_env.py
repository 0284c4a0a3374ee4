"""Start-up configuration: bad values stop ICC with a message naming the variable; *_FILE works."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from iccapp.env import Env, EnvError
from tests.support.components import ROOT
from tests.support.server import start_up_check as start

GOOD_KEY = "k" * 20 + "-0123456789-abcdefghijklmnop"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG: 'maybe' is not a boolean"),
        ("WEB_CONCURRENCY", "lots", "WEB_CONCURRENCY: 'lots' is not an integer"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY: 0 is below the minimum 1"),
        ("DATABASE_URL", "mysql://db.example/icc", "DATABASE_URL: scheme 'mysql' is not one of"),
        ("DATABASE_URL", "postgres://:notaport/icc", "DATABASE_URL: not a valid URL"),
        ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL: scheme 'http' is not one of"),
        ("CELERY_BROKER_URL", "redis://", "CELERY_BROKER_URL: the URL has no host"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: 'LOUD' is not one of"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: 'xml' is not one of"),
        ("CSRF_TRUSTED_ORIGINS", "icc.example.com", "CSRF_TRUSTED_ORIGINS: 'icc.example.com' is invalid"),
        ("SECRET_KEY", "short", "SECRET_KEY: must be at least 32 characters"),
        ("PROMETHEUS_URL", "prometheus:9090", "PROMETHEUS_URL: scheme 'prometheus' is not one of"),
        ("REDIS_MAX_CONNECTIONS", "2", "REDIS_MAX_CONNECTIONS: 2 is below the minimum 4"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable, value, message, tmp_path):
    result = start({variable: value}, tmp_path)
    assert result.returncode == 78, result.stderr
    assert "ICC configuration error" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_key_file_is_read(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(GOOD_KEY + "\n")
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "ICC_DATA_DIR": str(tmp_path),
            "SECRET_KEY_FILE": str(key_file),
            "DJANGO_SETTINGS_MODULE": "iccapp.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == GOOD_KEY


def test_database_url_file_is_read_and_secret_files_fail_clearly(tmp_path):
    env = Env({"DATABASE_URL_FILE": str(tmp_path / "missing")})
    with pytest.raises(EnvError, match="DATABASE_URL_FILE: cannot read"):
        env.url("DATABASE_URL", schemes=("postgres",))
    (tmp_path / "db").write_text("postgres://icc:s3cret@db.internal:5432/icc\n")
    assert Env({"DATABASE_URL_FILE": str(tmp_path / "db")}).url("DATABASE_URL", schemes=("postgres",)) == (
        "postgres://icc:s3cret@db.internal:5432/icc"
    )
    (tmp_path / "empty").write_text("")
    with pytest.raises(EnvError, match="is empty"):
        Env({"SECRET_KEY_FILE": str(tmp_path / "empty")}).string("SECRET_KEY", secret=True)
    with pytest.raises(EnvError, match="set either SECRET_KEY or SECRET_KEY_FILE"):
        Env({"SECRET_KEY": "x", "SECRET_KEY_FILE": str(tmp_path / "db")}).string("SECRET_KEY", secret=True)


def test_no_environment_gives_the_embedded_default(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.ICC_DATABASE_VENDOR, s.ICC_TASKS_EMBEDDED, s.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.',1)[1],"
        " s.CACHES['default']['BACKEND'].rsplit('.',1)[1], s.DEBUG)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "ICC_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "iccapp.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sqlite", "True", "ThreadSafeInMemoryChannelLayer", "LocMemCache", "False"]
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600, "the generated key must be private"


def test_mixing_postgres_with_in_process_tasks_fails_the_system_check(tmp_path):
    result = start({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/icc", "SECRET_KEY": GOOD_KEY}, tmp_path)
    assert result.returncode != 0
    assert "icc.E002" in result.stderr
    assert "tasks run in-process" in result.stderr


def test_debug_off_with_a_development_key_fails_the_system_check(tmp_path):
    result = start({"DEBUG": "false", "SECRET_KEY": "django-insecure-development-key-for-laptops"}, tmp_path)
    assert result.returncode != 0
    assert "icc.E001" in result.stderr


def test_in_memory_layer_with_several_web_processes_fails_the_system_check(tmp_path):
    result = start({"WEB_CONCURRENCY": "3"}, tmp_path)
    assert result.returncode != 0
    assert "icc.E003" in result.stderr


def test_a_production_configuration_passes_the_system_check(tmp_path):
    result = start(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/icc",
            "REDIS_URL": "redis://127.0.0.1:6379/15",
            "SECRET_KEY": GOOD_KEY,
            "ICC_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWZlcm5ldC1rZXktbm90LWZvci1wcmQ=",
            "WEB_CONCURRENCY": "4",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_a_bad_encryption_key_is_refused_naming_the_variable(tmp_path):
    result = start({"ICC_ENCRYPTION_KEYS": "not-a-fernet-key"}, tmp_path)
    assert result.returncode == 78
    assert "ICC_ENCRYPTION_KEYS: key 1 is not a Fernet key" in result.stderr


def test_without_encryption_keys_one_is_generated_privately(tmp_path):
    result = start({}, tmp_path)
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "encryption_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_text().strip()) == 44
