from __future__ import annotations

from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "apps.compliance"
    label = "compliance"

    def ready(self) -> None:
        from apps.core.registry import placeholder_register

        placeholder_register("compliance", "Compliance", order=50, empty="No policies yet.")
