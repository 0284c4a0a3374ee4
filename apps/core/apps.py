from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "ICC core"

    def ready(self) -> None:
        from apps.core import metrics, signals, topics  # noqa: F401 - registers signal handlers and topics
        from apps.core.logging import install_record_factory

        install_record_factory()
        from apps.core.registry import nav_register

        nav_register("dashboard", "Dashboard", "/", order=0)
