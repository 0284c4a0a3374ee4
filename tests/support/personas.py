"""The personas every layer tests with (fixtures): admin (superuser), operator, viewer (global bindings) and
outsider (logged in, no binding); ``make_user`` makes more."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Persona:
    username: str
    password: str
    user: object


@pytest.fixture
def make_user(db):  # type: ignore[no-untyped-def]
    from apps.users.services import user_create

    def make(username: str, *, staff: bool = False, superuser: bool = False, role: str | None = None) -> Persona:
        """A user; ``role`` adds a global role binding (viewer, operator, admin)."""
        from apps.users.models import RoleBinding

        password = f"pw-{username}-Correct-Horse-42"
        user = user_create(username=username, password=password, is_staff=staff, is_superuser=superuser)
        if role:
            RoleBinding.objects.create(user=user, role=role)
        return Persona(username, password, user)

    return make


@pytest.fixture
def admin_persona(make_user) -> Persona:  # type: ignore[no-untyped-def]
    return make_user("ada-admin", superuser=True)


@pytest.fixture
def operator_persona(make_user) -> Persona:  # type: ignore[no-untyped-def]
    """May act (scale, restart, sync) everywhere through a global operator binding; may not configure."""
    return make_user("otto-operator", role="operator")


@pytest.fixture
def viewer_persona(make_user) -> Persona:  # type: ignore[no-untyped-def]
    """Reads everything (a global viewer binding), may change nothing."""
    return make_user("vic-viewer", role="viewer")


@pytest.fixture
def outsider_persona(make_user) -> Persona:  # type: ignore[no-untyped-def]
    """Logged in, no role binding at all."""
    return make_user("olga-outsider")
