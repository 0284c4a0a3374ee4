from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _workload_changed(*, cluster_id: int, namespace: str, kind: str, name: str, deleted: bool, **_: Any) -> None:
    """The watcher saw a workload change (after commit): re-evaluate it on a worker within about a second."""
    if deleted:
        return  # its results were deleted with it
    from apps.compliance.tasks import evaluate_workload

    evaluate_workload.apply_async(args=[cluster_id, namespace, kind, name], queue="analysis")


def _builtin_policies(**_: Any) -> None:
    from apps.compliance.models import ensure_builtin_policies

    ensure_builtin_policies()


class ComplianceConfig(AppConfig):
    name = "apps.compliance"
    label = "compliance"

    def ready(self) -> None:
        from django.urls import reverse

        from apps.clusters.signals import workload_observed
        from apps.compliance import models as m
        from apps.core.access import ScopedModel, register_scoped
        from apps.core.registry import ObjectTab, nav_register, tab_register

        register_scoped(
            m.Result, ScopedModel(cluster="cluster_id", namespace="namespace", application="application__name")
        )
        register_scoped(
            m.HistoryPoint, ScopedModel(cluster="cluster_id", namespace="namespace", application="application_name")
        )
        # The library: read by anyone who may read somewhere (to bind a policy in their scope), changed with
        # global grants only.
        register_scoped(m.Policy, ScopedModel(read_with_any_grant=True))
        # A binding is read where its scope is (a namespace admin sees that namespace's bindings).
        register_scoped(
            m.Binding,
            ScopedModel(cluster="scope_cluster", namespace="scope_namespace", application="scope_application"),
        )
        register_scoped(m.AdmissionWebhook, ScopedModel(cluster="cluster_id"))
        register_scoped(
            m.PolicyException,
            ScopedModel(cluster="scope_cluster", namespace="scope_namespace", application="scope_application"),
        )
        workload_observed.connect(_workload_changed, dispatch_uid="compliance.evaluate_on_change")
        from django.db.models.signals import post_migrate

        # The built-in policies exist whenever the schema does (also after a test database is flushed).
        post_migrate.connect(_builtin_policies, sender=self, dispatch_uid="compliance.builtin_policies")
        from apps.compliance import topics  # noqa: F401 - registers the live topics of the compliance pages

        nav_register("compliance", "Compliance", "/compliance/", order=50)
        # The application page links to its results (whoever reads the application reads its results' list).
        tab_register(
            ObjectTab(
                target="clusters.application",
                key="compliance",
                label="Compliance",
                url=lambda app: f"{reverse('compliance:results')}?application={app.pk}",
                visible=lambda user, app: True,
                order=120,  # after Scaling and Cron, as in the menu
            )
        )
