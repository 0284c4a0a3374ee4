from __future__ import annotations

from django.apps import AppConfig


class CronConfig(AppConfig):
    name = "apps.cron"
    label = "cron"

    def ready(self) -> None:
        from apps.core.registry import area_register, nav_register

        nav_register("cron", "Cron", "/cron/", order=40)
        area_register("cron", "Cron", "No scheduled jobs yet.")  # until the app's own pages land
