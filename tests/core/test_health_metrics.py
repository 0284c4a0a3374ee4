"""Probes, metrics and the request id."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import override_settings

CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_healthz_answers_without_touching_anything(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.django_db
def test_readyz_is_ok_with_real_postgres_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_redis_when_redis_is_unreachable(client):
    with override_settings(REDIS_URL=CLOSED_REDIS, CELERY_BROKER_URL=CLOSED_REDIS):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert "redis" in body["failing"]
    assert body["checks"]["redis"] == "fail"  # the part only: exception text stays in the log
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_names_the_database_when_it_fails(client, monkeypatch):
    from apps.core import health

    def broken() -> None:
        raise RuntimeError("connection refused")

    broken.__name__ = "_check_database"
    monkeypatch.setattr(health, "_check_database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]


@pytest.mark.django_db
def test_metrics_expose_request_counters(client):
    client.get("/healthz")
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith(
            'django_http_requests_total_by_view_transport_method_total{method="GET",transport="http",view="healthz"}'
        )
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    for name in ("icc_task_runs_total", "icc_websocket_connections", "django_db_execute_total", "django_cache_"):
        assert name in text, name


def test_request_id_is_accepted_returned_and_logged(client, caplog):
    caplog.set_level(logging.INFO)
    response = client.get("/api/v1/users/", headers={"X-Request-ID": "abc-123.def"})  # 403, logged by Django
    assert response["X-Request-ID"] == "abc-123.def"
    assert any(getattr(r, "request_id", None) == "abc-123.def" for r in caplog.records)


def test_an_unsafe_request_id_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


def test_json_log_lines_carry_the_request_id():
    from apps.core import context
    from apps.core.logging import JsonFormatter, RequestIdFilter

    token = context.bind(request_id="req-42")
    try:
        record = logging.LogRecord("icc.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        context.reset(token)
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-42"
    assert line["level"] == "INFO"
    assert line["logger"] == "icc.test"
