from __future__ import annotations

from django.apps import AppConfig


class TrafficConfig(AppConfig):
    name = "apps.traffic"
    label = "traffic"

    def ready(self) -> None:
        from apps.core.access import ScopedModel, register_scoped
        from apps.traffic import models as m

        application = ScopedModel(
            cluster="application__cluster_id", namespace="application__namespace", application="application__name"
        )
        register_scoped(m.RouteRollup, application)
        register_scoped(m.Sample, application)
        register_scoped(m.Recommendation, application)
        register_scoped(m.CacheConfig, application)
        # restrict() sees an edge through its source application; graph selectors add the edges into applications
        # the viewer reads (their source may be virtual or out of scope: shown as a node without details).
        register_scoped(
            m.EdgeRollup,
            ScopedModel(
                cluster="source_application__cluster_id",
                namespace="source_application__namespace",
                application="source_application__name",
            ),
        )
        from django.urls import reverse

        from apps.core.registry import ObjectTab, nav_register, tab_register
        from apps.traffic import topics  # noqa: F401 - registers the live topics of the traffic pages

        nav_register("traffic", "Traffic", "/traffic/", order=60)
        # The application page links to its Traffic tab (whoever reads the application reads its traffic).
        tab_register(
            ObjectTab(
                target="clusters.application",
                key="traffic",
                label="Traffic",
                url=lambda app: reverse("traffic:application", args=[app.pk]),
                visible=lambda user, app: True,
                order=130,  # after Scaling, Cron and Compliance, as in the menu
            )
        )
