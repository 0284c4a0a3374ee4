"""``GET /traffic/v1/cache-config``: the calling application's accepted caching configuration (machine identity).

Authenticated like the trace receiver (a workload's ServiceAccount token with ``X-ICC-Cluster``, or an API token
with ``X-ICC-Application``; see apps.traffic.receiver). The answer is ``{"version": n, "routes": [{"route",
"method", "ttl_seconds" | "validators"}]}`` (version 0 and no routes before anything was accepted), with the version
as its ETag: an agent polling with ``If-None-Match`` gets 304 Not Modified until a person accepts or rejects
something.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET

from apps.core import context
from apps.core.middleware import client_ip
from apps.traffic import receiver
from apps.traffic.recommend_selectors import current_config


def etag_of(version: int) -> str:
    return f'"icc-cache-config-{version}"'


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@require_GET
def cache_config(request: HttpRequest) -> HttpResponse:
    try:
        application_id = receiver.authenticate(request.META, client_ip(request))
    except receiver.Refused as exc:
        body = {
            "error": {"status": exc.status, "code": "refused", "message": exc.message, "fields": {}},
            "request_id": context.current().request_id,
        }
        return JsonResponse(body, status=exc.status)
    config = current_config(application_id)
    version = config.version if config is not None else 0
    etag = etag_of(version)
    if _matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
    else:
        response = JsonResponse({"version": version, "routes": config.routes if config is not None else []})
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)
    return response
