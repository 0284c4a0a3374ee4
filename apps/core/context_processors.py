from __future__ import annotations

from typing import Any

from django.http import HttpRequest

NAVIGATION = (
    ("dashboard", "Dashboard", "/"),
    ("clusters", "Clusters", "/clusters/"),
    ("applications", "Applications", "/applications/"),
    ("scaling", "Scaling", "/scaling/"),
    ("cron", "Cron", "/cron/"),
    ("compliance", "Compliance", "/compliance/"),
    ("traffic", "Traffic", "/traffic/"),
    ("audit", "Audit", "/audit/"),
    ("settings", "Settings", "/settings/"),
)


def portal(request: HttpRequest) -> dict[str, Any]:
    path = request.path
    active = next((key for key, _, url in NAVIGATION[1:] if path.startswith(url)), "dashboard" if path == "/" else "")
    return {"navigation": NAVIGATION, "active_area": active}
