from __future__ import annotations

from django.apps import AppConfig


class CronConfig(AppConfig):
    name = "apps.cron"
    label = "cron"

    def ready(self) -> None:
        from apps.core.registry import placeholder_register

        placeholder_register("cron", "Cron", order=40, empty="No scheduled jobs yet.")
