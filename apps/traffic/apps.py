from __future__ import annotations

from django.apps import AppConfig


class TrafficConfig(AppConfig):
    name = "apps.traffic"
    label = "traffic"

    def ready(self) -> None:
        from apps.core.access import ScopedModel, register_scoped
        from apps.core.registry import placeholder_register
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
        placeholder_register("traffic", "Traffic", order=60, empty="No traffic samples received yet.")
