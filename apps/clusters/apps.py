from __future__ import annotations

from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "apps.clusters"
    label = "clusters"
    verbose_name = "Clusters and workloads"

    def ready(self) -> None:
        from apps.clusters import (
            access,
            topics,  # noqa: F401
        )

        access.register()
