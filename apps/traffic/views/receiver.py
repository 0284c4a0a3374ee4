"""``POST /traffic/v1/traces``: the OTLP/HTTP trace receiver (so ``OTEL_EXPORTER_OTLP_ENDPOINT`` is ICC's
``/traffic``). Machine-to-machine: no session, no CSRF; the bearer token authenticates (see apps.traffic.receiver).
Answers follow the OTLP specification: the request's encoding, partial success, ``google.rpc.Status`` on errors,
``Retry-After`` on 429 and 503."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.core.middleware import client_ip
from apps.traffic import otlp, receiver
from apps.traffic.metrics import RECEIVED


def refusal(exc: receiver.Refused, kind: str) -> HttpResponse:
    kind = kind if kind in (otlp.PROTOBUF, otlp.JSON) else otlp.JSON
    response = HttpResponse(otlp.failure(kind, exc.code, exc.message), status=exc.status, content_type=kind)
    if exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    return response


@csrf_exempt
@require_POST
def traces(request: HttpRequest) -> HttpResponse:
    kind = otlp.media_type(request.content_type or "")
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > receiver.MAX_BODY_BYTES:
            raise receiver.Refused(413, 3, f"the body is larger than {receiver.MAX_BODY_BYTES} bytes")
        application_id = receiver.authenticate(request.META, client_ip(request))
        body, kind = receiver.traces(
            application_id,
            request.body,
            request.META.get("CONTENT_TYPE", ""),
            request.headers.get("Content-Encoding", ""),
        )
    except receiver.Refused as exc:
        RECEIVED.labels(outcome=str(exc.status)).inc()
        return refusal(exc, kind)
    RECEIVED.labels(outcome="200").inc()
    return HttpResponse(body, content_type=kind)
