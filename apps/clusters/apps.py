from __future__ import annotations

from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "apps.clusters"
    label = "clusters"
    verbose_name = "Clusters and workloads"

    def ready(self) -> None:
        from apps.clusters import (
            access,
            dashboard,
            topics,  # noqa: F401
        )

        access.register()
        dashboard.register()  # failing pods in the dashboard's "Needs attention"
        from django.conf import settings

        from apps.core.registry import background_register, nav_register

        nav_register("clusters", "Clusters", "/clusters/", order=10)
        nav_register("applications", "Applications", "/clusters/applications/", order=20)
        background_register(
            "cluster watcher",
            start=_watcher_start,
            stop=_watcher_stop,
            enabled=lambda: bool(settings.ICC_WATCHER_EMBEDDED),
        )


def _watcher_start() -> None:
    from apps.clusters import watch  # the Kubernetes client loads only where a watcher runs

    watch.start_embedded()


def _watcher_stop() -> None:
    from apps.clusters import watch

    watch.stop_embedded()
