"""Writes on users. Each service runs in one transaction and publishes live updates after commit."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.redaction import diff
from apps.audit.services import audit_record
from apps.core.errors import ConflictError, DomainError
from apps.core.events import dashboard_changed
from apps.users.models import Team, User

AUDITED_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "is_active",
    "is_staff",
    "is_superuser",
)
UPDATABLE_FIELDS = ("email", "first_name", "last_name", "display_name", "is_active", "is_staff")


def _snapshot(user: User) -> dict[str, Any]:
    return {name: getattr(user, name) for name in AUDITED_FIELDS}


PRIVILEGED_FIELDS = ("is_superuser", "is_staff", "password", "groups", "user_permissions")


def check_user_change(*, by: User | None, user: User, changes: dict[str, Any], deleting: bool = False) -> None:
    """Rules guarding accounts, checked before any write to one (API, portal, admin):

    - only superusers change ``is_superuser``, ``is_staff``, passwords, groups or permissions, and only
      superusers edit, deactivate or delete a superuser account;
    - nobody deactivates, demotes or deletes their own account (409);
    - the last active superuser cannot be deactivated, demoted or deleted (409).

    ``by`` None is ICC itself (single sign-on applying the provider's claims, management commands)."""
    from apps.core.access import is_platform_superuser
    from apps.core.errors import ForbiddenError

    if by is None:
        return
    superuser = is_platform_superuser(by)
    flags = ("is_superuser", "is_staff")  # the others count whenever given (passwords, relations)
    privileged = [
        name
        for name in PRIVILEGED_FIELDS
        if name in changes and (name not in flags or getattr(user, name) != changes[name])
    ]
    if privileged and not superuser:
        raise ForbiddenError(f"only superusers change {privileged[0]}", field=privileged[0])
    if user.pk and user.is_superuser and not superuser:
        raise ForbiddenError("only superusers edit, deactivate or delete a superuser account")
    demoted = any(changes.get(name) is False and getattr(user, name) for name in ("is_superuser", "is_staff"))
    loses_access = deleting or (changes.get("is_active") is False and user.is_active) or demoted
    if loses_access and user.pk is not None and user.pk == by.pk:
        raise ConflictError("you cannot deactivate, demote or delete your own account", field="is_active")
    loses_superuser = deleting or changes.get("is_active") is False or changes.get("is_superuser") is False
    if user.pk and user.is_superuser and user.is_active and loses_superuser:
        # Lock the active superusers so two demotions at once cannot both pass this check.
        others = list(
            User.objects.select_for_update().filter(is_superuser=True, is_active=True).exclude(pk=user.pk).values("pk")
        )
        if not others:
            raise ConflictError("this is the last active superuser; make another one first", field="is_superuser")


def user_create(
    *,
    username: str,
    password: str | None = None,
    email: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
    by: User | None = None,
    **profile: Any,
) -> User:
    """Create a user; the password is checked by the configured validators; None means no local password.

    Rule: only superusers create staff or superuser accounts (``by`` None is ICC itself)."""
    privileged = {"is_staff": is_staff, "is_superuser": is_superuser}
    check_user_change(by=by, user=User(), changes={k: v for k, v in privileged.items() if v})
    if User.objects.filter(username__iexact=username).exists():
        raise ConflictError(f"a user named {username!r} already exists", field="username")
    user = User(username=username, email=email, is_staff=is_staff or is_superuser, is_superuser=is_superuser, **profile)
    if password is None:
        user.set_unusable_password()
    else:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise DomainError(" ".join(exc.messages), field="password") from None
        user.set_password(password)
    with transaction.atomic():
        user.save()
        audit_record(
            action="users.user.create",
            target=user,
            changes=diff({}, _snapshot(user) | {"password": "set" if password else None}),
        )
        dashboard_changed("user.created")
    return user


def user_update(*, user: User, by: User | None = None, **changes: Any) -> User:
    """Change profile fields of ``user`` (the rules of :func:`check_user_change` apply)."""
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise DomainError(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    with transaction.atomic():
        check_user_change(by=by, user=user, changes=changes)
        before = _snapshot(user)
        for name, value in changes.items():
            setattr(user, name, value)
        user.save(update_fields=[*changes, "updated_at"])
        audit_record(action="users.user.update", target=user, changes=diff(before, _snapshot(user)))
        if "is_active" in changes:
            dashboard_changed("user.updated")
    return user


def service_account_create(*, by: User, username: str, team_name: str, display_name: str = "") -> User:
    """A non-human identity owned by a team; it acts only through API tokens (no password, no login).

    Rule: only those who may configure globally create service accounts (their rights come from bindings
    like anyone's)."""
    from apps.core.access import GLOBAL, Action, can_at
    from apps.core.errors import ForbiddenError
    from apps.users.models import Team

    if not can_at(by, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError("only global admins create service accounts")
    team = Team.objects.filter(name=team_name).first()
    if team is None:
        raise DomainError(f"no team {team_name!r}", field="team")
    if User.objects.filter(username__iexact=username).exists():
        raise ConflictError(f"a user named {username!r} already exists", field="username")
    with transaction.atomic():
        account = User(username=username, display_name=display_name, is_service_account=True, owner_team=team)
        account.set_unusable_password()
        account.full_clean(exclude=["password"])
        account.save()
        audit_record(
            action="users.serviceaccount.create",
            target=account,
            changes=diff({}, {"username": username, "team": team.name, "display_name": display_name}),
        )
    return account


def team_create(*, by: User, name: str, display_name: str = "") -> Team:
    """Rule: teams are global objects; only those who may configure globally create them."""
    from apps.core.access import GLOBAL, Action, can_at
    from apps.core.errors import ForbiddenError

    if not can_at(by, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError("only global admins create teams")
    if Team.objects.filter(name=name).exists():
        raise ConflictError(f"a team named {name!r} already exists", field="name")
    with transaction.atomic():
        team = Team.objects.create(name=name, display_name=display_name)
        audit_record(action="users.team.create", target=team, changes=diff({}, {"name": name}))
    return team


def team_set_members(*, by: User, team: Team, usernames: list[str]) -> Team:
    """Replace the members of a local team (teams from single sign-on follow the provider's groups)."""
    from apps.core.access import GLOBAL, Action, can_at
    from apps.core.errors import ForbiddenError

    if not can_at(by, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError("only global admins manage team members")
    if team.source != "local":
        raise DomainError("this team follows single-sign-on groups; change membership at the provider", field="members")
    users = list(User.objects.filter(username__in=usernames))
    missing = sorted(set(usernames) - {u.username for u in users})
    if missing:
        raise DomainError(f"no user {missing[0]!r}", field="members")
    with transaction.atomic():
        before = sorted(team.members.values_list("username", flat=True))
        team.members.set(users)
        after = sorted(u.username for u in users)
        audit_record(action="users.team.members", target=team, changes=diff({"members": before}, {"members": after}))
    return team
