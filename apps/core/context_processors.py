from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.core.registry import navigation


def my_rights(user: Any) -> list[str]:
    """Human-readable grants: ``admin at global``, ``viewer at cluster c1``."""
    from apps.core.access import grants, is_platform_superuser

    if is_platform_superuser(user):
        return ["platform superuser: everything, everywhere"]
    return sorted({f"{role} at {scope.label()}" for role, scope in grants(user)}) or ["no role bindings yet"]


def portal(request: HttpRequest) -> dict[str, Any]:
    path = request.path
    items = [(item.key, item.label, item.url) for item in navigation()]
    # The longest matching prefix wins: /clusters/applications/ is the Applications area, not Clusters.
    matches = sorted((len(url), key) for key, _, url in items if url != "/" and path.startswith(url))
    active = matches[-1][1] if matches else ("dashboard" if path == "/" else "")
    user = getattr(request, "user", None)
    # A callable: templates evaluate it only on pages that show it (no query on API or fragment responses).
    return {
        "navigation": items,
        "active_area": active,
        "my_rights": lambda: my_rights(user),
        "dependency_banner": _dependency_banner,  # evaluated only by pages that show it (signed-in ones)
        "may_see_system": lambda: _may_see_system(user),
    }


def _dependency_banner() -> Any:
    from apps.core.system import dependency_banner

    return dependency_banner()


def _may_see_system(user: Any) -> bool:
    from apps.core.system import may_see_system

    return may_see_system(user)
