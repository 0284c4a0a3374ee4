from __future__ import annotations

from django.apps import AppConfig


class IccAppConfig(AppConfig):
    name = "iccapp"
    verbose_name = "ICC project"

    def ready(self) -> None:
        from iccapp import checks  # noqa: F401 - registers the system checks
