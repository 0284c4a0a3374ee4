from __future__ import annotations

from django.apps import AppConfig


class TrafficConfig(AppConfig):
    name = "apps.traffic"
    label = "traffic"

    def ready(self) -> None:
        from apps.core.registry import placeholder_register

        placeholder_register("traffic", "Traffic", order=60, empty="No traffic samples received yet.")
