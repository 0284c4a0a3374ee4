from __future__ import annotations

from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "apps.compliance"
    label = "compliance"

    def ready(self) -> None:
        from apps.core.registry import area_register, nav_register

        nav_register("compliance", "Compliance", "/compliance/", order=50)
        area_register("compliance", "Compliance", "No policies yet.")  # until the app's own pages land
