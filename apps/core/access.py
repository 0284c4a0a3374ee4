"""Roles, scopes and the rules of who may do what. The enforcement point is :mod:`apps.core.access`.

Permission matrix (role by action), each rule also written where it is enforced:

=========  ======  =====  ===============  =========
role       read    act    override_freeze  configure
=========  ======  =====  ===============  =========
viewer     yes     no     no               no
operator   yes     yes    yes              no
admin      yes     yes    yes              yes
=========  ======  =====  ===============  =========

``override_freeze`` (the ``override-freeze`` permission): acting during a change freeze (scale, restart, a
compliance fix) with an explicit override and a reason; it ranks with ``act``, so operators and admins have it
where they act, and the override is audited by the action it allows.

A binding grants its role at its scope and everything below it: global ⊃ cluster ⊃ namespace in that
cluster; an application binding covers that application in that cluster. Every scoped object has three
coordinates (cluster, namespace, application); a model plugs into access control by naming the fields
that hold them (:func:`apps.core.access.register_scoped`). Platform superusers may do everything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, QuerySet

M = TypeVar("M", bound=models.Model)


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


class Action(models.TextChoices):
    READ = "read", "Read"
    ACT = "act", "Act"
    CONFIGURE = "configure", "Configure"
    OVERRIDE_FREEZE = "override_freeze", "Override a change freeze"


ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}
ACTION_RANK = {Action.READ: 1, Action.ACT: 2, Action.OVERRIDE_FREEZE: 2, Action.CONFIGURE: 3}


def role_allows(role: str, action: str) -> bool:
    """Rule: a role allows an action when its rank reaches the action's (viewer reads; operator also acts;
    admin also configures)."""
    return ROLE_RANK[Role(role)] >= ACTION_RANK[Action(action)]


class ScopeKind(models.TextChoices):
    GLOBAL = "global", "Global"
    CLUSTER = "cluster", "Cluster"
    NAMESPACE = "namespace", "Namespace"
    APPLICATION = "application", "Application"


@dataclass(frozen=True)
class Scope:
    """Where a binding applies. ``cluster`` is a cluster id; namespace and application are names."""

    kind: str = ScopeKind.GLOBAL
    cluster: str = ""
    namespace: str = ""
    application: str = ""

    def covers(self, cluster: str, namespace: str, application: str) -> bool:
        """Rule: a global binding covers everything; a cluster binding, everything in that cluster; a
        namespace binding, everything in that namespace of that cluster; an application binding, that
        application's objects in that cluster (whatever their namespace)."""
        if self.kind == ScopeKind.GLOBAL:
            return True
        if cluster != self.cluster:
            return False
        if self.kind == ScopeKind.CLUSTER:
            return True
        if self.kind == ScopeKind.NAMESPACE:
            return namespace == self.namespace
        return application == self.application

    def contains(self, other: Scope) -> bool:
        """Rule: a scope contains another when everything the other covers, it covers too."""
        if self.kind == ScopeKind.GLOBAL:
            return True
        if other.kind == ScopeKind.GLOBAL or other.cluster != self.cluster:
            return False
        if self.kind == ScopeKind.CLUSTER:
            return True
        if self.kind == ScopeKind.NAMESPACE:
            return other.kind == ScopeKind.NAMESPACE and other.namespace == self.namespace
        return other.kind == ScopeKind.APPLICATION and other.application == self.application

    def unused_coordinate(self) -> str:
        """The first coordinate this kind does not use but which is set ("" when none): a cluster scope
        names no namespace or application, a namespace scope no application, a global scope nothing.

        Rule: such a scope is refused, never read as something narrower or wider than its kind says."""
        unused = {
            ScopeKind.GLOBAL: ("cluster", "namespace", "application"),
            ScopeKind.CLUSTER: ("namespace", "application"),
            ScopeKind.NAMESPACE: ("application",),
            ScopeKind.APPLICATION: ("namespace",),
        }.get(ScopeKind(self.kind), ())
        return next((name for name in unused if getattr(self, name)), "")

    def label(self) -> str:
        if self.kind == ScopeKind.GLOBAL:
            return "global"
        parts = [f"cluster {self.cluster}"]
        if self.namespace:
            parts.append(f"namespace {self.namespace}")
        if self.application:
            parts.append(f"application {self.application}")
        return " / ".join(parts)


GLOBAL = Scope()


# --- the enforcement point -----------------------------------------------------------------------------

Grant = tuple[str, Scope]  # (role, scope)
_grants_provider: Callable[[Any], list[Grant]] | None = None


@dataclass(frozen=True)
class ScopedModel:
    """How a model's rows map to scope coordinates (field names; empty when the model has none)."""

    cluster: str = ""
    namespace: str = ""
    application: str = ""
    visible_to_self: str = ""  # a field pointing at a user: that user always reads the row
    # Reference data (a policy library): read by anyone who may read anywhere; changed with global grants only.
    read_with_any_grant: bool = False


_scoped: dict[type[models.Model], ScopedModel] = {}


def register_scoped(model: type[models.Model], spec: ScopedModel) -> None:
    """Plug a model into access control: ``register_scoped(Workload, ScopedModel("cluster_id", "namespace"))``."""
    _scoped[model] = spec


def register_grants_provider(provider: Callable[[Any], list[Grant]]) -> None:
    """The users app supplies each user's effective (role, scope) grants (bindings, teams, expiry)."""
    global _grants_provider  # noqa: PLW0603 - a registry set once at start-up
    _grants_provider = provider


def narrow(owner_grants: list[Grant], limits: list[Grant]) -> list[Grant]:
    """Rule: a limited token keeps each of its limits only while some grant of its owner allows at least
    that role at a scope containing the limit's scope — never more than the owner has, now."""
    return [
        (role, scope)
        for role, scope in limits
        if any(ROLE_RANK[Role(r)] >= ROLE_RANK[Role(role)] and s.contains(scope) for r, s in owner_grants)
    ]


def grants(user: Any) -> list[Grant]:
    """The user's effective grants, computed once per user object (so once per request)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    cached = getattr(user, "_icc_grants", None)
    if cached is None:
        cached = _grants_provider(user) if _grants_provider else []
        limits = getattr(user, "_icc_token_limits", None)
        if limits:  # a limited superuser token is bounded by its limits alone
            cached = list(limits) if user.is_superuser else narrow(cached, limits)
        with contextlib.suppress(AttributeError):  # objects that refuse attributes: recompute next time
            user._icc_grants = cached
    return list(cached)


def is_platform_superuser(user: Any) -> bool:
    """Rule: an active superuser, unless acting through a token limited to some grants."""
    if getattr(user, "_icc_token_limits", None):
        return False
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.is_superuser)


def scopes_for(user: Any, action: str) -> list[Scope]:
    """The scopes where ``user`` may perform ``action``."""
    return [scope for role, scope in grants(user) if role_allows(role, action)]


def _comparable(model: type[models.Model], path: str, value: str) -> bool:
    """Can ``value`` be compared with the field at ``path`` (``application__cluster_id``)?"""
    opts = model._meta
    *relations, last = path.split("__")
    for name in relations:
        related = opts.get_field(name).related_model
        assert related is not None
        assert not isinstance(related, str)
        opts = related._meta
    field = opts.get_field(last)
    if not isinstance(field, models.Field):
        return True
    try:
        field.get_prep_value(value)
    except (ValueError, TypeError, ValidationError):
        return False
    return True


def _scope_q(spec: ScopedModel, scope: Scope, model: type[models.Model]) -> Q | None:
    if scope.kind == ScopeKind.GLOBAL:
        return Q()
    if not spec.cluster:
        return None  # the model has no cluster coordinate: only global grants reach it
    if not _comparable(model, spec.cluster, scope.cluster):
        return None  # a binding naming a cluster that is no id (made before clusters existed) reaches nothing
    q = Q(**{spec.cluster: scope.cluster})
    if scope.kind == ScopeKind.NAMESPACE:
        q &= Q(**{spec.namespace: scope.namespace}) if spec.namespace else Q(pk__in=[])
    elif scope.kind == ScopeKind.APPLICATION:
        q &= Q(**{spec.application: scope.application}) if spec.application else Q(pk__in=[])
    return q


def restrict(user: Any, action: str, queryset: QuerySet[M]) -> QuerySet[M]:
    """The rows of ``queryset`` on which ``user`` may perform ``action`` — the one enforcement point.

    Rule: superusers reach every row; anyone else reaches the rows covered by a scope where one of their
    roles allows the action, plus rows about themselves (read only); anonymous and inactive users none.
    A model that was never registered is reachable by superusers only.
    """
    if is_platform_superuser(user):
        return queryset
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return queryset.none()
    spec = _scoped.get(queryset.model)
    if spec is None:
        return queryset.none()
    condition: Q | None = None
    scopes = scopes_for(user, action)
    if spec.read_with_any_grant and action == Action.READ and scopes:
        return queryset
    for scope in scopes:
        q = _scope_q(spec, scope, queryset.model)
        if q is None:
            continue
        if not q:  # global
            return queryset
        condition = q if condition is None else condition | q
    if spec.visible_to_self and action == Action.READ:
        mine = Q(**{spec.visible_to_self: user.pk})
        condition = mine if condition is None else condition | mine
    return queryset.filter(condition) if condition is not None else queryset.none()


def can(user: Any, action: str, obj: models.Model) -> bool:
    """May ``user`` perform ``action`` on ``obj``? (The same rule as :func:`restrict`, for one object.)"""
    if obj.pk is None:
        return can_at(user, action, Scope())
    return restrict(user, action, type(obj)._default_manager.filter(pk=obj.pk)).exists()


def can_at(user: Any, action: str, scope: Scope) -> bool:
    """May ``user`` perform ``action`` at ``scope`` (e.g. create something there)?

    Rule: a grant allows it when its scope contains the target scope, compared whole: the kinds first,
    then the coordinates the kinds use. A target naming coordinates its kind does not use is allowed by
    nothing but a global grant (callers refuse such scopes first; see :meth:`Scope.unused_coordinate`)."""
    if is_platform_superuser(user):
        return True
    for granted in scopes_for(user, action):
        if granted.kind == ScopeKind.GLOBAL:
            return True
        if not scope.unused_coordinate() and granted.contains(scope):
            return True
    return False
