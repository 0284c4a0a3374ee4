"""``POST /traffic/v1/samples``: request samples from agents (see apps.traffic.samples for the body).

Authenticated and rate limited exactly like the trace receiver (apps.traffic.receiver); answers are JSON in the
API's error shape, ``fields`` naming the sample field at fault. A refused request buffers nothing.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.core import context
from apps.core.middleware import client_ip
from apps.traffic import buffer, receiver, samples
from apps.traffic.metrics import RECEIVED
from apps.traffic.rollup import SAMPLES


def _error(status: int, message: str, field: str = "") -> JsonResponse:
    code = "invalid" if status == 400 else "refused"
    fields = {field: [message]} if field else {}
    body = {
        "error": {"status": status, "code": code, "message": message, "fields": fields},
        "request_id": context.current().request_id,
    }
    RECEIVED.labels(outcome=str(status)).inc()
    return JsonResponse(body, status=status)


@csrf_exempt
@require_POST
def receive(request: HttpRequest) -> JsonResponse:
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > samples.MAX_BODY_BYTES:
            raise samples.BadSample("body", f"the body is larger than {samples.MAX_BODY_BYTES} bytes", 413)
        application_id = receiver.authenticate(request.META, client_ip(request))
        if (request.content_type or "").lower() != "application/json":
            raise samples.BadSample("Content-Type", "Content-Type is application/json", 415)
        body = samples.decompress(request.body, request.headers.get("Content-Encoding", ""))
        rows = samples.parse(body)
        if rows:
            receiver.admit(application_id, len(rows))
            buffer.push(application_id, SAMPLES, rows)
    except receiver.Refused as exc:
        response = _error(exc.status, exc.message)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    except buffer.Full:
        response = _error(503, "ICC is catching up with earlier traffic")
        response["Retry-After"] = "5"
        return response
    except samples.BadSample as exc:
        return _error(exc.status, f"{exc.field}: {exc.message}", exc.field)
    RECEIVED.labels(outcome="200").inc()
    return JsonResponse({"accepted": len(rows)})
