from __future__ import annotations

from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "apps.users"
    label = "users"
    verbose_name = "Users and access"

    def ready(self) -> None:
        from apps.core.access import ScopedModel, register_grants_provider, register_scoped
        from apps.core.registry import nav_register

        nav_register("users", "Settings", "/users/", order=90)
        from apps.users import schema  # noqa: F401 - OpenAPI bearer scheme
        from apps.users.grants import user_grants
        from apps.users.models import ApiToken, RoleBinding, Team, User

        register_grants_provider(user_grants)
        # Users, teams and bindings are global objects: global grants reach them; everyone reads themself.
        register_scoped(User, ScopedModel(visible_to_self="pk"))
        register_scoped(Team, ScopedModel(visible_to_self="members"))
        register_scoped(ApiToken, ScopedModel(visible_to_self="user"))
        register_scoped(
            RoleBinding,
            ScopedModel(
                cluster="scope_cluster",
                namespace="scope_namespace",
                application="scope_application",
                visible_to_self="user",
            ),
        )
