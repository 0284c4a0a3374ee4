from __future__ import annotations

from django.apps import AppConfig


class CronConfig(AppConfig):
    name = "apps.cron"
    label = "cron"
    verbose_name = "Cron"

    def ready(self) -> None:
        from django.conf import settings

        from apps.clusters.signals import job_observed
        from apps.core.access import ScopedModel, register_scoped
        from apps.core.registry import background_register, nav_register
        from apps.cron import dashboard, kube_target, scheduler
        from apps.cron import models as m

        register_scoped(
            m.Job, ScopedModel(cluster="cluster_id", namespace="namespace", application="application__name")
        )
        run_scope = ScopedModel(
            cluster="job__cluster_id", namespace="job__namespace", application="job__application__name"
        )
        register_scoped(m.Run, run_scope)
        register_scoped(
            m.Attempt,
            ScopedModel(
                cluster="run__job__cluster_id",
                namespace="run__job__namespace",
                application="run__job__application__name",
            ),
        )
        job_observed.connect(kube_target.on_job_observed, dispatch_uid="cron.kube_target")
        from apps.cron import notify

        notify.connect()  # failed and late runs become domain events (notifications routes them)
        dashboard.register()  # failed and late runs on the dashboard
        background_register(
            "cron scheduler",
            start=scheduler.start_embedded,
            stop=scheduler.stop_embedded,
            enabled=lambda: bool(settings.CRON_SCHEDULER_EMBEDDED),
        )
        nav_register("cron", "Cron", "/cron/", order=40)
        from django.urls import reverse

        from apps.core.registry import ObjectTab, tab_register
        from apps.cron import topics  # noqa: F401 - registers the live topics of the cron pages

        # The application page links to its jobs (whoever reads the application reads its jobs' list).
        tab_register(
            ObjectTab(
                target="clusters.application",
                key="cron",
                label="Cron",
                url=lambda app: f"{reverse('cron:jobs')}?application={app.pk}",
                visible=lambda user, app: True,
                order=110,  # after Scaling, as in the menu
            )
        )
