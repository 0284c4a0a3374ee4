from __future__ import annotations

from django.apps import AppConfig


class TrafficConfig(AppConfig):
    name = "apps.traffic"
    label = "traffic"

    def ready(self) -> None:
        from apps.core.registry import area_register, nav_register

        nav_register("traffic", "Traffic", "/traffic/", order=60)
        area_register("traffic", "Traffic", "No traffic samples received yet.")  # until the app's own pages land
