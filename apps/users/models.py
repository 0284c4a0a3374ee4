"""ICC's user model (custom from day one, so identity can grow without a painful migration)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from apps.core.access import Role, Scope, ScopeKind


class User(AbstractUser):
    """A person using ICC. Teams, role bindings and tokens attach to it in the access-control issue."""

    display_name = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(AbstractUser.Meta):
        db_table = "users_user"
        swappable = "AUTH_USER_MODEL"

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username


class Team(models.Model):
    """A group of users (from OIDC groups or made by hand) that role bindings can name."""

    name = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=150, blank=True)
    members = models.ManyToManyField(User, related_name="teams", blank=True)
    source = models.CharField(max_length=20, default="local", help_text="local, or oidc for teams mapped from groups")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name or self.name


class RoleBinding(models.Model):
    """Gives ``role`` to a user or a team at a scope, optionally until ``expires_at``."""

    role = models.CharField(max_length=10, choices=Role.choices)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings")
    scope_kind = models.CharField(max_length=12, choices=ScopeKind.choices, default=ScopeKind.GLOBAL)
    scope_cluster = models.CharField(max_length=100, blank=True)
    scope_namespace = models.CharField(max_length=100, blank=True)
    scope_application = models.CharField(max_length=150, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=20, default="local", help_text="local, or oidc when set by group mapping")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, team__isnull=True) | models.Q(user__isnull=True, team__isnull=False)
                ),
                name="rolebinding_user_xor_team",
            ),
            models.UniqueConstraint(
                fields=["role", "user", "team", "scope_kind", "scope_cluster", "scope_namespace", "scope_application"],
                name="rolebinding_unique",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        who = self.user or self.team
        return f"{self.role} for {who} at {self.scope.label()}"

    @property
    def scope(self) -> Scope:
        return Scope(self.scope_kind, self.scope_cluster, self.scope_namespace, self.scope_application)
