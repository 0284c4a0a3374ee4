from __future__ import annotations

from django.apps import AppConfig


class ScalerConfig(AppConfig):
    name = "apps.scaler"
    label = "scaler"
    verbose_name = "Scaling"

    def ready(self) -> None:
        from apps.core.access import ScopedModel, register_scoped
        from apps.scaler import models as m

        app_scope = ScopedModel(
            cluster="application__cluster_id", namespace="application__namespace", application="application__name"
        )
        for model in (m.ScalingPolicy, m.Decision, m.Signal):
            register_scoped(model, app_scope)
        register_scoped(
            m.ScheduleWindow,
            ScopedModel(
                cluster="policy__application__cluster_id",
                namespace="policy__application__namespace",
                application="policy__application__name",
            ),
        )
        register_scoped(m.ScalerSettings, ScopedModel())  # global: only global grants reach it
        from apps.core.registry import nav_register
        from apps.scaler import topics  # noqa: F401 - registers the live topics of the scaling pages

        nav_register("scaler", "Scaling", "/scaler/", order=30)
        from django.urls import reverse

        from apps.core.registry import ObjectTab, tab_register

        # The application page links to its Scaling page (whoever reads the application reads its scaling).
        tab_register(
            ObjectTab(
                target="clusters.application",
                key="scaler",
                label="Scaling",
                url=lambda app: reverse("scaler:application", args=[app.pk]),
                visible=lambda user, app: True,
            )
        )
