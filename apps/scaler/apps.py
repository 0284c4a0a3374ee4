from __future__ import annotations

from django.apps import AppConfig


class ScalerConfig(AppConfig):
    name = "apps.scaler"
    label = "scaler"
