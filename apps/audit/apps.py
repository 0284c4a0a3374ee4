from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from apps.audit import metrics, signals, topics  # noqa: F401 - metrics, login signals, live topics
        from apps.audit.models import AuditEvent
        from apps.core.access import ScopedModel, register_scoped
        from apps.core.registry import nav_register

        nav_register("audit", "Audit", "/audit/", order=80)

        # Events are read where their scope is readable; everyone also reads the events they caused.
        register_scoped(
            AuditEvent,
            ScopedModel(
                cluster="scope_cluster",
                namespace="scope_namespace",
                application="scope_application",
                visible_to_self="actor_id",
            ),
        )
