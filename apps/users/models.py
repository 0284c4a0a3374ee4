"""ICC's user model (custom from day one, so identity can grow without a painful migration)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from apps.core.access import Role, Scope, ScopeKind


class User(AbstractUser):
    """A person, or a service account (a non-human identity owned by a team, acting only by API token)."""

    display_name = models.CharField(max_length=150, blank=True)
    is_service_account = models.BooleanField(default=False)
    owner_team = models.ForeignKey(
        "users.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="service_accounts"
    )
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


class ApiToken(models.Model):
    """A bearer token. Only a SHA-256 hash is stored; ``prefix`` finds the row without the secret.

    ``restrictions`` optionally narrows it to some (role, scope) grants; the effective rights are always
    the intersection with the owner's current grants, so a token never has more than its owner.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    token_hash = models.CharField(max_length=64)
    restrictions = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    # The addresses it was used from (the newest SEEN_ADDRESSES_KEPT), written only when a new one appears.
    seen_ips = models.JSONField(default=list, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class OidcIdentity(models.Model):
    """Links a single-sign-on identity, (issuer, subject), to an ICC account: stored at first login, it is
    what later logins find (never the username or e-mail the provider sends, which a user may choose)."""

    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="oidc_identities")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="oidcidentity_unique")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
