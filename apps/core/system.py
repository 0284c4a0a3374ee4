"""Settings > System (admins): the processes of every role with their versions, the leases and who holds them,
the Celery queue depths and the workers' heartbeats, and the dependencies that are down (also shown as a banner
on every page while they are). ``?format=json`` gives the same as JSON (the chaos bench reads it)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from apps.core import heartbeats, leases
from apps.core.access import GLOBAL, Action, can_at
from apps.core.health import failing_dependencies
from apps.core.tasking import QUEUES

logger = logging.getLogger(__name__)


def may_see_system(user: Any) -> bool:
    """Rule: the System page is for admins (configure at global scope, or platform superusers)."""
    return bool(getattr(user, "is_authenticated", False)) and can_at(user, Action.CONFIGURE, GLOBAL)


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each Celery queue (Redis ``LLEN``); None when the broker is not Redis or is down."""
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis://", "rediss://")):
        return dict.fromkeys(QUEUES)
    import redis

    client = redis.Redis.from_url(broker, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(queue)
            return {queue: int(n) for queue, n in zip(QUEUES, pipe.execute(), strict=True)}
    except redis.RedisError as exc:
        logger.info("queue depths unavailable: %s", exc)
        return dict.fromkeys(QUEUES)
    finally:
        client.close()


def system_state() -> dict[str, Any]:
    """Everything the page shows, each part independent of the others (a dependency down empties its part)."""
    state: dict[str, Any] = {"failing": failing_dependencies(), "version": heartbeats.icc_version()}
    try:
        state["processes"] = heartbeats.processes()
    except Exception as exc:  # Redis down
        logger.info("role heartbeats unavailable: %s", exc)
        state["processes"] = []
    try:
        state["leases"] = leases.leases()
    except Exception as exc:  # database down
        logger.info("leases unavailable: %s", exc)
        state["leases"] = []
    state["queues"] = queue_depths()
    try:
        beat = cache.get("icc:heartbeat") or {}
    except Exception:  # the cache is Redis
        beat = {}
    now = time.time()
    state["task_heartbeat"] = {
        key.removesuffix("_at") + "_age_s": round(now - float(value), 1) for key, value in beat.items() if value
    }
    versions = sorted({str(p.get("version")) for p in state["processes"]})
    state["versions"] = versions
    state["roles"] = sorted({str(p.get("role")) for p in state["processes"]})
    return state


@login_required
def system_page(request: HttpRequest) -> HttpResponse:
    if not may_see_system(request.user):
        raise PermissionDenied("the System page is for admins")
    state = system_state()
    if request.GET.get("format") == "json":
        return JsonResponse(state, json_dumps_params={"default": str})
    return render(request, "core/system.html", {**state, "section": "system"})


def dependency_banner() -> SafeString:
    """The banner every page shows while a dependency is down (names only; details are in the logs)."""
    failing = failing_dependencies()
    if not failing:
        return mark_safe("")
    return mark_safe(render_to_string("core/_dependency_banner.html", {"failing": failing}))  # noqa: S308 - escaped
