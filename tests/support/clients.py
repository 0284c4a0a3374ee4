"""Django test clients for a persona, a user or a token, and the small readers of their answers."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client


def logged_in(persona: Any) -> Client:
    """A client logged in through the password form backend, as a person would."""
    client = Client()
    assert client.login(username=persona.username, password=persona.password)
    return client


def forced_login(user: Any) -> Client:
    """A client whose session belongs to ``user`` (no password needed)."""
    client = Client()
    client.force_login(user)
    return client


def bearer(secret: str, ip: str = "127.0.0.1") -> Client:
    """A client sending an API token (or a ServiceAccount token) on every request."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR=ip)


def html(response: Any) -> str:
    return str(response.content.decode())


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    rows: list[dict[str, Any]] = response.json()["results"]
    return rows


def post_json(client: Client, path: str, data: Any = None) -> Any:
    return client.post(path, json.dumps(data if data is not None else {}), content_type="application/json")


def patch_json(client: Client, path: str, data: Any) -> Any:
    return client.patch(path, json.dumps(data), content_type="application/json")


def error_fields(response: Any) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = response.json()["error"]["fields"]
    return fields


def bind(user: Any, role: str, cluster: Any = None, namespace: str = "", application: str = "") -> None:
    """A role binding for ``user``, scoped to the narrowest of application, namespace, cluster or global."""
    from apps.users.models import RoleBinding

    kind = "application" if application else "namespace" if namespace else "cluster" if cluster else "global"
    RoleBinding.objects.create(
        user=user,
        role=role,
        scope_kind=kind,
        scope_cluster=str(cluster.pk) if cluster else "",
        scope_namespace=namespace,
        scope_application=application,
    )


def with_binding(persona: Any, role: str, cluster: Any = None, namespace: str = "", application: str = "") -> Any:
    """``persona`` after :func:`bind` gave its user ``role`` in that scope."""
    bind(persona.user, role, cluster, namespace, application)
    return persona
